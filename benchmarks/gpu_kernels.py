"""Where the device time of the dream's network goes, kernel by kernel, from a JAX profiler trace.

Runs the tile objective (value and gradient of the layer energy, as a dream step calls it) ``--calls``
times under ``jax.profiler.trace``, reads the Perfetto trace it writes and prints the device
operations by total time, so that the next change to the network aims at what costs most.

    python benchmarks/gpu_kernels.py [--size 1024] [--layer block11] [--precision float32] [--calls 20]
        [--top 40] [--out DIR]

On a machine without a GPU it lists the host's XLA operations instead (a smoke test of the script).
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from gdtools.dream import efficientnet, weights
from gdtools.dream.objectives import layer as layer_objective
from gdtools.dream.tiling import TileObjective


def device_events(trace) -> dict[str, list[dict]]:
    """The complete ("X") events of the trace's device processes, by thread (on a GPU: its streams,
    with the kernels, and the "XLA Ops" and "XLA Modules" lines; without one, the host's XLA
    operations)."""
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    processes = {e["pid"]: e.get("args", {}).get("name", "") for e in events
                 if e.get("ph") == "M" and e.get("name") == "process_name"}
    threads = {(e["pid"], e.get("tid")): e.get("args", {}).get("name", "") for e in events
               if e.get("ph") == "M" and e.get("name") == "thread_name"}
    gpu = {pid for pid, name in processes.items() if "GPU" in name or "gpu" in name}
    wanted = gpu or {pid for pid, name in processes.items() if "XLA Ops" in name or "/host:CPU" in name}
    grouped = collections.defaultdict(list)
    for e in events:
        if e.get("ph") == "X" and e.get("pid") in wanted and "dur" in e and not e["name"].startswith("$"):
            # ("$file.py:line function" events are Python, not operations)
            grouped[f"{processes[e['pid']]} / {threads.get((e['pid'], e.get('tid')), e.get('tid'))}"].append(e)
    return dict(grouped)


def summarise(events: list[dict], calls: int, top: int) -> dict:
    by_name = collections.defaultdict(lambda: [0.0, 0])
    for e in events:
        entry = by_name[e["name"]]
        entry[0] += float(e["dur"])
        entry[1] += 1
    total = sum(v[0] for v in by_name.values())
    rows = sorted(by_name.items(), key=lambda item: -item[1][0])
    return {"us_per_call": round(total / max(calls, 1), 1), "distinct": len(rows),
            "events_per_call": round(sum(v[1] for v in by_name.values()) / max(calls, 1), 1),
            "top": [{"name": name, "us_per_call": round(us / calls, 2), "share": round(us / total, 4) if total else 0.0,
                     "per_call": round(n / calls, 2)} for name, (us, n) in rows[:top]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--layer", default="block11")
    parser.add_argument("--precision", default="float32", choices=efficientnet.PRECISIONS)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--out", help="folder for the trace and kernels.json (default: a temporary one)")
    args = parser.parse_args()

    out = args.out or tempfile.mkdtemp(prefix="gdtools-trace-")
    os.makedirs(out, exist_ok=True)
    params = jax.tree_util.tree_map(jnp.asarray, weights.load_params())
    objective = TileObjective(layer_objective(args.layer), params=params, tile=args.size, precision=args.precision)
    image = jnp.asarray(np.random.default_rng(0).uniform(0, 255, (args.size, args.size, 3)).astype(np.float32))
    for _ in range(3):  # compile and warm up outside the trace
        jax.block_until_ready(objective(image))
    times = []
    for _ in range(args.calls):
        t0 = time.perf_counter()
        jax.block_until_ready(objective(image))
        times.append(time.perf_counter() - t0)
    wall_ms = 1e3 * float(np.median(times))  # one call waited for, median
    with jax.profiler.trace(os.path.join(out, "trace"), create_perfetto_trace=True):
        for _ in range(args.calls):
            jax.block_until_ready(objective(image))
    paths = glob.glob(os.path.join(out, "trace", "**", "perfetto_trace.json.gz"), recursive=True)
    if not paths:
        raise SystemExit(f"no perfetto_trace.json.gz under {out}/trace")
    with gzip.open(paths[0], "rt") as fh:
        trace = json.load(fh)
    groups = {name: summarise(events, args.calls, args.top) for name, events in device_events(trace).items()}
    summary = dict(size=args.size, layer=args.layer, precision=objective.precision, depthwise=objective.method,
                   backend=jax.default_backend(), device=str(jax.devices()[0]), jax=jax.__version__, calls=args.calls,
                   wall_ms_per_call_untraced=round(wall_ms, 3), groups=groups)
    with open(os.path.join(out, "kernels.json"), "w") as fh:
        json.dump(summary, fh, indent=1)
    print(f"{summary['device']}: value and gradient to {args.layer} at {args.size}², {summary['precision']}, "
          f"depthwise={summary['depthwise']}: {wall_ms:.3f} ms a call untraced (median of {args.calls})")
    for name, group in sorted(groups.items(), key=lambda item: -item[1]["us_per_call"]):
        print(f"{name}: {group['us_per_call']:.0f} us a call, {group['events_per_call']:g} events "
              f"({group['distinct']} distinct)")
        for row in group["top"]:
            print(f"  {row['us_per_call']:9.1f} us  {100 * row['share']:5.1f}%  x{row['per_call']:<5g} {row['name'][:110]}")


if __name__ == "__main__":
    main()
