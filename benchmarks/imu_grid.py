"""Exhaustive grid over the IMU example's space against the tuner from its default start.

    python benchmarks/imu_grid.py [--points 20] [--seed 0] [--reuse]

1. The grid: ``points`` values of each parameter, evenly spaced in its own (log) scale, rounded to
   integers (duplicates dropped); every setting measured like the tuner measures one (same repeats).
   Each measurement is appended to ``benchmarks/results/imu_grid_points.jsonl`` as it finishes;
   ``--reuse`` keeps the points already there and measures only the missing ones.
2. The tuner: ``gd.minimize`` with SPSA from the centre of the space, allowed a tenth of the grid's
   evaluations (``res.nfev`` is checked against that, the evaluation of the final point included).
3. The verdict: the grid's best setting, the tuner's best setting (the better of its final point and
   its best-measured point) and the start are measured again side by side, interleaved, so that load
   from other programs on the machine hits all three alike. Acceptance: the tuner's time is within
   10% of the grid's best time, with at most 1/10 of the grid's evaluations.

Not run by the tests (it takes tens of minutes). The numbers it prints are the ones in docs/tuning.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "examples", "imu_polling"))

import gdtools as gd  # noqa: E402
from gdtools.timing import best_measured, remeasure  # noqa: E402
import settings  # noqa: E402

RESULTS = os.path.join(HERE, "results")


def grid_points(space, points: int) -> list[dict]:
    axes = [sorted({space.from_unit(np.eye(len(space))[i] * u)[name]
                    for u in np.linspace(0.0, 1.0, points)})
            for i, name in enumerate(space.names)]
    mesh = np.meshgrid(*axes, indexing="ij")
    return [{name: int(m.flat[j]) for name, m in zip(space.names, mesh)} for j in range(mesh[0].size)]


def measure_grid(objective, points, path, reuse: bool) -> list[dict]:
    done = {}
    if reuse and os.path.exists(path):
        with open(path) as f:
            for line in f:
                record = json.loads(line)
                done[json.dumps(record["params"], sort_keys=True)] = record
    records = []
    t0 = time.time()
    with open(path, "a" if reuse else "w") as f:
        for i, params in enumerate(points):
            key = json.dumps(params, sort_keys=True)
            if key in done:
                records.append(done[key])
                continue
            m = objective(params)
            record = {"params": params, "value": m.value, "samples": list(m.samples),
                      "spread": m.spread, "status": m.status, "error": m.error}
            f.write(json.dumps(record) + "\n")
            f.flush()
            records.append(record)
            if (i + 1) % 25 == 0:
                print(f"  grid {i + 1}/{len(points)} measured, {time.time() - t0:.0f} s", flush=True)
    return records


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=20, help="grid values per parameter (20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the tuner (0)")
    parser.add_argument("--rounds", type=int, default=10, help="side-by-side runs at the end (10)")
    parser.add_argument("--reuse", action="store_true", help="keep grid points already measured")
    parser.add_argument("--c", type=float, default=None,
                        help="SPSA perturbation as a fraction of each range (default: the engine's "
                             "noise-aware rule)")
    args = parser.parse_args()

    os.makedirs(RESULTS, exist_ok=True)
    space, objective = settings.SPACE, settings.objective()
    print(f"space: {space}; each evaluation = {settings.REPEATS} timed runs "
          f"(+{settings.WARMUP} warm-up), median")
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, text=True,
                                capture_output=True).stdout.strip() or "unknown"
    except OSError:
        commit = "unknown"
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}; gdtools commit {commit}")

    points = grid_points(space, args.points)
    t0 = time.time()
    grid = measure_grid(objective, points, os.path.join(RESULTS, "imu_grid_points.jsonl"), args.reuse)
    ok = [r for r in grid if r["status"] == "ok"]
    grid_best = min(ok, key=lambda r: r["value"])
    print(f"grid: {len(grid)} evaluations ({len(grid) - len(ok)} failed), {time.time() - t0:.0f} s; "
          f"best {grid_best['params']} at {grid_best['value']:.4f} s")

    budget = len(grid) // 10
    t0 = time.time()
    gradient = "spsa" if args.c is None else gd.estimators.SPSA(c=args.c)
    suffix = "" if args.c is None else f"_c{args.c:g}"
    history = os.path.join(RESULTS, f"imu_tuner_history{suffix}.jsonl")
    if os.path.exists(history):
        os.remove(history)  # this script's own last run (minimize never replaces a history file)
    res = gd.minimize(objective, space=space, gradient=gradient, seed=args.seed, max_evals=budget,
                      history=history)
    tuner_best = best_measured(res.history)
    print(f"tuner ({'SPSA, default noise-aware c' if args.c is None else f'SPSA, c={args.c:g}'}, "
          f"seed {args.seed}): {res.nfev} evaluations (budget {budget}), {time.time() - t0:.0f} s; final point "
          f"{res.x} at {res.fun:.4f} s, best measured {tuner_best}; {res.message}")

    start = space.center()
    candidates = [start, grid_best["params"], dict(res.x)]
    if tuner_best != dict(res.x):
        candidates.append(tuner_best)
    print(f"side by side, {args.rounds} interleaved runs each (median ± standard deviation):")
    measured = remeasure(objective, candidates, rounds=args.rounds, warmup=1)
    labels = ["start (centre)", "grid best", "tuner final", "tuner best-measured"]
    for label, params, m in zip(labels, candidates, measured):
        print(f"  {label:20s} {str(params):32s} {m.value:.4f} ± {m.spread:.4f} s")
    m_grid = measured[1]
    m_tuner = min(measured[2:], key=lambda m: m.value)
    ratio = m_tuner.value / m_grid.value
    within = ratio <= 1.10
    cheap = res.nfev <= len(grid) / 10
    print(f"tuner / grid best time: {ratio:.3f} ({'within' if within else 'NOT within'} 10%); "
          f"evaluations {res.nfev} / {len(grid)} = {res.nfev / len(grid):.3f} "
          f"({'at most' if cheap else 'MORE than'} 1/10); speedup over the start "
          f"{measured[0].value / m_tuner.value:.2f}x")
    print(f"acceptance: {'MET' if within and cheap else 'MISSED'}")
    return 0 if within and cheap else 1


if __name__ == "__main__":
    sys.exit(main())
