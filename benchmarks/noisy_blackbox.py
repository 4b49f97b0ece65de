"""Noisy black-box suite: gdtools' estimators against nevergrad, noisyopt, scipy, Optuna and pycma.

    python benchmarks/noisy_blackbox.py            # full: 10 seeds, budget 1000 (about 12 minutes)
    python benchmarks/noisy_blackbox.py --quick    # tiny budget, 2 seeds (seconds; for the tests)

Problems (each starts from x0 = 0; "excess" is the noise-free f(x) - min f):

* ``sphere30``: sum((x - 1)^2) in 30-d, times (1 + 0.01 z): 1% multiplicative noise.
* ``rosenbrock10``: 10-d Rosenbrock plus 0.1 z: additive noise.
* ``illcond20``: 1 + 0.5 (x - 1)' H (x - 1) in 20-d, H = Q diag(logspace(-2, 2)) Q' with a fixed
  random rotation Q (condition 1e4), times exp(0.1 z): log-normal, heavy-tailed and positive like
  timing noise.

z is standard normal, drawn independently for every evaluation from a NumPy generator seeded by
(problem, seed): evaluation i of every contender sees the same draw. No contender gets common
random numbers (a timing cannot be replayed), so gdtools' paired-key feature is not exercised; its
objective is written ``fun(x, key)`` only so that the engine knows the objective is stochastic.

Contenders, each with its documented defaults, the same start point, budget and seeds:
gdtools ``gradient="spsa"`` (its default for a stochastic black box: ``minimize`` has no default
estimator for ``fun(x, key)`` and its error message names SPSA first), ``"smoothing"``,
``"central"``, ``"forward"``; nevergrad SPSA, TBPSA and NGOpt (``ng.p.Array(init=x0)``);
noisyopt ``minimizeSPSA``; scipy L-BFGS-B with its finite-difference gradient; Optuna TPE (with x0
enqueued as its first trial and the box [-5, 5]^n, since it needs bounds); pycma
(``sigma0 = 1``, the scale gdtools derives from x0).

Metric: the excess of each method's recommended point (gdtools ``res.x``, nevergrad
``provide_recommendation()``, scipy/noisyopt ``res.x``, cma ``xfavorite``, Optuna ``best_params``)
at budgets B/8, B/4, B/2, B. Methods whose behaviour depends on the budget (gdtools' gain schedule,
noisyopt's A = niter/100, NGOpt's choice of algorithm) are re-run with each budget; cma and Optuna,
whose runs do not depend on the budget, are run once and their recommendation read as the
evaluations pass each checkpoint. Median and quartiles over the seeds; the target is an excess of
1% of the excess at x0.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

TARGET_FRACTION = 0.01
OPTUNA_BOX = 5.0


class BudgetExceeded(Exception):
    pass


# -- problems ----------------------------------------------------------------------------------

class Problem:
    def __init__(self, name, n, title, seed_offset):
        self.name, self.n, self.title, self.seed_offset = name, n, title, seed_offset
        self.x0 = np.zeros(n)

    def true(self, x):
        raise NotImplementedError

    def noisy(self, x, rng):
        raise NotImplementedError

    f_min = 0.0


class Sphere(Problem):
    noise = "1% multiplicative"

    def __init__(self):
        super().__init__("sphere30", 30, "30-d sphere, 1% multiplicative noise", 1)

    def true(self, x):
        return float(np.sum((np.asarray(x, float) - 1.0) ** 2))

    def noisy(self, x, rng):
        return self.true(x) * (1.0 + 0.01 * rng.standard_normal())


class Rosenbrock(Problem):
    noise = "additive, std 0.1"

    def __init__(self):
        super().__init__("rosenbrock10", 10, "10-d Rosenbrock, additive noise (std 0.1)", 2)

    def true(self, x):
        x = np.asarray(x, float)
        return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2))

    def noisy(self, x, rng):
        return self.true(x) + 0.1 * rng.standard_normal()


class IllConditioned(Problem):
    noise = "log-normal, sigma 0.1"
    f_min = 1.0

    def __init__(self):
        super().__init__("illcond20", 20, "20-d quadratic, condition 1e4, log-normal noise", 3)
        q, _ = np.linalg.qr(np.random.default_rng(1234).normal(size=(20, 20)))
        self.H = q @ np.diag(np.logspace(-2.0, 2.0, 20)) @ q.T

    def true(self, x):
        d = np.asarray(x, float) - 1.0
        return float(1.0 + 0.5 * d @ self.H @ d)

    def noisy(self, x, rng):
        return self.true(x) * float(np.exp(0.1 * rng.standard_normal()))


PROBLEMS = {p.name: p for p in (Sphere(), Rosenbrock(), IllConditioned())}


class Counted:
    """The noisy objective with its own generator and an evaluation counter that enforces the budget."""

    def __init__(self, problem, seed, budget):
        self.problem = problem
        self.rng = np.random.default_rng([seed, problem.seed_offset])
        self.budget = budget
        self.count = 0

    def __call__(self, x):
        if self.count >= self.budget:
            raise BudgetExceeded
        self.count += 1
        with np.errstate(all="ignore"):  # diverging contenders overflow; that is their result
            return self.problem.noisy(x, self.rng)


# -- contenders: each returns the recommended point for every budget in `budgets` ----------------

def _gdtools(gradient):
    def run(problem, budgets, seed):
        import gdtools as gd

        out = {}
        for b in budgets:
            f = Counted(problem, seed, b)
            res = gd.minimize(lambda x, key: f(x), problem.x0.copy(), gradient=gradient, max_evals=b,
                              seed=seed)
            out[b] = (np.asarray(res.x, float), f.count)
        return out

    return run


def _nevergrad(name):
    def run(problem, budgets, seed):
        import nevergrad as ng

        out = {}
        for b in budgets:
            f = Counted(problem, seed, b)
            param = ng.p.Array(init=problem.x0.copy())
            param.random_state = np.random.RandomState(seed)
            opt = ng.optimizers.registry[name](parametrization=param, budget=b, num_workers=1)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    for _ in range(b):
                        cand = opt.ask()
                        opt.tell(cand, f(cand.value))
                    rec = opt.provide_recommendation().value
            except BudgetExceeded:
                raise
            except Exception as exc:  # a crash inside the optimizer: no recommendation at this budget
                out[b] = (np.full(problem.n, np.nan), f.count, f"{type(exc).__name__}: {exc}"[:200])
                continue
            out[b] = (np.asarray(rec, float), f.count)
        return out

    return run


def _noisyopt(problem, budgets, seed):
    import noisyopt

    out = {}
    for b in budgets:
        f = Counted(problem, seed, b)
        np.random.seed(seed)  # noisyopt draws its perturbations from the global generator
        res = noisyopt.minimizeSPSA(lambda x, seed=None: f(x), problem.x0.copy(), niter=(b - 1) // 2,
                                    paired=True)
        out[b] = (np.asarray(res.x, float), f.count)
    return out


def _scipy_lbfgsb(problem, budgets, seed):
    from scipy.optimize import minimize

    out = {}
    for b in budgets:
        f = Counted(problem, seed, b)
        last = [problem.x0.copy()]
        try:
            res = minimize(f, problem.x0.copy(), method="L-BFGS-B", options={"maxfun": b},
                           callback=lambda xk: last.__setitem__(0, np.array(xk)))
            x = res.x
        except BudgetExceeded:  # its finite differences overran maxfun: keep the last iterate
            x = last[0]
        out[b] = (np.asarray(x, float), f.count)
    return out


def _record_run(problem, budgets, seed, step):
    """Run once to max(budgets); read the recommendation as the evaluations pass each budget."""
    B = max(budgets)
    f = Counted(problem, seed, B)
    trail = [(0, problem.x0.copy())]
    step(f, trail, B)
    out = {}
    for b in budgets:
        x = [x for used, x in trail if used <= b][-1]
        out[b] = (np.asarray(x, float), min(b, f.count))
    return out


def _cma(problem, budgets, seed):
    import cma

    def step(f, trail, B):
        es = cma.CMAEvolutionStrategy(problem.x0.copy(), 1.0, {"seed": seed + 1, "verbose": -9})
        while f.count + es.popsize <= B:
            X = es.ask()
            es.tell(X, [f(x) for x in X])
            trail.append((f.count, np.array(es.result.xfavorite)))

    return _record_run(problem, budgets, seed, step)


def _optuna(problem, budgets, seed):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def step(f, trail, B):
        names = [f"x{i}" for i in range(problem.n)]
        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
        study.enqueue_trial(dict(zip(names, problem.x0)))
        best = (np.inf, problem.x0.copy())
        for _ in range(B):
            trial = study.ask()
            x = np.array([trial.suggest_float(k, -OPTUNA_BOX, OPTUNA_BOX) for k in names])
            value = f(x)
            study.tell(trial, value)
            if value < best[0]:
                best = (value, x)
            trail.append((f.count, best[1]))

    return _record_run(problem, budgets, seed, step)


#: name -> (runner, family, peer package). "gdtools default" is the one the targets are about.
CONTENDERS = {
    "gdtools default (spsa)": (_gdtools("spsa"), "gdtools", None),
    "gdtools smoothing": (_gdtools("smoothing"), "gdtools", None),
    "gdtools central": (_gdtools("central"), "gdtools", None),
    "gdtools forward": (_gdtools("forward"), "gdtools", None),
    "nevergrad SPSA": (_nevergrad("SPSA"), "peer", "nevergrad"),
    "nevergrad TBPSA": (_nevergrad("TBPSA"), "peer", "nevergrad"),
    "nevergrad NGOpt": (_nevergrad("NGOpt"), "peer", "nevergrad"),
    "noisyopt SPSA": (_noisyopt, "peer", "noisyopt"),
    "scipy L-BFGS-B (FD)": (_scipy_lbfgsb, "peer", "scipy"),
    "Optuna TPE": (_optuna, "peer", "optuna"),
    "pycma": (_cma, "peer", "cma"),
}
DEFAULT = "gdtools default (spsa)"


def _excess(problem, x):
    """Noise-free excess of the recommended point; a diverged point (nan, overflow) counts as inf."""
    with np.errstate(all="ignore"):
        value = problem.true(x) - problem.f_min if np.all(np.isfinite(x)) else np.inf
    return float(value) if np.isfinite(value) else float("inf")


def _task(args):
    """One (problem, seed): every contender, in an order rotated by the seed."""
    problem_name, seed, budgets, names, optuna_budget = args
    import jax

    jax.config.update("jax_platforms", "cpu")
    problem = PROBLEMS[problem_name]
    order = names[seed % len(names):] + names[:seed % len(names)]
    rows = []
    for name in order:
        runner = CONTENDERS[name][0]
        bs = [b for b in budgets if b <= optuna_budget] if name == "Optuna TPE" else budgets
        t0 = time.perf_counter()
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                out = runner(problem, bs, seed)
        except Exception as exc:  # a contender that crashes is reported, not hidden
            rows.append(dict(problem=problem_name, contender=name, seed=seed, budget=None,
                             error=f"{type(exc).__name__}: {exc}"[:300]))
            continue
        wall = time.perf_counter() - t0
        for b in bs:
            x, used = out[b][:2]
            rows.append(dict(problem=problem_name, contender=name, seed=seed, budget=b, evals=used,
                             excess=_excess(problem, x), wall=wall,
                             crash=out[b][2] if len(out[b]) > 2 else None))
    return rows


# -- summary -----------------------------------------------------------------------------------

def summarise(rows, problem_name, budgets, names, seeds):
    problem = PROBLEMS[problem_name]
    start = problem.true(problem.x0) - problem.f_min
    target = TARGET_FRACTION * start
    table = {}
    for name in names:
        errors = [r.get("error") or r.get("crash") for r in rows
                  if r["problem"] == problem_name and r["contender"] == name
                  and (r.get("error") or r.get("crash"))]
        mine = [r for r in rows if r["problem"] == problem_name and r["contender"] == name
                and not r.get("error")]
        per_budget = {}
        for b in budgets:
            vals = np.array([r["excess"] for r in mine if r["budget"] == b])
            if len(vals):
                # Diverged runs are inf; order statistics keep them inf instead of inf - inf = nan.
                q1, med, q3 = np.percentile(np.minimum(vals, 1e300), [25, 50, 75])
                q1, med, q3 = (np.inf if v >= 1e300 else v for v in (q1, med, q3))
                per_budget[b] = dict(median=float(med), q1=float(q1), q3=float(q3), n=len(vals))
        reach = []
        for s in seeds:
            hit = [r["budget"] for r in mine if r["seed"] == s and r["excess"] <= target]
            reach.append(min(hit) if hit else np.inf)
        reach = np.sort(np.array(reach, float))
        median_reach = float(np.median(reach)) if len(reach) else np.inf
        walls = {}
        for r in mine:
            walls.setdefault(r["seed"], r["wall"])
        table[name] = dict(per_budget=per_budget, evals_to_target=median_reach,
                           reached=int(np.sum(np.isfinite(reach))), seeds=len(reach),
                           wall_median=float(np.median(list(walls.values()))) if walls else None,
                           errors=len(errors), error=errors[0] if errors else None)
    verdict = judge(table, budgets)
    return dict(problem=problem_name, title=problem.title, n=problem.n, noise=problem.noise,
                start_excess=start, target=target, budgets=budgets, contenders=table, verdict=verdict)


def judge(table, budgets):
    """The issue's two targets for gdtools' default against the best peer."""
    B = max(budgets)
    peers = {k: v for k, v in table.items() if CONTENDERS[k][1] == "peer" and v["per_budget"]}
    mine = table[DEFAULT]
    if not peers:  # --contenders without peers, or none installed
        none = dict(status="not measured", text="no peer ran (install nevergrad, noisyopt, optuna, cma)")
        return dict(speed=none, final=none)
    speed = _common.speed_verdict(peers, mine["evals_to_target"])
    finals = {k: v["per_budget"][B]["median"] for k, v in peers.items() if B in v["per_budget"]}
    if not finals:  # peers ran, but none to the full budget
        return dict(speed=speed, final=dict(status="not measured", text=f"no peer ran to B={B}"))
    best_final_name = min(finals, key=finals.get)
    best_final = finals[best_final_name]
    my_final = mine["per_budget"][B]["median"] if B in mine["per_budget"] else np.inf
    ok = my_final <= 1.1 * best_final
    final = dict(status="met" if ok else "MISSED",
                 text=f"gdtools {my_final:.3g} vs best peer {best_final_name} {best_final:.3g} "
                      f"(ratio {my_final / best_final if best_final > 0 else np.inf:.3g})")
    best_reach_name = min(peers, key=lambda k: peers[k]["evals_to_target"])
    return dict(speed=speed, final=final, best_peer_reach=best_reach_name, best_peer_final=best_final_name)


def print_summary(summary):
    budgets = summary["budgets"]
    print(f"\n## {summary['title']}  (start excess {summary['start_excess']:.4g}, "
          f"target excess <= {summary['target']:.4g})")
    header = ["contender"] + [f"excess @ {b}" for b in budgets] + ["IQR @ B", "evals to target",
                                                                     "reached", "wall s/run"]
    rows = []
    for name, t in summary["contenders"].items():
        pb = t["per_budget"]
        cells = [_common.fmt(pb[b]["median"]) if b in pb else "not run" for b in budgets]
        last = pb.get(max(budgets))
        iqr = f"{_common.fmt(last['q1'])}–{_common.fmt(last['q3'])}" if last else "–"
        reach = "not reached" if not np.isfinite(t["evals_to_target"]) else f"{t['evals_to_target']:.0f}"
        rows.append([name] + cells + [iqr, reach, f"{t['reached']}/{t['seeds']}",
                                      _common.fmt(t["wall_median"], 2)])
    print(_common.markdown_table(header, rows))
    for name, t in summary["contenders"].items():
        if t["errors"]:
            print(f"{name}: {t['errors']} of {t['seeds'] * len(budgets)} runs crashed inside the package "
                  f"(excess ∞), e.g. {t['error']}")
    v = summary["verdict"]
    print(f"target 1 (reach the target in <= half the best peer's evaluations): {v['speed']['status']} "
          f"({v['speed']['text']})")
    print(f"target 2 (final excess <= 1.1 x best peer's at B={max(budgets)}): {v['final']['status']} "
          f"({v['final']['text']})")


COLORS = ["#1f3fbf", "#3f8fdf", "#2a9d8f", "#7fbf3f", "#d62728", "#ff7f0e", "#9467bd", "#8c564b",
          "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
MARKERS = ["o", "s", "^", "v", "D", "P", "X", "*", "h", "<", ">", "p"]


def plot(summary, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10.5, 5.4))
    budgets = [int(b) for b in summary["budgets"]]
    # Anything worse than 30x the excess at x0 has diverged; it is drawn at the top edge.
    ceiling = 10 ** np.ceil(np.log10(summary["start_excess"] * 30))
    for i, (name, t) in enumerate(summary["contenders"].items()):
        pb = {int(k): v for k, v in t["per_budget"].items()}
        bs = [b for b in budgets if b in pb]
        if not bs:
            continue
        clip = lambda v: min(max(v, 1e-12), ceiling)
        med = np.array([clip(pb[b]["median"]) for b in bs])
        q1 = np.array([clip(pb[b]["q1"]) for b in bs])
        q3 = np.array([clip(pb[b]["q3"]) for b in bs])
        label = name
        if t.get("errors"):
            label += f" (crashed in {t['errors']} runs: top edge)"
        elif any(not np.isfinite(pb[b]["median"]) or pb[b]["median"] > ceiling for b in bs):
            label += " (diverged: top edge)"
        family = CONTENDERS[name][1]
        ax.plot(bs, med, "-" if family == "gdtools" else "--", marker=MARKERS[i % 12], ms=5,
                lw=2.8 if name == DEFAULT else 1.4, color=COLORS[i % 12], label=label)
        ax.fill_between(bs, q1, q3, color=COLORS[i % 12], alpha=0.10)
    ax.axhline(summary["target"], color="k", lw=0.9, ls=":", label="target: 1% of the excess at x0")
    ax.axhline(summary["start_excess"], color="gray", lw=0.8, ls="-.", label="excess at x0")
    ax.set_xscale("log")
    ax.set_xticks(budgets)
    ax.set_xticklabels([str(b) for b in budgets])
    ax.minorticks_off()
    ax.set_yscale("log")
    ax.set_ylim(top=ceiling * 1.5)
    ax.set_xlabel("objective evaluations (budget of the run)")
    ax.set_ylabel("noise-free excess f(x) − min f\nof the recommended point")
    seeds = summary["contenders"][DEFAULT]["seeds"]
    ax.set_title(f"{summary['title']}\nmedian (line) and quartiles (band) over {seeds} seed"
                 f"{'s' if seeds != 1 else ''}; solid = gdtools, dashed = peers", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def available(names):
    return _common.available(names, {name: c[2] for name, c in CONTENDERS.items()})


def replot(path, out=None):
    """Summaries, tables and figures again from the raw rows of an earlier run."""
    with open(path) as fh:
        data = json.load(fh)
    figures_dir = out or _common.DOCS
    results_dir = out or os.path.dirname(os.path.abspath(path))
    print(f"# Noisy black-box suite (from {path}: budget {data['budget']}, {data['seeds']} seeds)")
    print(f"machine: {_common.machine_line(data['machine'])}")
    names = list(dict.fromkeys(r["contender"] for r in data["rows"]))
    names = [n for n in CONTENDERS if n in names]
    summaries = []
    present = {r["problem"] for r in data["rows"]}
    for p in [p for p in PROBLEMS if p in present]:
        summary = summarise(data["rows"], p, data["budgets"], names, list(range(data["seeds"])))
        fig = os.path.join(figures_dir, f"bench_noisy_{p}.png")
        plot(summary, fig)
        summary["figure"] = os.path.relpath(fig, _common.ROOT) if out is None else fig
        print_summary(summary)
        summaries.append(summary)
    data["summaries"] = summaries
    print(f"wrote {_common.save_json('noisy_blackbox.json', data, results_dir)}")
    return data


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny budget and 2 seeds (for tests)")
    parser.add_argument("--budget", type=int, default=None, help="full budget B (default 1000)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds (default 10)")
    parser.add_argument("--optuna-budget", type=int, default=None,
                        help="Optuna stops here (its cost per trial grows with the trials)")
    parser.add_argument("--problems", default=",".join(PROBLEMS), help="comma-separated problem names")
    parser.add_argument("--contenders", default=None, help="comma-separated contender names")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: CPU count)")
    parser.add_argument("--out", default=None,
                        help="directory for results and figures (default: benchmarks/results and docs; "
                             "a temporary directory with --quick)")
    parser.add_argument("--from-json", default=None,
                        help="redo the tables and figures from a results file's raw rows (no new runs)")
    args = parser.parse_args(argv)
    if args.from_json:
        return replot(args.from_json, args.out)

    B = args.budget or (40 if args.quick else 1000)
    n_seeds = args.seeds or (2 if args.quick else 10)
    optuna_budget = args.optuna_budget or (B if args.quick else 250)
    budgets = [B // 8, B // 4, B // 2, B]
    problems = [p for p in args.problems.split(",") if p]
    names = available(args.contenders.split(",") if args.contenders else list(CONTENDERS))
    if DEFAULT not in names:
        parser.error(f"{DEFAULT!r} must be among the contenders")
    out = args.out or (tempfile.mkdtemp(prefix="bench_quick_") if args.quick else None)
    results_dir = out or _common.RESULTS
    figures_dir = out or _common.DOCS
    os.makedirs(results_dir, exist_ok=True)
    os.makedirs(figures_dir, exist_ok=True)

    info = _common.machine(("gdtools", "jax", "numpy", "scipy", "nevergrad", "noisyopt", "optuna", "cma"))
    print(f"# Noisy black-box suite  ({'quick' if args.quick else 'full'}: budget {B}, {n_seeds} seeds, "
          f"checkpoints {budgets})")
    print(f"machine: {_common.machine_line(info)}")

    tasks = [(p, s, budgets, names, optuna_budget) for s in range(n_seeds) for p in problems]
    workers = args.workers or (1 if args.quick else min(os.cpu_count() or 1, len(tasks)))
    t0 = time.perf_counter()
    rows = []
    if workers > 1:
        with mp.get_context("spawn").Pool(workers) as pool:
            for chunk in pool.imap_unordered(_task, tasks):
                rows.extend(chunk)
    else:
        for task in tasks:
            rows.extend(_task(task))
    total = time.perf_counter() - t0

    summaries = []
    for p in problems:
        summary = summarise(rows, p, budgets, names, list(range(n_seeds)))
        fig = os.path.join(figures_dir, f"bench_noisy_{p}.png")
        plot(summary, fig)
        summary["figure"] = os.path.relpath(fig, _common.ROOT) if out is None else fig
        print_summary(summary)
        summaries.append(summary)
    print(f"\ntotal wall time {total:.0f} s with {workers} processes")
    data = dict(machine=info, quick=args.quick, budget=B, seeds=n_seeds, budgets=budgets,
                optuna_budget=optuna_budget, target_fraction=TARGET_FRACTION, wall_s=total,
                summaries=summaries, rows=rows)
    print(f"wrote {_common.save_json('noisy_blackbox.json', data, results_dir)}")
    return data


if __name__ == "__main__":
    main()
