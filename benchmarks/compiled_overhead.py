"""Compiled-solver overhead: ``gd.minimize(gradient="autodiff")`` against hand-written JAX and scipy.

    python benchmarks/compiled_overhead.py           # full (a few minutes on 2 cores)
    python benchmarks/compiled_overhead.py --quick   # tiny sizes (for the tests)

Four measurements, float64, CPU, contenders interleaved within each repeat:

1. **Engine vs a hand-written loop.** The same problem (Rosenbrock), the same optimizer and the
   same number of iterations (``tol=0``: neither stops early), for two optimizers: ``optax.adam(1e-3)``
   (the hand-written loop is ``lax.fori_loop`` over ``grad -> adam.update -> apply_updates``) and
   gdtools' default ``optax.lbfgs()`` (the loop optax documents: ``value_and_grad_from_state ->
   update(..., value=, grad=, value_fn=) -> apply_updates``), jitted once. For gdtools two numbers:
   the compiled program ``gd.minimize`` runs (built with ``gdtools.compiled_loop.make_solver``,
   exactly as ``minimize`` builds it, jitted once and timed after compile: the issue's target,
   <= 1.2x), and the whole ``gd.minimize`` call as a user makes it (validation, the program, kept
   between calls with the same objective and settings, and packaging the history).
2. **Time to tolerance against scipy.** ``gd.minimize`` (default: L-BFGS, compiled) against
   ``scipy.optimize.minimize(method="L-BFGS-B", jac=True)`` fed a jitted
   ``jax.value_and_grad``, both to a largest gradient component <= 1e-5, Rosenbrock from x0 = 0 at
   n = 10, 100, 1000. scipy's JAX function is compiled before timing; gdtools' call is timed whole,
   cold (a new objective: the call compiles its solver) and warm (the same objective again).
3. **Many starts.** 1,000 random starts (10-d Rosenbrock, uniform in [-2, 2]) as one compiled
   program (``gd.minimize(f, starts, batch=True)``), its first call and a second one, against a
   Python loop of ``gd.minimize`` calls over all of them (the first compiles, the rest reuse it).
4. **New data each call.** One model (L2 logistic regression) fitted to 11 datasets of the same
   shapes: the data bound by a closure (a new function each call, so a new program), passed as
   ``args=(X, y)`` (inputs of one program), and scipy L-BFGS-B with a jitted ``value_and_grad``
   taking the data as arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_platforms", "cpu")

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

import gdtools as gd  # noqa: E402
from gdtools.compiled_loop import MAX_TRAJECTORY, make_solver  # noqa: E402

OVERHEAD_TARGET = 1.2
#: Section 1 times runs shorter than this many seconds several at a time (see overhead()).
MIN_TIMING = 0.05


def rosenbrock(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def _block(tree):
    jax.block_until_ready(tree)
    return tree


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


# -- 1. engine vs a hand-written fori_loop --------------------------------------------------------

def hand_loop(fun, optimizer, iters, record=False, record_x=False):
    """The loop a user writes. ``record``: also keep and return the loss of every iterate, as a user
    who wants a loss curve writes it (value_and_grad instead of grad, one array write per iteration;
    the losses are returned, so XLA cannot drop them); ``record_x`` (with ``record``): every
    iterate x too, one row per iteration, as gdtools' history keeps it. An optimizer with a line search (L-BFGS) is
    driven as optax documents it: ``value_and_grad_from_state`` and ``update(..., value=, grad=,
    value_fn=)``; it needs the value anyway."""
    line_search = optax.tree_utils.tree_get(jax.eval_shape(optimizer.init, jnp.zeros(1)), "value") is not None
    grad = jax.grad(fun)
    value_and_grad = (optax.value_and_grad_from_state(fun) if line_search
                      else lambda x, state: jax.value_and_grad(fun)(x))

    @jax.jit
    def run(x0):
        def body(i, carry):
            x, state, losses, xs = carry
            if line_search:
                f, g = value_and_grad(x, state=state)
                updates, state = optimizer.update(g, state, x, value=f, grad=g, value_fn=fun)
            else:
                if record:
                    f, g = value_and_grad(x, state)
                else:
                    g = grad(x)
                updates, state = optimizer.update(g, state, x)
            if record:
                losses = losses.at[i].set(f)
            x = optax.apply_updates(x, updates)
            if record_x:
                xs = jax.lax.dynamic_update_slice(xs, x[None], (i + 1, 0))
            return x, state, losses, xs

        losses = jnp.zeros(iters if record else 0, x0.dtype)
        xs = jnp.zeros((iters + 1 if record_x else 0, x0.size), x0.dtype)
        if record_x:
            xs = xs.at[0].set(x0)
        x, _, losses, xs = jax.lax.fori_loop(0, iters, body, (x0, optimizer.init(x0), losses, xs))
        return (x, losses, xs) if record else x

    return run


def engine_program(fun, optimizer, iters, n):
    solver = make_solver(fun, optimizer, n=n, max_iters=iters, tol=0.0, lower=None, upper=None,
                         record_x=n * (iters + 1) <= MAX_TRAJECTORY)
    return jax.jit(solver)


#: The optimizers of section 1: adam (no line search: the cheapest iteration, so the engine's own
#: per-iteration work weighs most) and gdtools' default, L-BFGS with optax's zoom line search.
OPTIMIZERS = {"adam": lambda: optax.adam(1e-3), "lbfgs": lambda: optax.lbfgs()}


def overhead(n, iters, repeats, optimizer_name="adam"):
    optimizer = OPTIMIZERS[optimizer_name]()
    x0 = jnp.zeros(n)
    hand = hand_loop(rosenbrock, optimizer, iters)
    # the same history as the engine keeps: the loss, and x when the engine records it
    hand_rec = hand_loop(rosenbrock, optimizer, iters, record=True, record_x=n * (iters + 1) <= MAX_TRAJECTORY)
    engine = engine_program(rosenbrock, optimizer, iters, n)
    compile_hand, _ = _timed(lambda: _block(hand(x0)))
    _block(hand_rec(x0))
    compile_engine, _ = _timed(lambda: _block(engine(x0)))
    # Both must take the same path: same iterations, same final point (to rounding: the engine
    # differentiates value_and_grad, the hand loop grad, and XLA may fuse them differently).
    trace = engine(x0)
    x_hand = hand(x0)
    deviation = float(jnp.max(jnp.abs(trace.x - x_hand)) / jnp.maximum(1.0, jnp.max(jnp.abs(x_hand))))
    same = bool(int(trace.nit) == iters and deviation < 1e-6)
    # Runs shorter than MIN_TIMING are timed `number` at a time (as timeit does), the same number
    # for every contender: one sub-millisecond call is mostly the timer's and the scheduler's noise.
    one, _ = _timed(lambda: _block(hand(x0)))
    number = max(1, int(np.ceil(MIN_TIMING / max(one, 1e-9))))
    t_hand, t_rec, t_engine, t_call, ratios, ratios_rec = [], [], [], [], [], []
    for r in range(repeats):
        pair = [("hand", lambda: _block(hand(x0))), ("engine", lambda: _block(engine(x0))),
                ("rec", lambda: _block(hand_rec(x0))),
                ("call", lambda: gd.minimize(rosenbrock, x0, optimizer=optimizer, max_iters=iters, tol=0.0))]
        if r % 2:
            pair = pair[::-1]
        times = {}
        for name, fn in pair:
            total, _ = _timed(lambda: [fn() for _ in range(number)])
            times[name] = total / number
        t_hand.append(times["hand"])
        t_rec.append(times["rec"])
        t_engine.append(times["engine"])
        t_call.append(times["call"])
        ratios.append(times["engine"] / times["hand"])
        ratios_rec.append(times["engine"] / times["rec"])
    return dict(optimizer=optimizer_name, n=n, iters=iters, repeats=repeats, number=number, same_path=same, deviation=deviation,
                hand_s=float(np.median(t_hand)), hand_record_s=float(np.median(t_rec)),
                ratio_record=float(np.median(ratios_rec)), engine_s=float(np.median(t_engine)),
                call_s=float(np.median(t_call)), compile_hand_s=compile_hand,
                compile_engine_s=compile_engine,
                ratio=float(np.median(ratios)), ratio_q1=float(np.percentile(ratios, 25)),
                ratio_q3=float(np.percentile(ratios, 75)),
                call_ratio=float(np.median(np.array(t_call) / np.array(t_hand))),
                met=bool(np.median(ratios) <= OVERHEAD_TARGET))


# -- 2. time to tolerance against scipy L-BFGS-B with JAX gradients -------------------------------

def to_tolerance(n, repeats, tol=1e-5):
    """gdtools cold (a new objective: its solver is compiled in the call), gdtools warm (the same
    objective again: the compiled solver is kept) and scipy, interleaved in each repeat."""
    from scipy.optimize import minimize as sp_minimize

    x0 = np.zeros(n)
    vg = jax.jit(jax.value_and_grad(rosenbrock))
    vg(jnp.asarray(x0))  # compile before timing

    def scipy_fg(x):
        f, g = vg(jnp.asarray(x))
        return float(f), np.asarray(g, dtype=float)

    def run_scipy():
        return sp_minimize(scipy_fg, x0, jac=True, method="L-BFGS-B",
                           options={"gtol": tol, "ftol": 0.0, "maxiter": 100_000, "maxfun": 200_000})

    times = {"cold": [], "warm": [], "scipy": []}
    res_gd = res_sp = None
    for r in range(repeats):
        objective = lambda x: rosenbrock(x)  # a new function object: nothing compiled for it yet
        run_gd = lambda: gd.minimize(objective, jnp.asarray(x0), tol=tol, max_iters=100_000)
        order = [("cold", run_gd), ("scipy", run_scipy)]
        if r % 2:
            order = order[::-1]
        order.append(("warm", run_gd))  # the same objective again: its solver is kept
        for name, fn in order:
            t, res = _timed(fn)
            times[name].append(t)
            if name == "scipy":
                res_sp = res
            else:
                res_gd = res
    gx = np.asarray(res_gd.x)
    med = {k: float(np.median(v)) for k, v in times.items()}
    return dict(n=n, tol=tol, repeats=repeats, gd_cold_s=med["cold"], gd_warm_s=med["warm"],
                scipy_s=med["scipy"],
                ratio_cold=float(np.median(np.array(times["cold"]) / np.array(times["scipy"]))),
                ratio_warm=float(np.median(np.array(times["warm"]) / np.array(times["scipy"]))),
                gd=dict(nit=int(res_gd.nit), nfev=int(res_gd.nfev), fun=float(res_gd.fun),
                        err=float(np.max(np.abs(gx - 1.0))), success=bool(res_gd.success),
                        message=res_gd.message),
                scipy=dict(nit=int(res_sp.nit), nfev=int(res_sp.nfev), fun=float(res_sp.fun),
                           err=float(np.max(np.abs(res_sp.x - 1.0))), success=bool(res_sp.success),
                           message=str(res_sp.message)))


# -- 3. a batch of starts in one program against a Python loop ------------------------------------

def many_starts(count, max_iters=200):
    """``batch=True`` (first call: compiled in it; second call: the program kept) against a Python
    loop of ``gd.minimize`` over every start (its first call compiles the single-start solver, the
    others reuse it). Each side uses its own new objective function, so neither inherits the other's
    compiled program."""
    rng = np.random.default_rng(0)
    starts = jnp.asarray(rng.uniform(-2.0, 2.0, size=(count, 10)))
    batch_objective = lambda x: rosenbrock(x)
    loop_objective = lambda x: rosenbrock(x)
    t_cold, results = _timed(lambda: gd.minimize(batch_objective, starts, batch=True, max_iters=max_iters))
    t_warm, _ = _timed(lambda: gd.minimize(batch_objective, starts, batch=True, max_iters=max_iters))
    t_first, first = _timed(lambda: gd.minimize(loop_objective, starts[0], max_iters=max_iters))
    t_rest, rest = _timed(lambda: [gd.minimize(loop_objective, starts[i], max_iters=max_iters)
                                   for i in range(1, count)])
    loop_funs = np.array([first.fun] + [r.fun for r in rest])
    batch_funs = np.array([r.fun for r in results])
    loop_s = t_first + t_rest
    return dict(count=count, max_iters=max_iters, batch_cold_s=t_cold, batch_warm_s=t_warm,
                loop_s=loop_s, loop_first_s=t_first, loop_rest_s=t_rest,
                speedup_cold=loop_s / t_cold, speedup_warm=t_rest * count / (count - 1) / t_warm,
                agree=bool(np.allclose(batch_funs, loop_funs, rtol=1e-6, atol=1e-9)),
                batch_converged=int(sum(r.success for r in results)),
                batch_median_fun=float(np.median(batch_funs)))


# -- 4. new data each call: a closure over it against args= -----------------------------------------

def logistic_loss(w, X, y):
    """L2-regularised logistic regression, the labels y in {0, 1}."""
    z = X @ w
    return jnp.mean(jnp.logaddexp(0.0, z) - y * z) + 1e-3 * jnp.sum(w ** 2)


def new_data_each_call(datasets, samples=500, features=20):
    """One model fitted to ``datasets`` datasets of the same shapes, as a user fitting it to each of
    many subjects, days or bootstrap samples writes it: ``gd.minimize(lambda w: loss(w, X, y), w0)``
    (a new function per dataset, so a new program to compile each call), ``gd.minimize(loss, w0,
    args=(X, y))`` (the data are inputs of one program), and scipy L-BFGS-B fed a jitted
    ``value_and_grad(loss)`` that takes the data as arguments (compiled once). Interleaved per
    dataset; each call timed whole. ``max_gap``: the largest difference between the args= and
    scipy answers over all datasets."""
    from scipy.optimize import minimize as sp_minimize

    rng = np.random.default_rng(0)
    truth = rng.normal(size=features)
    vg = jax.jit(jax.value_and_grad(logistic_loss))
    w0 = jnp.zeros(features)
    vg(w0, jnp.zeros((samples, features)), jnp.zeros(samples))  # compiled before timing

    def run_scipy(X, y):
        def fg(w):
            f, g = vg(jnp.asarray(w), X, y)
            return float(f), np.asarray(g, dtype=float)
        return sp_minimize(fg, np.zeros(features), jac=True, method="L-BFGS-B",
                           options={"gtol": 1e-6, "ftol": 0.0, "maxiter": 10_000})

    times = {"closure": [], "args": [], "scipy": []}
    gaps = []
    for d in range(datasets):
        X = jnp.asarray(rng.normal(size=(samples, features)))
        y = jnp.asarray((rng.random(samples) < 1.0 / (1.0 + np.exp(-np.asarray(X) @ truth))).astype(float))
        runs = [("closure", lambda: gd.minimize(lambda w: logistic_loss(w, X, y), w0)),
                ("args", lambda: gd.minimize(logistic_loss, w0, args=(X, y))),
                ("scipy", lambda: run_scipy(X, y))]
        if d % 2:
            runs = runs[::-1]
        results = {}
        for name, fn in runs:
            t, results[name] = _timed(fn)
            times[name].append(t)
        gaps.append(float(np.max(np.abs(np.asarray(results["args"].x) - results["scipy"].x))))
    # Medians over the datasets after the first (whose args= call compiles the program).
    med = {k: float(np.median(v[1:] if len(v) > 1 else v)) for k, v in times.items()}
    return dict(datasets=datasets, samples=samples, features=features,
                closure_s=med["closure"], args_s=med["args"], scipy_s=med["scipy"],
                args_first_s=times["args"][0], closure_over_args=med["closure"] / med["args"],
                args_over_scipy=med["args"] / med["scipy"], max_gap=max(gaps))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (for tests)")
    parser.add_argument("--out", default=None, help="directory for results (default benchmarks/results)")
    args = parser.parse_args(argv)
    out = args.out or (tempfile.mkdtemp(prefix="bench_quick_") if args.quick else _common.RESULTS)
    os.makedirs(out, exist_ok=True)
    info = _common.machine()
    print(f"# Compiled-solver overhead ({'quick' if args.quick else 'full'})")
    print(f"machine: {_common.machine_line(info)}")

    if args.quick:
        runs, repeats, tol_sizes, tol_repeats, count, datasets = ([("adam", 10, 50), ("lbfgs", 10, 20)], 1,
                                                                  [10], 1, 4, 2)
    else:
        # L-BFGS: iterations it takes without converging (it converges at n = 10 in about 60), and
        # few at n = 100,000, where each of its iterations runs a line search.
        runs = [("adam", 10, 2000), ("adam", 1000, 2000), ("adam", 100_000, 2000),
                ("lbfgs", 10, 40), ("lbfgs", 1000, 2000), ("lbfgs", 100_000, 100)]
        repeats, tol_sizes, tol_repeats, count, datasets = 9, [10, 100, 1000], 3, 1000, 11

    rows = [overhead(n, iters, repeats, name) for name, n, iters in runs]
    print(f"\n## 1. gd.minimize(gradient='autodiff', tol=0) vs hand-written lax.fori_loop, Rosenbrock, "
          f"optax.adam(1e-3) and optax.lbfgs() (gdtools' default), median of {repeats} interleaved repeats, "
          f"runs under {MIN_TIMING} s timed several at a time (calls column), times per run")
    print(_common.markdown_table(
        ["optimizer", "n", "iterations", "calls", "hand loop s", "gdtools program s", "ratio (IQR)", f"<= {OVERHEAD_TARGET}x",
         "hand loop + loss (and x) record s", "gdtools / that", "gd.minimize call s", "call / hand",
         "compile hand s", "compile gdtools s", "same path (max rel. deviation)"],
        [[r["optimizer"], r["n"], r["iters"], r["number"], _common.fmt(r["hand_s"]), _common.fmt(r["engine_s"]),
          f"{r['ratio']:.2f} ({r['ratio_q1']:.2f}–{r['ratio_q3']:.2f})", "met" if r["met"] else "MISSED",
          _common.fmt(r["hand_record_s"]), f"{r['ratio_record']:.2f}",
          _common.fmt(r["call_s"]), f"{r['call_ratio']:.0f}", _common.fmt(r["compile_hand_s"]),
          _common.fmt(r["compile_engine_s"]), f"{r['same_path']} ({r['deviation']:.1e})"] for r in rows]))

    tol_rows = [to_tolerance(n, tol_repeats) for n in tol_sizes]
    print(f"\n## 2. Time to tolerance (max |grad| <= 1e-5), Rosenbrock from 0: gd.minimize (L-BFGS, "
          f"compiled, whole call; cold = a new objective, compiled in the call; warm = the same objective "
          f"again) vs scipy L-BFGS-B + jitted JAX value_and_grad; median of {tol_repeats} interleaved repeats")
    print(_common.markdown_table(
        ["n", "gdtools cold s", "gdtools warm s", "scipy s", "cold / scipy", "warm / scipy",
         "gdtools nit/nfev", "scipy nit/nfev", "gdtools max|x-1|", "scipy max|x-1|", "gdtools success",
         "scipy success"],
        [[r["n"], _common.fmt(r["gd_cold_s"]), _common.fmt(r["gd_warm_s"]), _common.fmt(r["scipy_s"]),
          f"{r['ratio_cold']:.2f}", f"{r['ratio_warm']:.2f}",
          f"{r['gd']['nit']}/{r['gd']['nfev']}", f"{r['scipy']['nit']}/{r['scipy']['nfev']}",
          _common.fmt(r["gd"]["err"]), _common.fmt(r["scipy"]["err"]), r["gd"]["success"],
          r["scipy"]["success"]] for r in tol_rows]))

    batch = many_starts(count)
    print(f"\n## 3. {count} starts, 10-d Rosenbrock, L-BFGS, max_iters {batch['max_iters']}: one compiled "
          f"program (batch=True) vs a Python loop of gd.minimize over all of them")
    print(_common.markdown_table(
        ["batch=True, first call s (compiles)", "batch=True, again s", "loop s (first call compiles)",
         "loop / batch first", "loop after its first call / batch again", "same answers", "converged in batch"],
        [[_common.fmt(batch["batch_cold_s"]), _common.fmt(batch["batch_warm_s"]), _common.fmt(batch["loop_s"]),
          f"{batch['speedup_cold']:.2f}x", f"{batch['speedup_warm']:.2f}x", batch["agree"],
          f"{batch['batch_converged']}/{count}"]]))

    fresh = new_data_each_call(datasets)
    print(f"\n## 4. New data each call: L2 logistic regression, {fresh['features']} features, "
          f"{fresh['samples']} samples, fitted to {datasets} datasets of the same shapes, interleaved; "
          f"medians over the datasets after the first")
    print(_common.markdown_table(
        ["closure per dataset s", "args= s", "args= first call s (compiles)", "scipy L-BFGS-B s",
         "closure / args=", "args= / scipy", "max |x_args - x_scipy|"],
        [[_common.fmt(fresh["closure_s"]), _common.fmt(fresh["args_s"]), _common.fmt(fresh["args_first_s"]),
          _common.fmt(fresh["scipy_s"]), f"{fresh['closure_over_args']:.0f}x", f"{fresh['args_over_scipy']:.2f}",
          f"{fresh['max_gap']:.1e}"]]))

    data = dict(machine=info, quick=args.quick, target=OVERHEAD_TARGET, overhead=rows, tolerance=tol_rows,
                batch=batch, new_data=fresh)
    path = os.path.join(out, "compiled_overhead.json")
    with open(path, "w") as fh:
        json.dump(data, fh, indent=1)
    print(f"\nwrote {path}")
    return data


if __name__ == "__main__":
    main()
