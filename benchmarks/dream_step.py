"""One DeepDream ascent step, gdtools (JAX) against a PyTorch eager reference, in one process.

Both run the same network (EfficientNet-Lite0, the same folded weights, TF "SAME" padding), the same
objective (mean squared activation of ``--layer``), the same step (random roll, gradient of the
objective w.r.t. the image, ``g / mean|g|``, ascent by ``step_size``, clip to [0, 255]) on the same
``--size`` x ``--size`` image, interleaved round by round so that both see the same machine state.

gdtools' step is the real thing: ``gd.minimize`` with the dream's tiled estimator and normalised-
ascent optax transformation; its per-step time is the median interval between callbacks.

    python benchmarks/dream_step.py [--size 512] [--layer block11] [--rounds 5] [--steps 5] [--json out.json]

PyTorch runs with its default thread count and, on the CPU, also with one thread (on a busy
machine its spinning thread pool can make the default far slower); the ratio that counts is the one
against the faster of the two. PyTorch is a benchmark dependency only: ``pip install torch==2.13.0``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import gdtools as gd
from gdtools.dream import efficientnet, weights
from gdtools.dream.deepdream import PIXEL_RANGE, Dreamer
from gdtools.dream.tiling import TiledGradient


def torch_reference(params, layer: str, device: str):
    import torch
    import torch.nn.functional as F

    def tensor(a):
        return torch.from_numpy(np.ascontiguousarray(a)).to(device)

    def pad_same(x, k, s):
        ph, pw = efficientnet.same_padding(x.shape[2], k, s), efficientnet.same_padding(x.shape[3], k, s)
        return F.pad(x, (pw[0], pw[1], ph[0], ph[1]))

    stem_w, stem_b = tensor(params["stem"]["w"].transpose(3, 2, 0, 1)), tensor(params["stem"]["b"])
    blocks = []
    for block in params["blocks"]:
        entry = {}
        if "expand" in block:
            entry["expand"] = (tensor(block["expand"]["w"].T[:, :, None, None]), tensor(block["expand"]["b"]))
        entry["depthwise"] = (tensor(block["depthwise"]["w"].transpose(2, 0, 1)[:, None]),
                              tensor(block["depthwise"]["b"]), block["depthwise"]["w"].shape[0])
        entry["project"] = (tensor(block["project"]["w"].T[:, :, None, None]), tensor(block["project"]["b"]))
        blocks.append(entry)
    last = int(layer[len("block"):])

    def features(x):
        h = F.relu6(F.conv2d(pad_same(x, 3, 2), stem_w, stem_b, stride=2))
        for i, entry in enumerate(blocks[: last + 1]):
            stride, inp = efficientnet.BLOCK_STRIDES[i], h
            if "expand" in entry:
                h = F.relu6(F.conv2d(h, *entry["expand"]))
            w, b, k = entry["depthwise"]
            h = F.relu6(F.conv2d(pad_same(h, k, stride), w, b, stride=stride, groups=h.shape[1]))
            h = F.conv2d(h, *entry["project"])
            if stride == 1 and inp.shape[1] == h.shape[1]:
                h = h + inp
        return h

    generator = torch.Generator().manual_seed(0)

    def step(image, step_size=1.5, jitter=32):
        dy, dx = (int(v) for v in torch.randint(-jitter, jitter + 1, (2,), generator=generator))
        x = torch.roll(image, (dy, dx), dims=(2, 3)).requires_grad_(True)
        loss = features((x - 127.0) / 128.0).square().mean()
        (grad,) = torch.autograd.grad(loss, x)
        grad = torch.roll(grad, (-dy, -dx), dims=(2, 3))
        with torch.no_grad():
            image = (image + step_size * grad / (grad.abs().mean() + 1e-8)).clamp(0.0, 255.0)
        if device != "cpu":
            torch.cuda.synchronize()
        return image

    return step


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return round(1e3 * statistics.median(times), 3)


def breakdown(params_np, layer: str, image0, repeats: int, precisions=("float32", "bfloat16"),
              methods=("conv", "shifts")) -> dict:
    """Where a step's time goes: the network's value_and_grad on the image alone, for each depthwise
    form in ``methods`` and number format in ``precisions``, and the whole step (roll, gradient,
    normalised ascent, clip) as one jitted function (default depthwise form and format)."""
    from gdtools.dream.objectives import layer as layer_objective
    from gdtools.dream.tiling import TileObjective

    params = jax.tree_util.tree_map(jnp.asarray, params_np)
    image = jnp.asarray(image0)
    out = {}
    for precision in precisions:
        for method in methods:
            tile_objective = TileObjective(layer_objective(layer), params=params, tile=image.shape[0],
                                           depthwise=method, precision=precision)
            t0 = time.perf_counter()
            jax.block_until_ready(tile_objective(image))
            compile_s = time.perf_counter() - t0
            out[f"network value_and_grad, depthwise={method}, {precision}"] = {
                "ms": _median_ms(lambda: tile_objective(image), repeats), "compile_s": round(compile_s, 2)}

    method = efficientnet.resolve_depthwise("auto")
    precision = "float32"  # the default
    tile_objective = TileObjective(layer_objective(layer), params=params, tile=image.shape[0], depthwise=method,
                                   precision=precision)

    def fused_step(x, key, params):
        shift = jax.random.randint(key, (2,), -32, 33)
        _, grad = tile_objective._value_and_grad(params, jnp.roll(x, (shift[0], shift[1]), axis=(0, 1)))
        grad = jnp.roll(grad, (-shift[0], -shift[1]), axis=(0, 1))
        return jnp.clip(x + 1.5 * grad / (jnp.mean(jnp.abs(grad)) + 1e-8), *PIXEL_RANGE)

    key = jax.random.key(0)
    # The weights as constants of the program (closed over) and as its arguments (as the tile
    # objective takes them): on an H100 the closed-over form took 3x the network alone, in every run.
    for label, step, args in ((f"whole step as one jit (depthwise={method}, {precision})",
                               jax.jit(lambda x, key: fused_step(x, key, params)), ()),
                              (f"whole step as one jit, weights as arguments (depthwise={method}, {precision})",
                               jax.jit(fused_step), (params,))):
        t0 = time.perf_counter()
        jax.block_until_ready(step(image, key, *args))
        compile_s = time.perf_counter() - t0
        state = {"x": image}

        def run_fused(step=step, args=args, state=state):
            state["x"] = step(state["x"], key, *args)
            return state["x"]

        out[label] = {"ms": _median_ms(run_fused, repeats), "compile_s": round(compile_s, 2)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--layer", default="block11")
    parser.add_argument("--tile", type=int, help="tile side (default: --size, one tile)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per round and side")
    parser.add_argument("--json", help="also write the raw numbers here")
    parser.add_argument("--no-torch", action="store_true", help="time gdtools only")
    parser.add_argument("--precision", default="float32", choices=efficientnet.PRECISIONS,
                        help="gdtools' number format (float32, the default, or bfloat16); PyTorch runs in "
                             "float32 (its default, TF32 convolutions on a GPU)")
    parser.add_argument("--breakdown", action="store_true",
                        help="also time the network's value_and_grad alone (each depthwise form) and the "
                             "whole step as one jitted function, to show where a step's time goes")
    parser.add_argument("--breakdown-precisions", default="float32,bfloat16",
                        help="number formats of the network timed alone (comma-separated; each compiles)")
    parser.add_argument("--breakdown-methods", default="conv,shifts",
                        help="depthwise forms of the network timed alone (comma-separated; each compiles)")
    args = parser.parse_args()

    if args.no_torch:
        torch = None
        device = "none"
    else:
        import torch

        device = "cuda" if jax.default_backend() == "gpu" and torch.cuda.is_available() else "cpu"
    params_np = weights.load_params()
    dreamer = Dreamer(args.layer, tile=args.tile or args.size, steps=args.steps, octaves=1, precision=args.precision)
    image0 = np.random.default_rng(0).uniform(0, 255, (args.size, args.size, 3)).astype(np.float32)

    def gdtools_round(seed):
        estimator = TiledGradient(dreamer.tile_objective, shape=image0.shape, jitter=32)
        stamps = []
        result = gd.minimize(estimator.descent_value, jnp.asarray(image0), gradient=estimator,
                             optimizer=dreamer.optimizer(image0.shape), bounds=PIXEL_RANGE,
                             max_iters=args.steps + 1, seed=seed,
                             callback=lambda state: stamps.append((time.perf_counter(), time.process_time())))
        jax.block_until_ready(result.x)
        return [(b[0] - a[0], b[1] - a[1]) for a, b in zip(stamps, stamps[1:])]

    step = torch_reference(params_np, args.layer, device) if torch is not None else None

    default_threads = torch.get_num_threads() if torch is not None else 0
    torch_configs = [default_threads] + ([1] if device == "cpu" and default_threads > 1 else [])

    def torch_round(threads):
        torch.set_num_threads(threads)
        image = torch.from_numpy(image0.transpose(2, 0, 1)[None].copy()).to(device)
        times = []
        for _ in range(args.steps):
            t0, c0 = time.perf_counter(), time.process_time()
            image = step(image)
            times.append((time.perf_counter() - t0, time.process_time() - c0))
        return times

    t0 = time.perf_counter()
    gdtools_round(0)  # compile
    compile_s = time.perf_counter() - t0
    ours, theirs = [], {threads: [] for threads in torch_configs}
    if not args.no_torch:
        for threads in torch_configs:
            torch_round(threads)  # warm-up
    for r in range(args.rounds):
        ours += gdtools_round(r + 1)
        if not args.no_torch:
            for threads in torch_configs:
                theirs[threads] += torch_round(threads)
    if torch is not None:
        torch.set_num_threads(default_threads)
    ours_ms = 1e3 * statistics.median(t for t, _ in ours)
    ours_cpu_ms = 1e3 * statistics.median(c for _, c in ours)
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": os.cpu_count(),
        "backend": jax.default_backend(), "device": str(jax.devices()[0]),
        "jax": jax.__version__, "torch": torch.__version__ if torch is not None else None,
        "gdtools": gd.__version__,
        "size": args.size, "tile": args.tile or args.size, "layer": args.layer, "steps_timed": len(ours),
        "precision": dreamer.tile_objective.precision, "precision_setting": args.precision,
        "first_call_with_compilation_s": round(compile_s, 2),
        "gdtools_step_ms": round(ours_ms, 2),
        "gdtools_step_cpu_ms": round(ours_cpu_ms, 2),
        "gdtools_step_ms_all": [round(1e3 * t, 2) for t, _ in ours],
        "load_average_1min_at_end": None,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }
    print(f"{report['date']}  {report['machine']} ({report['cpus']} CPUs)  backend={report['backend']}  "
          f"jax {jax.__version__}  torch {report['torch']}  gdtools {gd.__version__}")
    print(f"one dream step, {args.size}x{args.size} -> {args.layer}, gdtools in {report['precision']}, "
          f"median of {len(ours)} steps "
          f"({args.rounds} interleaved rounds)")
    report["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    print("                               wall/step   CPU time/step (all threads)")
    print(f"  gdtools (JAX, gd.minimize)  {ours_ms:9.1f} ms  {ours_cpu_ms:9.1f} ms"
          f"   (first call incl. compilation {compile_s:.1f} s)")
    best_torch_ms = None
    for threads, times in theirs.items():
        if not times:
            continue
        theirs_ms = 1e3 * statistics.median(t for t, _ in times)
        theirs_cpu_ms = 1e3 * statistics.median(c for _, c in times)
        label = "" if threads == default_threads else f"_{threads}thread"
        report.update({f"torch_eager{label}_step_ms": round(theirs_ms, 2),
                       f"torch_eager{label}_step_cpu_ms": round(theirs_cpu_ms, 2),
                       f"torch_eager{label}_step_ms_all": [round(1e3 * t, 2) for t, _ in times],
                       f"ratio_gdtools_over_torch{label}": round(ours_ms / theirs_ms, 3)})
        best_torch_ms = theirs_ms if best_torch_ms is None else min(best_torch_ms, theirs_ms)
        name = f"PyTorch eager ({device}, {threads} thr)"
        print(f"  {name:<28}{theirs_ms:9.1f} ms  {theirs_cpu_ms:9.1f} ms   ratio gdtools/PyTorch "
              f"{ours_ms / theirs_ms:.2f}x (wall)")
    if best_torch_ms is not None:
        report.update(torch_device=device, torch_threads_default=default_threads,
                      ratio_gdtools_over_fastest_torch=round(ours_ms / best_torch_ms, 3))
        print(f"  ratio against PyTorch's faster configuration: {ours_ms / best_torch_ms:.2f}x")
    print(f"  load average (1 min) at the end: {report['load_average_1min_at_end']} on {report['cpus']} CPUs")
    if args.breakdown:
        report["breakdown"] = breakdown(params_np, args.layer, image0, args.steps * args.rounds,
                                        precisions=[p for p in args.breakdown_precisions.split(",") if p],
                                        methods=[m for m in args.breakdown_methods.split(",") if m])
        for name, entry in report["breakdown"].items():
            print(f"  {name:<52}{entry['ms']:9.2f} ms   (compilation {entry['compile_s']:.1f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
