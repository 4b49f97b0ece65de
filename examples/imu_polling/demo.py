"""``make demo``'s IMU part: tune the IMU pipeline on a small budget and draw its loss curve.

    python examples/imu_polling/demo.py --out out [--budget 24]

Runs in about a minute on a quiet two-core machine; writes ``OUT/loss.png`` (and ``OUT/imu_run.jsonl``,
the history). Prints the start and best settings and their times, measured again side by side.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gdtools as gd  # noqa: E402
from gdtools.plotting import mark_values  # noqa: E402
from gdtools.timing import best_measured, last_iterate, pick_best, remeasure  # noqa: E402
import settings  # noqa: E402


def run(out: str, *, budget: int = 24, seed: int = 0, filename: str = "loss.png") -> dict:
    """Tune on ``budget`` evaluations; write ``out/filename``; return the summary."""
    os.makedirs(out, exist_ok=True)
    space = settings.SPACE
    objective = settings.objective()
    history = os.path.join(out, "imu_run.jsonl")
    if os.path.exists(history):
        os.remove(history)  # the last demo's (minimize never replaces a history file itself)
    res = gd.minimize(objective, space=space, gradient="spsa", seed=seed, max_evals=budget, history=history)
    start = space.center()
    candidates = [start]
    # the result, the search's last iterate (the result stands in for it when the budget ran out
    # before it was measured) and the luckiest measurement, compared side by side
    for point in (res.x, last_iterate(res.history, space), best_measured(res.history)):
        if point is not None and point not in candidates:
            candidates.append(point)
    measured = remeasure(objective, candidates, rounds=3)
    best = pick_best(measured)  # the start included: it may still be the best
    if best is None:
        raise RuntimeError(f"no setting could be measured again: {[m.error for m in measured]}")
    path = os.path.join(out, filename)
    fig = gd.plot_history(res.history, x="evals", params=True)
    # the side-by-side measurements the summary reports, drawn as gdtools tune --plot draws them
    again = {"start, measured again": measured[0].value}
    if best != 0:
        again["best, measured again"] = measured[best].value
    mark_values(fig, again)
    fig.savefig(path, dpi=110)
    return {"start": start, "best": candidates[best], "start_time": measured[0].value,
            "best_time": measured[best].value, "nfev": res.nfev, "plot": path}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="out", help="directory for loss.png (out)")
    parser.add_argument("--budget", type=int, default=24, help="evaluations (24)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    summary = run(args.out, budget=args.budget, seed=args.seed)
    print(f"IMU polling: {summary['nfev']} evaluations; start {summary['start']} "
          f"{summary['start_time']:.3f} s -> best {summary['best']} {summary['best_time']:.3f} s "
          f"({summary['start_time'] / summary['best_time']:.2f}x); loss curve: {summary['plot']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
