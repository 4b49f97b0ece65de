"""Run the CPU benchmarks and regenerate docs/benchmarks.md from what they wrote.

    python benchmarks/run_all.py              # full: every CPU benchmark, then the page (< 20 min, 2 cores)
    python benchmarks/run_all.py --docs-only  # only regenerate docs/benchmarks.md from benchmarks/results/
    python benchmarks/run_all.py --quick --out DIR   # tiny budgets into DIR (the page too), for tests

Each benchmark is its own script, run here as a subprocess one after another (never two at once, so
that timings are not disturbed by each other); their stdout is kept in
``benchmarks/results/<name>.txt``. DeepDream's step benchmark (``benchmarks/dream_step.py``, owned
by the DeepDream work) is run when it and PyTorch are present, and its JSON is read back; GPU
results written by ``benchmarks/gpu.sh`` are shown when a results file of theirs is present.
The page holds only numbers the scripts printed (and wrote to their JSON), each table beside its
machine, versions, commit and date.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import _common  # noqa: E402

SCRIPTS = ("noisy_blackbox", "noisy_imu", "compiled_overhead", "fd_accuracy")
DREAM_JSON = "dream_step.json"


def run_script(name, args, log_dir):
    cmd = [sys.executable, os.path.join(HERE, f"{name}.py")] + args
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=_common.ROOT)
    wall = time.perf_counter() - t0
    with open(os.path.join(log_dir, f"{name}.txt"), "w") as fh:
        fh.write(proc.stdout)
        if proc.returncode:
            fh.write("\n--- stderr ---\n" + proc.stderr[-5000:])
    status = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
    print(f"{name}: {status} in {wall:.0f} s", flush=True)
    if proc.returncode:
        print(proc.stderr[-3000:], file=sys.stderr)
    return dict(name=name, status=status, wall_s=wall)


def run_dream(out):
    script = os.path.join(HERE, "dream_step.py")
    if not os.path.exists(script):
        print("dream_step: benchmarks/dream_step.py not present; skipped")
        return dict(name="dream_step", status="not present", wall_s=0.0)
    if importlib.util.find_spec("torch") is None:
        print("dream_step: PyTorch not installed (pip install torch==2.13.0); skipped")
        return dict(name="dream_step", status="skipped: no torch", wall_s=0.0)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, script, "--json", os.path.join(out, DREAM_JSON)],
                          capture_output=True, text=True, cwd=_common.ROOT)
    wall = time.perf_counter() - t0
    with open(os.path.join(out, "dream_step.txt"), "w") as fh:
        fh.write(proc.stdout + ("\n--- stderr ---\n" + proc.stderr[-5000:] if proc.returncode else ""))
    status = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
    print(f"dream_step: {status} in {wall:.0f} s", flush=True)
    return dict(name="dream_step", status=status, wall_s=wall)


# -- the page ------------------------------------------------------------------------------------

def _load(directory, name):
    path = os.path.join(directory, name)
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        return json.load(fh)


def _figure(path, docs_dir):
    """A figure path as the page links it: relative to docs/."""
    if os.path.isabs(path):
        return os.path.relpath(path, docs_dir)
    return os.path.relpath(os.path.join(_common.ROOT, path), docs_dir)


def _status(ok):
    if ok == "met" or ok is True:
        return "**met**"
    if ok in ("MISSED", False):
        return "**MISSED**"
    return f"**{ok}**"


def noisy_section(data, docs_dir):
    from noisy_blackbox import CONTENDERS, DEFAULT  # noqa: F401  (labels only)

    lines = ["## 1. Noisy black-box suite", ""]
    if data is None:
        return lines + ["Not run yet: `python benchmarks/noisy_blackbox.py`.", ""], []
    lines += [
        f"`benchmarks/noisy_blackbox.py` — {_common.machine_line(data['machine'])}. "
        f"Budget B = {data['budget']} evaluations, checkpoints {data['budgets']}, {data['seeds']} seeds; "
        f"whole suite {data['wall_s']:.0f} s.",
        "",
        "Protocol (the script's docstring has the details): every contender starts at x0 = 0 with the "
        "same budget, seeds and noise model (noise drawn independently per evaluation from a generator "
        "seeded by problem and seed, so evaluation i of every contender sees the same draw; no common "
        "random numbers for anyone). Each keeps its documented defaults. gdtools' default for a noisy "
        "black box is `gradient=\"spsa\"` (what `gdtools tune` uses; `gd.minimize(fun(x, key), x0)` "
        "with no `gradient` raises, naming SPSA first). The metric is the noise-free excess "
        "f(x) − min f of each method's recommended point; methods whose run depends on the budget are "
        "re-run at each checkpoint, cma and Optuna (whose runs do not) are read along one run. "
        f"Optuna TPE stops at {data['optuna_budget']} trials because its cost per trial grows with "
        "the number of trials; it needs a box and gets [−5, 5]ⁿ with x0 enqueued as its first trial. "
        "The target is an excess of 1% of the excess at x0; \"evals to target\" is the median over "
        "seeds of the first checkpoint reaching it (∞ unless more than half the seeds reach it); with "
        "checkpoints a factor 2 apart, \"at most half the best peer's evaluations\" means reaching it at "
        "least one checkpoint earlier. \"s per run\" is the wall time of one seed's runs at all four "
        "budgets, on the machine above (shared with other work: see its load average).",
        "",
        "In the figures, solid lines are gdtools, dashed lines the peers; curves lying on the dash-dot "
        "line (the excess at x0) are methods that never get away from the start, and a method drawn at "
        "the top edge diverged (or crashed, as its legend says).",
        "",
        "Targets for gdtools' default (from the issue): (1) reach the target in at most half the "
        "evaluations of the best peer; (2) end at the full budget no more than 10% worse than the "
        "best peer.",
        "",
    ]
    verdicts = []
    for s in data["summaries"]:
        budgets = s["budgets"]
        lines += [f"### {s['title']}", "",
                  f"Excess at x0 {_common.fmt(s['start_excess'], 4)}; target excess ≤ "
                  f"{_common.fmt(s['target'], 4)}.", ""]
        header = ["contender"] + [f"excess @ {b}" for b in budgets] + ["IQR @ B", "evals to target",
                                                                         "seeds reaching", "s per run"]
        rows = []
        for name, t in s["contenders"].items():
            pb = {int(k): v for k, v in t["per_budget"].items()}
            cells = [_common.fmt(pb[b]["median"]) if b in pb else "not run" for b in budgets]
            last = pb.get(max(budgets))
            iqr = f"{_common.fmt(last['q1'])} – {_common.fmt(last['q3'])}" if last else "–"
            reach = "not reached" if t["evals_to_target"] in (None, float("inf")) or \
                t["evals_to_target"] != t["evals_to_target"] else f"{t['evals_to_target']:.0f}"
            label = f"**{name}**" if name == DEFAULT else name
            rows.append([label] + cells + [iqr, reach, f"{t['reached']}/{t['seeds']}",
                                           _common.fmt(t["wall_median"], 2)])
        lines += [_common.markdown_table(header, rows), ""]
        crashes = [(n, t) for n, t in s["contenders"].items() if t.get("errors")]
        for n, t in crashes:
            lines += [f"- {n}: {t['errors']} of {t['seeds'] * len(budgets)} runs crashed inside the "
                      f"package (counted as excess ∞): `{t['error']}`"]
        if crashes:
            lines += [""]
        v = s["verdict"]
        lines += [f"- Target 1 (speed): {_status(v['speed']['status'])} — {v['speed']['text']}.",
                  f"- Target 2 (final value): {_status(v['final']['status'])} — {v['final']['text']}.", "",
                  f"![{s['title']}]({_figure(s['figure'], docs_dir)})", ""]
        verdicts.append((f"noisy suite, {s['title']}: reach target in ≤ ½ the best peer's evaluations",
                         v["speed"]["status"], v["speed"]["text"]))
        verdicts.append((f"noisy suite, {s['title']}: final excess ≤ 1.1 × best peer's",
                         v["final"]["status"], v["final"]["text"]))
    return lines, verdicts


def imu_section(data, docs_dir):
    """The noisy suite's fourth problem, the IMU program's real run time (benchmarks/noisy_imu.py)."""
    lines = ["### IMU example program's real run time", ""]
    if data is None:
        return lines + ["Not run yet: `python benchmarks/noisy_imu.py`.", ""], []
    s = data["summary"]
    budgets = [int(b) for b in s["budgets"]]
    ref = s["reference"]
    lines += [f"`benchmarks/noisy_imu.py` — {_common.machine_line(data['machine'])}. Budget "
              f"B = {data['budget']} evaluations (a tenth of `benchmarks/imu_grid.py`'s grid, as in the "
              f"tuning acceptance), checkpoints {budgets}, {data['seeds']} seeds, one timed run of the "
              f"program's `run` on a {data['seconds_of_recording']:g}-second recording per evaluation, "
              f"contenders one after another in one process; whole problem {data['wall_s']:.0f} s.", "",
              "The objective is a real, noisy wall-clock time over two integer, log-scaled settings, so "
              "the contenders are those whose defaults handle integers: gdtools' default "
              "(`gradient=\"spsa\"` on the `Space`), NGOpt, Optuna TPE and pycma (on the unit square of "
              "the log coordinates, rounded). There is no noise-free truth: every recommended setting, the "
              "start and the grid's best setting are measured again at the end, interleaved, "
              f"{data['rounds']} runs each (median), and the excess is a setting's time over the fastest "
              f"of them ({ref['params']}, {_common.fmt(ref['seconds'], 4)} s; the start takes "
              f"{_common.fmt(data['start']['seconds'], 4)} s) minus 1. The target is an excess ≤ 0.10; "
              "target 2 compares times at the full budget. \"s per seed\" is the wall time of one seed's "
              "runs at all budgets: gdtools and NGOpt run once per budget, Optuna and pycma once, read at "
              "each budget (pycma asks in whole generations, so it may stop a few evaluations short).", ""]
    header = ["contender"] + [f"excess @ {b}" for b in budgets] + ["IQR @ B", "time @ B s", "evals to target",
                                                                     "seeds reaching", "s per seed"]
    rows = []
    for name, t in s["contenders"].items():
        pb = {int(k): v for k, v in t["per_budget"].items()}
        last = pb.get(max(budgets))
        reach = t["evals_to_target"]
        rows.append([f"**{name}**" if name.startswith("gdtools default") else name]
                    + [_common.fmt(pb[b]["median"]) if b in pb else "–" for b in budgets]
                    + [f"{_common.fmt(last['q1'])} – {_common.fmt(last['q3'])}" if last else "–",
                       _common.fmt(last["seconds"]) if last else "–",
                       "not reached" if reach is None or reach != reach or reach == float("inf")
                       else f"{reach:.0f}", f"{t['reached']}/{t['seeds']}", _common.fmt(t["wall_median"], 2)])
    v = s["verdict"]
    lines += [_common.markdown_table(header, rows), "",
              f"- Target 1 (speed): {_status(v['speed']['status'])} — {v['speed']['text']}.",
              f"- Target 2 (final time): {_status(v['final']['status'])} — {v['final']['text']}.", "",
              f"![IMU example's run time]({_figure(s['figure'], docs_dir)})", ""]
    title = "IMU example's real run time"
    verdicts = [(f"noisy suite, {title}: reach target in ≤ ½ the best peer's evaluations",
                 v["speed"]["status"], v["speed"]["text"]),
                (f"noisy suite, {title}: final time ≤ 1.1 × best peer's", v["final"]["status"],
                 v["final"]["text"])]
    return lines, verdicts


def overhead_section(data):
    lines = ["## 2. Compiled-solver overhead", ""]
    if data is None:
        return lines + ["Not run yet: `python benchmarks/compiled_overhead.py`.", ""], []
    lines += [f"`benchmarks/compiled_overhead.py` — {_common.machine_line(data['machine'])}.", "",
              "### gd.minimize(gradient=\"autodiff\") against a hand-written `lax.fori_loop` optax loop", "",
              "Rosenbrock, `tol=0` (both run every iteration, and both end at the same point: \"same "
              "path\"), float64, times after compile, median of interleaved repeats, for two optimizers: "
              "`optax.adam(1e-3)`, whose hand-written loop is `grad → update → apply_updates`, and gdtools' "
              "default `optax.lbfgs()`, whose hand-written loop is the one optax documents "
              "(`value_and_grad_from_state → update(…, value=, grad=, value_fn=) → apply_updates`). "
              "Runs shorter than 0.05 s are timed several calls at a time, the same number for "
              "every contender (\"calls per timing\"), and the times are per call. "
              "\"gdtools program\" is the compiled program `gd.minimize` runs, jitted once; "
              "\"gd.minimize call\" is the whole call a user makes: validation, the compiled program (kept "
              "between calls with the same objective and settings) and packaging the history.", ""]
    rows, verdicts = [], []
    for r in data["overhead"]:
        name = r.get("optimizer", "adam")
        rows.append([name, r["n"], r["iters"], r.get("number", 1), _common.fmt(r["hand_s"]), _common.fmt(r["engine_s"]),
                     f"{r['ratio']:.2f} ({r['ratio_q1']:.2f}–{r['ratio_q3']:.2f})",
                     _status("met" if r["met"] else "MISSED"),
                     _common.fmt(r.get("hand_record_s")), _common.fmt(r.get("ratio_record")),
                     _common.fmt(r["call_s"]), f"{r['call_ratio']:.0f}", _common.fmt(r["compile_engine_s"]),
                     f"{r['same_path']} ({r.get('deviation', float('nan')):.1e})"])
        verdicts.append((f"compiled program ≤ {data['target']}× a hand-written fori_loop ({name}, n = {r['n']})",
                         "met" if r["met"] else "MISSED", f"ratio {r['ratio']:.2f}"))
    lines += [_common.markdown_table(["optimizer", "n", "iterations", "calls per timing", "hand loop s", "gdtools program s",
                                      "ratio (IQR)", f"≤ {data['target']}×", "hand loop + history record s",
                                      "gdtools / that", "gd.minimize call s", "call / hand loop",
                                      "gdtools compile s", "same path (max rel. deviation)"], rows), "",
              "\"hand loop + history record\" is the same hand-written loop storing (and returning) "
              "what gdtools' history keeps: the loss of every iterate (adam's loop then computes "
              "`value_and_grad` instead of `grad`; L-BFGS's computes the value anyway) and, where gdtools "
              "records the trajectory (n × (iterations + 1) ≤ 4,000,000 numbers), every iterate x. The "
              "ratio to it shows how much of the overhead is the history itself and how much the "
              "engine's loop machinery."]
    kept = [r for r in data["overhead"] if r.get("optimizer", "adam") == "adam" and r.get("hand_record_s")]
    if kept:
        lines[-1] += (" With adam, the hand loop keeping the same history took "
                      + ", ".join(f"{r['hand_record_s'] / r['hand_s']:.2f}× the bare one at n = {r['n']}" for r in kept)
                      + "; gdtools' program took " + ", ".join(f"{r['ratio_record']:.2f}× that" for r in kept)
                      + " (same order).")
    lines += [""]
    small = [r for r in data["overhead"]
             if r.get("hand_record_s") and r["n"] <= 100 and r.get("optimizer", "adam") == "adam"]
    if small:
        r = small[0]
        lines += [f"Why small problems cost more: XLA:CPU compiles a `while` loop that touches less than "
                  "about 1 kB per iteration into one function (its small-while-loop pass) and runs any "
                  "larger loop kernel by kernel, each kernel paying a dispatch. The bare hand-written loop "
                  f"at n = {r['n']} is that small; a loop that writes a history of one row per iteration "
                  f"into a buffer for the whole run is not (the recording hand loop takes "
                  f"{r['hand_record_s'] / r['hand_s']:.1f}× the bare one here). gdtools' program therefore "
                  "runs a small problem's iterations in chunks of 4 to 16, their rows kept in small buffers "
                  "and copied into the history once per chunk, so that the inner loop compiles whole "
                  "(`gdtools/compiled_loop.py`). The run of this script before that change printed 4.67× at n = 10, "
                  "against a hand loop that took 7.0e-04 s then (the machine's load moves the baseline). Where the "
                  "loop is not small either way (n = 1000 and up), what the engine adds to the bare loop is "
                  "the loss and the largest gradient component, reduced and written every iteration, x written "
                  "every iteration (where it is recorded), and its stopping tests; the \"gdtools / that\" "
                  "column compares it with a hand loop that records the same history. The largest component of 33 to 4096 numbers is one variadic reduction "
                  "(XLA:CPU rewrites a plain one into a reduce-window tree of three kernels); the run of this "
                  "script before it, at f702363, printed 2.60× for adam at n = 1000. The same run printed "
                  "1.21× for L-BFGS at n = 10, whose program has not changed since (the same HLO): between "
                  "runs that figure moves with the machine.", ""]
    lbfgs = [r for r in data["overhead"] if r.get("optimizer") == "lbfgs"]
    if lbfgs:
        ratios = ", ".join(f"{r['ratio']:.2f}× at n = {r['n']}" for r in lbfgs)
        lines += ["With gdtools' default, L-BFGS, each iteration runs optax's zoom line search (the "
                  "objective evaluated at one or more trial points), so the engine's own work per "
                  "iteration (the largest gradient component, a history row, the stopping tests) weighs "
                  f"less: {ratios}. The shortest run (n = {lbfgs[0]['n']}, {lbfgs[0]['iters']} "
                  "iterations) also pays the program's fixed costs once per call: the history buffers "
                  "and the step back to the last finite point after a failure.", ""]
    lines += ["### Time to tolerance against scipy L-BFGS-B fed jitted JAX gradients", "",
              "Rosenbrock from x0 = 0, both to a largest gradient component ≤ 1e-5; gdtools' default "
              "(L-BFGS, one compiled program) timed as a whole call: **cold**, a new objective whose solver "
              "the call compiles, and **warm**, the same objective again (the compiled solver is kept "
              "between calls); scipy's `jax.jit(jax.value_and_grad(f))` compiled before timing. Ratios are "
              "medians of the per-repeat ratios.", ""]
    rows = []
    for r in data["tolerance"]:
        rows.append([r["n"], _common.fmt(r["gd_cold_s"]), _common.fmt(r["gd_warm_s"]), _common.fmt(r["scipy_s"]),
                     f"{r['ratio_cold']:.2f}", f"{r['ratio_warm']:.2f}",
                     f"{r['gd']['nit']} / {r['gd']['nfev']}", f"{r['scipy']['nit']} / {r['scipy']['nfev']}",
                     _common.fmt(r["gd"]["err"]), _common.fmt(r["scipy"]["err"]),
                     f"{r['gd']['success']} / {r['scipy']['success']}"])
    lines += [_common.markdown_table(["n", "gdtools cold s", "gdtools warm s", "scipy s", "cold / scipy",
                                      "warm / scipy", "gdtools nit / nfev", "scipy nit / nfev",
                                      "gdtools max \\|x−1\\|", "scipy max \\|x−1\\|", "success (gdtools / scipy)"], rows),
              "",
              "A cold call is mostly compilation (XLA compiling L-BFGS with its line search), paid once per "
              "objective and settings in a process. JAX's persistent compilation cache "
              "(`jax.config.update(\"jax_compilation_cache_dir\", ...)`) keeps it across processes too.", ""]
    b = data["batch"]
    lines += [f"### {b['count']} starting points in one compiled program", "",
              f"10-d Rosenbrock, starts uniform in [−2, 2], L-BFGS, max_iters {b['max_iters']}. "
              f"`gd.minimize(f, starts, batch=True)` (vmapped: one program for all starts), its first call "
              f"(which compiles it) and a second call, against a Python loop of `gd.minimize` over all "
              f"{b['count']} starts (its first call compiles the single-start solver, the others reuse it). "
              f"Each side has its own objective function, so neither reuses the other's program.", "",
              _common.markdown_table(
                  ["batch=True, first call s", "batch=True, again s", f"loop over {b['count']} s",
                   "loop / batch, first calls", "loop / batch, compiled", "same answers", "converged in the batch"],
                  [[_common.fmt(b["batch_cold_s"]), _common.fmt(b["batch_warm_s"]), _common.fmt(b["loop_s"]),
                    f"{b['speedup_cold']:.2f}×", f"{b['speedup_warm']:.1f}×", b["agree"],
                    f"{b['batch_converged']}/{b['count']}"]]), "",
              "\"loop / batch, compiled\" compares the loop without its first call (scaled to all starts) "
              "with the batch's second call. " + _batch_verdict(b["speedup_cold"], b["speedup_warm"]), ""]
    fresh = data.get("new_data")
    if fresh:
        lines += ["### New data each call: a closure against `args=`", "",
                  f"One model, L2-regularised logistic regression ({fresh['features']} features, "
                  f"{fresh['samples']} samples), fitted to {fresh['datasets']} datasets of the same shapes, "
                  "as a user fits it to each of many subjects, days or bootstrap samples: "
                  "`gd.minimize(lambda w: loss(w, X, y), w0)` (a new function per dataset, so a new program "
                  "to compile in every call), `gd.minimize(loss, w0, args=(X, y))` (the data are inputs of "
                  "one program, compiled in the first call), and scipy L-BFGS-B fed a jitted "
                  "`value_and_grad(loss)` that takes the data as arguments (compiled before timing). "
                  "Interleaved per dataset; medians over the datasets after the first.", "",
                  _common.markdown_table(
                      ["closure per dataset s", "args= s", "args= first call s", "scipy L-BFGS-B s",
                       "closure / args=", "args= / scipy", "max \\|x_args − x_scipy\\|"],
                      [[_common.fmt(fresh["closure_s"]), _common.fmt(fresh["args_s"]),
                        _common.fmt(fresh["args_first_s"]), _common.fmt(fresh["scipy_s"]),
                        f"{fresh['closure_over_args']:.0f}×", f"{fresh['args_over_scipy']:.2f}",
                        f"{fresh['max_gap']:.1e}"]]), ""]
    return lines, verdicts


def _batch_verdict(speedup_cold: float, speedup_warm: float) -> str:
    """Which of a loop and a batch was faster, with and without compilation, in words."""
    why = ("the vmapped L-BFGS program takes longer to compile than the single-start one, and a call "
           "of the single-start program costs little.")
    if 0.9 <= speedup_cold <= 1.1:
        cold = "Including compilation, the two take about the same time here (within 10%): " + why
    elif speedup_cold > 1:
        cold = "Including compilation, the batch is the faster here."
    else:
        cold = "Including compilation, the loop is the faster here: " + why
    warm = " Once compiled, the batch is the faster." if speedup_warm > 1 else " Even compiled, the loop is the faster."
    return cold + warm


def fd_section(data, docs_dir):
    lines = ["## 3. Finite-difference accuracy and cost", ""]
    if data is None:
        return lines + ["Not run yet: `python benchmarks/fd_accuracy.py`.", ""], []
    lines += [f"`benchmarks/fd_accuracy.py` — {_common.machine_line(data['machine'])}.", "",
              "A smooth 5-d function with f ≈ 10, additive Gaussian noise of standard deviation σ, "
              f"relative gradient error ‖ĝ − g‖ / ‖g‖, median over {data['draws']} noise draws, each method "
              "at its default step. \"noise given\": gdtools' estimators told σ (as `minimize` is with "
              "`noise=` or repeats) after `observe(f(x))`, the engine's first iteration; \"later "
              "iterations\": the same after one earlier estimate. Best per column in bold.", ""]
    header = ["method", "evals / gradient"] + [f"σ = {s:g}" for s in data["sigmas"]]
    best = [min(errs[i] for errs in data["errors"].values()) for i in range(len(data["sigmas"]))]
    rows = []
    for name, errs in data["errors"].items():
        cells = [f"**{_common.fmt(e)}**" if e <= best[i] * 1.0000001 else _common.fmt(e)
                 for i, e in enumerate(errs)]
        rows.append([name, data["costs"][name]] + cells)
    lines += [_common.markdown_table(header, rows), ""]
    lines += [f"Where the noise-aware rule (best gdtools \"noise given\" row) beats every other method of "
              f"the same cost (≤ 2n + 1 = {data.get('cheap', 11)} evaluations per gradient):", "",
              _common.markdown_table(["σ", "noise-aware", "best other", "its error", "noise-aware wins"],
                                     [[f"{w['sigma']:g}", _common.fmt(w["noise_aware"]), w["best_other"],
                                       _common.fmt(w["best_other_error"]),
                                       "yes" if w["wins"] else ("tie" if w.get("tie") else "no")]
                                      for w in data["wins"]]), "",
              f"![finite-difference accuracy]({_figure(data['figure'], docs_dir)})", ""]
    return lines, []


def _precision(step) -> str:
    """The number format a GPU step ran in (rows written before gpu.sh recorded it: float32)."""
    return step.get("precision") or "float32"


def dream_verdicts(results_dir):
    """The DeepDream issue's targets: the CPU step against PyTorch, and the GPU ones if measured."""
    verdicts = []
    cpu = _load(results_dir, "dream_step.json")
    if isinstance(cpu, dict) and cpu.get("ratio_gdtools_over_fastest_torch") is not None:
        ratio = float(cpu["ratio_gdtools_over_fastest_torch"])
        verdicts.append((f"DeepDream CPU step at {cpu.get('size', 512)}² ≤ 1.0× PyTorch CPU eager (its faster "
                         "thread setting)", "met" if ratio <= 1.0 else "MISSED", f"ratio {ratio:.3f}"))
    gpu = _load(results_dir, "gpu_dream.json")
    targets = ("DeepDream GPU (H100) step at 1024² to block11 ≤ 1.2 ms",
               "DeepDream GPU step ≤ 0.15× PyTorch eager in the same run",
               "whole `gdtools dream` at 1024², 4 octaves × 10 steps, warm cache ≤ 3 s on the GPU")
    if not isinstance(gpu, dict):
        for target in targets:
            verdicts.append((target, "not measured", "no GPU results file; `benchmarks/gpu.sh` is the script to run"))
        return verdicts
    device = gpu.get("device_name") or gpu.get("device", "GPU")
    step = next((r for r in gpu.get("steps", [])  # the default number format's step, not the comparison's
                 if r.get("size") == 1024 and _precision(r) == "float32"), None)
    if step is None:
        verdicts += [(t, "not measured", "gpu_dream.json has no 1024² step") for t in targets[:2]]
    else:
        ms, ratio = float(step["gdtools_step_ms"]), step.get("ratio_gdtools_over_torch")
        verdicts.append((targets[0], "met" if ms <= 1.2 else "MISSED", f"{ms:.2f} ms ({device}, {gpu.get('date')})"))
        verdicts.append((targets[1], "not measured" if ratio is None else ("met" if ratio <= 0.15 else "MISSED"),
                         f"ratio {ratio:.3f} (PyTorch eager {step.get('torch_eager_step_ms')} ms)"
                         if ratio is not None else "no PyTorch run"))
    runs = [r for r in gpu.get("process", []) if r.get("run", "").startswith("warm")]
    warm = [r for r in runs if r.get("ok", True)]
    if not warm or len(warm) < len(runs):
        verdicts.append((targets[2], "not measured", "a warm-cache run in gpu_dream.json failed" if runs
                         else "no warm-cache run in gpu_dream.json"))
    else:  # judged by the slowest warm run: each is one process, and the machine's spread is real
        slowest = max(r["wall_s"] for r in warm)
        verdicts.append((targets[2], "met" if slowest <= 3.0 else "MISSED",
                         " and ".join(f"{r['wall_s']:.2f} s" for r in warm) + f" ({device}"
                         + (f", network in {warm[0]['precision']})" if warm[0].get("precision") else ")")))
    return verdicts


def kernel_lines(kernels, steps):
    """What benchmarks/gpu_kernels.py's trace says about one network call, beside the step it is in."""
    if not isinstance(kernels, dict) or not kernels.get("groups"):
        return []
    group = max(kernels["groups"].values(), key=lambda g: g["us_per_call"])
    step = next((r for r in steps if r.get("size") == kernels.get("size") and _precision(r) == kernels.get("precision")),
                None)
    busy = group["us_per_call"] / 1e3 / kernels["wall_ms_per_call_untraced"]
    lines = [f"Inside one network call ({kernels['size']}², {kernels['precision']}, depthwise={kernels['depthwise']}; "
             f"a profiler trace by `benchmarks/gpu_kernels.py`, {kernels['device']}, table in "
             f"[`gpu_kernels.txt`](../benchmarks/results/gpu_kernels.txt)): the GPU ran {group['events_per_call']:g} "
             f"kernels for {group['us_per_call']:.0f} µs in a call that took {kernels['wall_ms_per_call_untraced']:.2f} ms "
             f"waited for, so it was busy {busy:.0%} of the call; the largest kernel took "
             f"{group['top'][0]['us_per_call']:.0f} µs."]
    kernel_bound = group["us_per_call"] / 1e3 > 1.2
    if kernel_bound:
        lines += ["The kernels alone take longer than the 1.2 ms target for the whole step: what is left to "
                  "gain is in the kernels themselves, whatever launching them costs."]
    if step is not None and step.get("gdtools_step_cpu_ms") is not None:
        lines += [f"A `gd.minimize` step in {kernels['precision']} used {step['gdtools_step_cpu_ms']} ms of CPU time "
                  f"(all threads) in {step['gdtools_step_ms']} ms of wall time."]
        if busy < 0.8 and step["gdtools_step_cpu_ms"] >= step["gdtools_step_ms"] and not kernel_bound:
            lines += ["Both are consistent with a step bound by launching kernels from the host rather than by "
                      "running them (though a GPU runtime's threads also spin while they wait)."]
    return [" ".join(lines), ""]


def gpu_lines(d, kernels=None):
    """The GPU results of benchmarks/gpu.sh as tables."""
    lines = ["### On the GPU (`benchmarks/gpu.sh`)", "",
             f"{d.get('device_name') or d.get('device', '?')}, jax {d.get('jax', '?')}, torch {d.get('torch', '?')}, "
             f"gdtools {d.get('gdtools', '?')}, {d.get('date', '?')}. One step to block11 on an image of the size "
             "given (one tile of that size), median over interleaved rounds; the step goes through `gd.minimize` "
             "(host loop, one tile) like a real dream's."
             + ("" if "H100" in str(d.get("device_name", "")) else
                " The targets name an H100; this run drew another card, so its milliseconds are not the "
                "targets' (ratios against PyTorch in the same run carry over better). Earlier runs, on H100s, "
                "are in [`benchmarks/gpu_notes.md`](../benchmarks/gpu_notes.md)."), ""]
    rows = [[f"{r['size']}²", _precision(r), r["gdtools_step_ms"], r.get("torch_eager_step_ms"),
             r.get("ratio_gdtools_over_torch"), r.get("first_call_with_compilation_s")] for r in d.get("steps", [])]
    lines += [_common.markdown_table(["image", "gdtools in", "gdtools step (ms)", "PyTorch eager step (ms)", "ratio",
                                      "first call incl. compilation (s)"], rows), ""]
    for r in d.get("steps", []):
        if r.get("breakdown"):
            lines += [f"Where a {r['size']}² step's time goes (same run):", "",
                      _common.markdown_table(["what", "ms", "compilation (s)"],
                                             [[name, e["ms"], e["compile_s"]] for name, e in r["breakdown"].items()]),
                      ""]
            best, network = min(((name, e["ms"]) for name, e in r["breakdown"].items()
                                  if name.startswith("network")), key=lambda item: item[1])
            lines += [f"Called one at a time and waited for, the network's value and gradient took {network:.2f} ms "
                      f"at best ({best.split(', ', 1)[1]}); a step in `gd.minimize`, which dispatches the next "
                      f"call before it reads the last one's value, took {r['gdtools_step_ms']} ms "
                      f"({_precision(r)})."]
            fused = {name: e["ms"] for name, e in r["breakdown"].items() if name.startswith("whole step")}
            closed = next((ms for name, ms in fused.items() if "arguments" not in name), None)
            passed = next((ms for name, ms in fused.items() if "arguments" in name), None)
            if closed is not None and closed > network * 1.5:
                same = passed is not None and abs(passed - closed) <= 0.1 * closed
                lines += [f"Written as one jitted function with the weights closed over (constants of the program) "
                          f"the whole step took longer ({closed:.2f} ms) than the network alone"
                          + (f"; with the weights as arguments, as the tile objective takes them, as long "
                             f"({passed:.2f} ms): the constants are not the cause." if same else
                             f"; with the weights as arguments, as the tile objective takes them, {passed:.2f} ms."
                             if passed is not None else ", for a reason not yet established.")
                          + " The product path runs the roll, the tiles and the network as separate programs, "
                            "so it is not affected."]
            lines += [""]
    for r in d.get("command_buffers_off", []):
        on = next((s for s in d.get("steps", []) if s.get("size") == r.get("size")
                   and _precision(s) == r.get("precision")), None)
        lines += [f"With XLA's command buffers (CUDA graphs) switched off (`XLA_FLAGS={r.get('xla_flags')}`), the "
                  f"{r['size']}² step in {r.get('precision')} took {r['gdtools_step_ms']} ms"
                  + (f", against {on['gdtools_step_ms']} ms with them on (the default), in the same session."
                     if on else "."), ""]
    lines += kernel_lines(kernels, d.get("steps", []))
    startup = (d.get("startup") or {}).get("wall_s")
    process = d.get("process", [])
    if process:
        size, tile = process[0].get("size", 1024), process[0].get("tile", 512)  # gpu.sh's defaults
        lines += [f"The whole `gdtools dream` process on a {size}² image (4 octaves × 10 steps, {tile}² tiles), "
                  "from a fresh persistent compilation cache (cold) and again ("
                  + ", then ".join(r["run"] for r in process if r["run"] != "cold") + ")"
                  + (f"; Python and JAX starting up and running one tiny computation took {startup:.2f} s of it" if startup else "")
                  + ":", "",
                  _common.markdown_table(["run", "wall (s)", "network in"],
                                         [[r["run"], r["wall_s"], r.get("precision") or "?"] for r in process]), ""]
        if os.path.exists(os.path.join(os.path.dirname(__file__), "results", "gpu_warm_profile.txt")):
            lines += ["Where a warm run's time goes, by cProfile in the same session: "
                      "[`benchmarks/results/gpu_warm_profile.txt`](../benchmarks/results/gpu_warm_profile.txt).", ""]
    return lines


def dream_section(results_dir):
    lines = ["## 4. DeepDream", ""]
    found = []
    for path in sorted(glob.glob(os.path.join(results_dir, "dream*.json"))):
        try:
            with open(path) as fh:
                found.append((os.path.basename(path), json.load(fh)))
        except (OSError, ValueError):
            continue
    gpu = _load(results_dir, "gpu_dream.json")
    if not found and not isinstance(gpu, dict):
        return lines + ["No DeepDream results yet (`benchmarks/dream_step.py`, `benchmarks/gpu.sh`; run "
                        "`python benchmarks/run_all.py` with PyTorch installed).", ""]
    lines += ["From `benchmarks/dream_step.py` (one ascent step, gdtools/JAX against a PyTorch eager "
              "reference, same network, objective and step, interleaved rounds). The GPU numbers and the "
              "whole-CLI runs come from `benchmarks/gpu.sh` when its results are present.", ""]
    for name, d in found:
        if not isinstance(d, dict):
            continue
        lines += [f"`{name}` — {d.get('machine', '?')}, {d.get('cpus', '?')} CPUs, backend {d.get('backend', '?')} "
                  f"({d.get('device', '?')}), jax {d.get('jax', '?')}, torch {d.get('torch', '?')}, "
                  f"gdtools {d.get('gdtools', '?')}, {d.get('date', '?')}.", ""]
        # Every scalar the script wrote, as it wrote it (its format is the DeepDream work's to change).
        skip = {"date", "machine", "cpus", "backend", "device", "jax", "torch", "gdtools"}
        keys = [k for k, v in d.items() if k not in skip and not isinstance(v, (list, dict))]
        if keys:
            lines += [_common.markdown_table(["quantity", "value"], [[k, d[k]] for k in keys]), ""]
        else:
            lines += ["```", json.dumps(d, indent=1)[:3000], "```", ""]
    if isinstance(gpu, dict):
        lines += gpu_lines(gpu, _load(results_dir, "gpu_kernels.json"))
    return lines


def write_page(results_dir, docs_dir, runs=None):
    sys.path.insert(0, HERE)
    if runs is None:  # --docs-only: the script times of the last full run, as it saved them
        runs = (_load(results_dir, "run_all.json") or {}).get("runs")
    noisy = _load(results_dir, "noisy_blackbox.json")
    overhead = _load(results_dir, "compiled_overhead.json")
    fd = _load(results_dir, "fd_accuracy.json")
    s1, v1 = noisy_section(noisy, docs_dir)
    s1b, v1b = imu_section(_load(results_dir, "noisy_imu.json"), docs_dir)
    s1, v1 = s1 + s1b, v1 + v1b
    s2, v2 = overhead_section(overhead)
    s3, _ = fd_section(fd, docs_dir)
    s4 = dream_section(results_dir)
    verdicts = v1 + v2 + dream_verdicts(results_dir)
    if runs and {"noisy_blackbox", "noisy_imu", "compiled_overhead", "fd_accuracy"} <= {r["name"] for r in runs}:
        total = sum(r["wall_s"] for r in runs)
        verdicts.append(("`make bench`: the CPU benchmarks in ≤ 20 minutes on 2 cores",
                         "met" if total <= 20 * 60 else "MISSED",
                         f"{total / 60:.1f} min for the scripts of the last full run (listed below)"))
    lines = ["# Benchmarks", "",
             "Generated by `benchmarks/run_all.py` from the outputs of the scripts in `benchmarks/` "
             "(raw results in `benchmarks/results/`); every number below was printed by one of them, "
             "beside the machine, versions, commit and date it was measured on. Rerun everything with "
             "`make bench` (installs the peers: `pip install -e .[bench]` and `torch==2.13.0`), or one "
             "script at a time, e.g. `python benchmarks/noisy_blackbox.py`. Ratios are measured within "
             "one run with the contenders interleaved; absolute times hold only for the machine beside "
             "them.", "",
             "## Targets", "",
             _common.markdown_table(["target", "status", "evidence"],
                                    [[t, _status(s), e] for t, s, e in verdicts]) if verdicts else
             "No results yet.", "",
]
    if runs:
        lines += ["Benchmark scripts in the last `run_all.py` run: " +
                  ", ".join(f"{r['name']} {r['status']} ({r['wall_s']:.0f} s)" for r in runs) + ".", ""]
    lines += s1 + s2 + s3 + s4
    os.makedirs(docs_dir, exist_ok=True)
    path = os.path.join(docs_dir, "benchmarks.md")
    with open(path, "w") as fh:
        fh.write("\n".join(lines).rstrip() + "\n")
    print(f"wrote {path}")
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny budgets (for tests); needs --out")
    parser.add_argument("--docs-only", action="store_true", help="only regenerate the page")
    parser.add_argument("--out", default=None,
                        help="directory for results, figures and the page (default: benchmarks/results, docs)")
    parser.add_argument("--skip", default="", help="comma-separated scripts not to run")
    args = parser.parse_args(argv)
    if args.quick and not args.out:
        parser.error("--quick writes its tiny results to --out DIR, never over the committed ones")
    results_dir = args.out or _common.RESULTS
    docs_dir = args.out or _common.DOCS
    os.makedirs(results_dir, exist_ok=True)
    runs = None
    if not args.docs_only:
        skip = set(filter(None, args.skip.split(",")))
        extra = (["--quick"] if args.quick else []) + (["--out", args.out] if args.out else [])
        t0 = time.perf_counter()
        runs = [run_script(name, extra, results_dir)
                for name in SCRIPTS if name not in skip]
        if not args.quick and "dream_step" not in skip:
            runs.append(run_dream(results_dir))
        with open(os.path.join(results_dir, "run_all.json"), "w") as fh:
            json.dump({"runs": runs}, fh, indent=1)
        print(f"all benchmarks: {time.perf_counter() - t0:.0f} s")
    write_page(results_dir, docs_dir, runs)
    return 0 if not runs or all(r["status"] == "ok" or r["status"].startswith(("skipped", "not present"))
                                for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
