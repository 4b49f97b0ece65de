"""Compare the five gradient estimators on the same problems, by loss against objective evaluations.

    python examples/compare_estimators.py [--out docs/compare_estimators.png] [--seed 0]

Three problems, each solved with ``gradient="autodiff"``, ``"forward"``, ``"central"``, ``"spsa"``
and ``"smoothing"`` and the engine's default optimizer for each:

* Rosenbrock in 2-D from (-1.2, 1): smooth, curved valley;
* a 5-D quadratic with minimum 1 and 1% multiplicative noise (so the noise stays at 0.01 at the
  minimum instead of vanishing), independent from point to point, written ``fun(x, key)``;
  autodiff does not apply (it needs a deterministic ``fun(x)``);
* a 30-D ill-conditioned quadratic (curvatures from 1 to 10): a central-difference step costs 60
  evaluations here, an SPSA step 2.

Every curve is the *noise-free* excess loss ``f(x) - min f`` of the iterate (recomputed from the
recorded ``x``), not the loss the estimator saw, against the cumulative number of evaluations; black-box runs get the same
evaluation budget. Autodiff's ``nfev`` counts calls of the value-and-gradient function, each of which
costs a small multiple of one evaluation, so its curve is shown for reference, not on equal terms.
Prints a Markdown table of the final noise-free excess loss, evaluations, iterations and wall time.
"""

from __future__ import annotations

import argparse
import os
import time

import jax

jax.config.update("jax_enable_x64", True)  # finite differences need float64 steps

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import gdtools as gd  # noqa: E402

ESTIMATORS = ("autodiff", "forward", "central", "spsa", "smoothing")
#: Values below this are drawn at this level so that the log axis can show an exact zero.
FLOOR = 1e-16


def rosenbrock(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


NOISY_CURVATURE = jnp.logspace(0.0, 1.0, 5)


def quadratic5(x):
    return 1.0 + jnp.sum(NOISY_CURVATURE * (x - 1.0) ** 2)


def noisy_quadratic5(x, key):
    """The 5-D quadratic (minimum 1) times (1 + 0.01 z), z standard normal: 1% multiplicative noise.

    The engine gives the probes of one gradient the same key (common random numbers: every probe of
    finite differences, the two of each SPSA or smoothing pair). Folding the point into the key makes
    the noise independent from point to point, like a timing's: with the key alone, the noise would
    be one common factor per pair and cancel out of the gradient.
    """
    point = int(np.frombuffer(np.asarray(x, np.float64).tobytes(), np.uint32).sum() % (2**31 - 1))
    return quadratic5(x) * (1.0 + 0.01 * jax.random.normal(jax.random.fold_in(key, point)))


WIDE_CURVATURE = jnp.logspace(0.0, 1.0, 30)


def quadratic30(x):
    return jnp.sum(WIDE_CURVATURE * (x - 1.0) ** 2)


# name, objective given to minimize, noise-free loss, its minimum, x0, evaluation budget
PROBLEMS = (
    ("Rosenbrock, 2-D", rosenbrock, rosenbrock, 0.0, np.array([-1.2, 1.0]), 2000),
    ("quadratic, 5-D, 1% noise", noisy_quadratic5, quadratic5, 1.0, np.zeros(5), 2000),
    ("quadratic, 30-D", quadratic30, quadratic30, 0.0, np.zeros(30), 6000),
)


def solve(fun, x0, gradient, budget, seed):
    if gradient == "autodiff":
        return gd.minimize(fun, jnp.asarray(x0), gradient=gradient, max_iters=500, seed=seed)
    return gd.minimize(fun, x0, gradient=gradient, max_evals=budget, seed=seed)


def add_excess_loss(history, true_fun, minimum):
    """Give each iteration record `excess_loss`: noise-free f(x) - min f, floored at FLOOR."""
    true_jit = jax.jit(true_fun)
    floored = False
    for record in history.iterations:
        value = float(true_jit(jnp.asarray(record["x"], dtype=jnp.float64))) - minimum
        floored = floored or value < FLOOR
        record["excess_loss"] = max(value, FLOOR)
    return floored


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join("docs", "compare_estimators.png"),
                        help="figure to write (default: docs/compare_estimators.png)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every run (default 0)")
    args = parser.parse_args(argv)
    started = time.perf_counter()

    import matplotlib
    from cycler import cycler
    from matplotlib.figure import Figure

    # One colour per estimator in every panel, also where an estimator does not apply.
    palette = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    colour = dict(zip(ESTIMATORS, palette))

    fig = Figure(figsize=(15, 5.2), layout="constrained")
    axes = fig.subplots(1, len(PROBLEMS), squeeze=False)[0]
    rows = []
    for ax, (title, fun, true_fun, minimum, x0, budget) in zip(axes, PROBLEMS):
        histories, names, floored = [], [], False
        for gradient in ESTIMATORS:
            start = time.perf_counter()
            try:
                res = solve(fun, x0, gradient, budget, args.seed)
            except gd.InputError as exc:
                rows.append((title, gradient, None, None, None, None, str(exc).split(";")[0]))
                continue
            seconds = time.perf_counter() - start
            floored |= add_excess_loss(res.history, true_fun, minimum)
            final = float(true_fun(jnp.asarray(np.asarray(res.x, dtype=float)))) - minimum
            rows.append((title, gradient, final, res.nfev, res.nit, seconds, res.message))
            histories.append(res.history)
            names.append(gradient)
        with matplotlib.rc_context({"axes.prop_cycle": cycler(color=[colour[n] for n in names])}):
            gd.plot_history(histories, x="evals", y="excess_loss", log=True, best=False,
                            labels=names, ax=ax)
        ax.set_title(title)
        ax.set_xlabel("objective evaluations")
        ax.set_ylabel("noise-free loss − minimum" + (f" (floored at {FLOOR:g})" if floored else ""))
        ax.set_xlim(0, budget * 1.02)
        ax.get_legend().remove()  # one legend for the figure below, the same colours everywhere
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colour[name], lw=2, label=name) for name in ESTIMATORS]
    handles.append(Line2D([], [], color="0.35", marker="*", ms=10, ls="none",
                          label="result (res.x) of a black-box run"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False)
    fig.suptitle("Gradient estimators compared at equal evaluation budgets "
                 f"(default optimizers, seed {args.seed})")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    fig.savefig(args.out, dpi=110)

    print("| problem | gradient | final noise-free loss − minimum | evaluations | iterations | time (s) |")
    print("|---|---|---:|---:|---:|---:|")
    for title, gradient, final, nfev, nit, seconds, message in rows:
        if final is None:
            print(f"| {title} | {gradient} | n/a: {message} | | | |")
        else:
            print(f"| {title} | {gradient} | {final:.3g} | {nfev} | {nit} | {seconds:.1f} |")
    print(f"\ntotal time {time.perf_counter() - started:.0f} s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
