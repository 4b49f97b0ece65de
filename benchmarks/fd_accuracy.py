"""Finite-difference accuracy and cost: gdtools' step rules against scipy and numdifftools.

    python benchmarks/fd_accuracy.py           # full (under a minute)
    python benchmarks/fd_accuracy.py --quick   # fewer noise levels and draws (for the tests)

Test function (5-d, smooth, level about 10 so that relative and absolute noise differ)::

    f(x) = 10 + sum_i w_i (exp(0.5 x_i) + sin(2 x_i)),   w = (1, 0.8, 0.6, 0.4, 0.2),  x = (0.3, -0.7, 1.1, 0.2, -1.4)

measured with additive Gaussian noise of standard deviation sigma, a fresh draw per evaluation.
Error: ||g_hat - g|| / ||g|| against the analytic gradient, median over independent noise draws.

Methods, each with its documented default step:

* gdtools ``Forward()`` / ``Central()`` told the noise level (``noise=sigma``) after ``observe(f(x))``,
  as ``minimize`` does when the noise is given or measured from repeats: the Moré & Wild rule;
* the same estimators with ``noise=0`` (the noise not known): scipy's eps-based rule;
* scipy ``optimize.approx_fprime`` (forward, absolute step sqrt(eps));
* scipy ``optimize._numdiff.approx_derivative`` ``2-point`` and ``3-point`` (relative steps);
* numdifftools ``Gradient`` (central differences with Richardson extrapolation over adaptive steps).

Left panel: error against a fixed step h for forward and central differences at two noise levels
(the V-shaped trade-off between truncation and noise), with each rule's default step marked.
Right panel: error of every method at its default step against the noise level.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

W = np.array([1.0, 0.8, 0.6, 0.4, 0.2])
X = np.array([0.3, -0.7, 1.1, 0.2, -1.4])


def f_true(x):
    x = np.asarray(x, dtype=float)
    return float(10.0 + np.sum(W * (np.exp(0.5 * x) + np.sin(2.0 * x))))


def g_true(x):
    return W * (0.5 * np.exp(0.5 * x) + 2.0 * np.cos(2.0 * x))


class Noisy:
    def __init__(self, sigma, seed):
        self.sigma, self.rng, self.count = sigma, np.random.default_rng(seed), 0

    def __call__(self, x):
        self.count += 1
        return f_true(x) + self.sigma * self.rng.standard_normal()

    def batch(self, points):
        return np.array([self(p) for p in np.atleast_2d(points)])


def _gdtools(kind, told, warm=False):
    """As the engine's first iteration: measure f(x0), ``observe`` it, estimate. With ``warm``, the
    estimate of a later iteration: one estimate first (not counted), so the estimator has seen f."""
    def grad(f, x, sigma):
        import jax

        from gdtools import estimators

        est = estimators.Forward() if kind == "forward" else estimators.Central()
        scale = np.maximum(1.0, np.abs(X))
        noise = sigma if told else 0.0
        f0 = f(x)
        est.observe(f0)
        if warm:
            est.estimate(None, x, key=jax.random.PRNGKey(1), iteration=0, evaluate=Noisy(sigma, 99).batch,
                         noise=noise, scale=scale)
        e = est.estimate(None, x, key=jax.random.PRNGKey(0), iteration=0, evaluate=f.batch,
                         noise=noise, scale=scale)
        return np.asarray(e.grad, float)

    return grad


def _approx_fprime(f, x, sigma):
    from scipy.optimize import approx_fprime

    return approx_fprime(x, f)


def _approx_derivative(method):
    def grad(f, x, sigma):
        from scipy.optimize._numdiff import approx_derivative

        return approx_derivative(f, x, method=method)

    return grad


def _numdifftools(f, x, sigma):
    import numdifftools as nd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nd.Gradient(f)(x)


METHODS = {
    "gdtools Forward, noise given": (_gdtools("forward", True), None),
    "gdtools Central, noise given": (_gdtools("central", True), None),
    "gdtools Central, noise given, later iterations": (_gdtools("central", True, warm=True), None),
    "gdtools Forward, noise unknown": (_gdtools("forward", False), None),
    "gdtools Central, noise unknown": (_gdtools("central", False), None),
    "scipy approx_fprime": (_approx_fprime, None),
    "scipy approx_derivative 2-point": (_approx_derivative("2-point"), None),
    "scipy approx_derivative 3-point": (_approx_derivative("3-point"), None),
    "numdifftools Gradient": (_numdifftools, "numdifftools"),
}


def rel_error(g):
    gt = g_true(X)
    g = np.asarray(g, float)
    return float(np.linalg.norm(g - gt) / np.linalg.norm(gt)) if np.all(np.isfinite(g)) else np.inf


def default_steps(sigma):
    """Where each rule puts its step for coordinate 0 (for the markers on the left panel)."""
    from gdtools import estimators

    scale = np.maximum(1.0, np.abs(X))
    out = {}
    for name, est in (("gdtools Forward", estimators.Forward()), ("gdtools Central", estimators.Central())):
        out[name + ", noise given"] = float(est.steps(X, f0=f_true(X), noise=sigma, scale=scale)[0])
        out[name + ", noise unknown"] = float(est.steps(X, f0=f_true(X), noise=0.0, scale=scale)[0])
    eps = np.finfo(float).eps
    out["scipy approx_fprime"] = float(np.sqrt(eps))
    out["scipy approx_derivative 2-point"] = float(eps ** 0.5 * max(1.0, abs(X[0])))
    out["scipy approx_derivative 3-point"] = float(eps ** (1 / 3) * max(1.0, abs(X[0])))
    return out


def sweep_steps(sigma, steps, draws):
    from gdtools import estimators

    rows = {"forward": [], "central": []}
    for h in steps:
        for kind in rows:
            errs = []
            for d in range(draws):
                f = Noisy(sigma, 1000 + d)
                est = estimators.Forward(step=h) if kind == "forward" else estimators.Central(step=h)
                import jax

                e = est.estimate(None, X, key=jax.random.PRNGKey(0), iteration=0, evaluate=f.batch, noise=0.0)
                errs.append(rel_error(e.grad))
            rows[kind].append(float(np.median(errs)))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=None, help="directory for results and figure")
    args = parser.parse_args(argv)
    out = args.out or (tempfile.mkdtemp(prefix="bench_quick_") if args.quick else None)
    results_dir, figures_dir = out or _common.RESULTS, out or _common.DOCS
    os.makedirs(results_dir, exist_ok=True)
    os.makedirs(figures_dir, exist_ok=True)
    import importlib.util

    methods = {k: v for k, v in METHODS.items() if v[1] is None or importlib.util.find_spec(v[1])}
    info = _common.machine(("gdtools", "jax", "numpy", "scipy", "numdifftools"))
    sigmas = [0.0, 1e-12, 1e-9, 1e-6, 1e-4, 1e-2] if not args.quick else [0.0, 1e-6]
    draws = 2 if args.quick else 25
    steps = np.logspace(-12, 0, 7 if args.quick else 37)
    print(f"# Finite-difference accuracy ({'quick' if args.quick else 'full'}: {draws} noise draws)")
    print(f"machine: {_common.machine_line(info)}")

    errors, costs = {}, {}
    for name, (fn, _) in methods.items():
        errors[name], costs[name] = [], None
        for sigma in sigmas:
            errs = []
            for d in range(draws):
                f = Noisy(sigma, d)
                errs.append(rel_error(fn(f, X.copy(), sigma)))
                if costs[name] is None:
                    costs[name] = f.count
            errors[name].append(float(np.median(errs)))
    sweep_sigmas = [1e-9, 1e-4] if not args.quick else [1e-6]
    sweeps = {s: sweep_steps(s, steps, draws) for s in sweep_sigmas}
    marks = {s: default_steps(s) for s in sweep_sigmas}

    header = ["method", "evals/gradient"] + [f"σ={s:g}" for s in sigmas]
    best = {i: min(errors[m][i] for m in errors) for i in range(len(sigmas))}
    rows = []
    for name in errors:
        cells = []
        for i, e in enumerate(errors[name]):
            cell = _common.fmt(e)
            cells.append(f"**{cell}**" if e <= best[i] * 1.0000001 else cell)
        rows.append([name, costs[name]] + cells)
    print("\nmedian relative gradient error ||g_hat - g|| / ||g|| at each method's default step "
          "(best per noise level in bold; f ≈ 10 at x)")
    print(_common.markdown_table(header, rows))
    wins = []
    cheap = 2 * len(X) + 1
    for i, s in enumerate(sigmas):
        given = min(errors[m][i] for m in errors if "noise given" in m)
        others = {m: errors[m][i] for m in errors if "noise given" not in m and costs[m] <= cheap}
        best_other = min(others, key=others.get)
        wins.append(dict(sigma=s, noise_aware=given, best_other=best_other, best_other_error=others[best_other],
                         wins=bool(given < 0.99 * others[best_other]),
                         tie=bool(abs(given - others[best_other]) <= 0.01 * others[best_other])))
    print(f"\nwhere the noise-aware rule (gdtools, noise given; best of its rows) beats every other "
          f"method of the same cost (<= 2n+1 = {cheap} evaluations per gradient) at its default step:")
    print(_common.markdown_table(
        ["σ", "noise-aware (best of forward/central)", "best other", "its error", "noise-aware wins"],
        [[f"{w['sigma']:g}", _common.fmt(w["noise_aware"]), w["best_other"], _common.fmt(w["best_other_error"]),
          "yes" if w["wins"] else ("tie" if w["tie"] else "no")] for w in wins]))

    fig_path = os.path.join(figures_dir, "bench_fd_accuracy.png")
    plot(steps, sweeps, marks, sigmas, errors, fig_path)
    data = dict(machine=info, quick=args.quick, sigmas=sigmas, draws=draws, errors=errors, costs=costs, cheap=cheap,
                wins=wins, steps=steps.tolist(), sweeps={str(k): v for k, v in sweeps.items()},
                default_steps={str(k): v for k, v in marks.items()},
                figure=os.path.relpath(fig_path, _common.ROOT) if out is None else fig_path)
    path = os.path.join(results_dir, "fd_accuracy.json")
    with open(path, "w") as fh:
        json.dump(data, fh, indent=1)
    print(f"\nwrote {path} and {fig_path}")
    return data


def plot(steps, sweeps, marks, sigmas, errors, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.8))
    colors = {"forward": "tab:blue", "central": "tab:red"}
    dashes = ["-", "--", ":"]
    for j, (sigma, rows) in enumerate(sweeps.items()):
        for kind, errs in rows.items():
            a.plot(steps, errs, dashes[j % 3], color=colors[kind], label=f"{kind}, σ={sigma:g}")
        for name, h in marks[sigma].items():
            kind = "central" if ("Central" in name or "3-point" in name) else "forward"
            if "noise given" in name:
                err = np.interp(np.log(h), np.log(steps), rows[kind])
                a.plot([h], [err], "*", ms=13, color=colors[kind], mec="k",
                       label=f"gdtools noise-aware {kind} step (level known), σ={sigma:g}")
    eps = np.finfo(float).eps
    for h, label in ((np.sqrt(eps), "eps^(1/2): scipy forward"), (eps ** (1 / 3), "eps^(1/3): scipy central")):
        a.axvline(h, color="gray", lw=0.8, ls=":")
        a.text(h, a.get_ylim()[1] if False else 1e2, label, rotation=90, fontsize=7, va="top", ha="right")
    a.set_xscale("log")
    a.set_yscale("log")
    a.set_xlabel("step h")
    a.set_ylabel("relative gradient error")
    a.set_title("error against a fixed step (median over draws)", fontsize=10)
    a.set_ylim(1e-12, 1e3)
    a.grid(True, which="both", alpha=0.3)
    a.legend(fontsize=7)

    xs = [s if s > 0 else min(x for x in sigmas if x > 0) / 100 for s in sigmas]
    for name, errs in errors.items():
        style = "-" if name.startswith("gdtools") and "given" in name else "--"
        b.plot(xs, np.maximum(errs, 1e-16), style, marker="o", ms=4,
               lw=2.4 if "given" in name else 1.2, label=name)
    b.set_xscale("log")
    b.set_yscale("log")
    b.set_xticks(xs)
    b.set_xticklabels(["0"] + [f"{s:g}" for s in sigmas[1:]], fontsize=8)
    b.set_xlabel("noise standard deviation σ (f ≈ 10)")
    b.set_ylabel("relative gradient error at the default step")
    b.set_title("each method at its default step", fontsize=10)
    b.grid(True, which="both", alpha=0.3)
    b.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
