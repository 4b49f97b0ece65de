import numpy as np
import pytest
from hypothesis import assume, example, given, settings, strategies as st

import gdtools as gd
from gdtools.estimators import Central, Forward
from problems import NumpyQuadratic, smooth_1d_family


def _evaluate(fun):
    return lambda points: np.array([fun(p) for p in points])


def _grad(estimator, fun, x, **kw):
    est = estimator.estimate(fun, np.asarray(x, float), key=None, iteration=0, evaluate=_evaluate(fun), **kw)
    return est


def test_central_matches_analytic_gradient_of_numpy_quadratic_to_1e6():
    q = NumpyQuadratic(n=5)
    x = np.linspace(-1, 2, 5)
    est = _grad(Central(), q, x)
    np.testing.assert_allclose(est.grad, q.grad(x), atol=1e-6, rtol=0)
    assert est.nfev == 10


def test_forward_costs_n_plus_one_and_is_close():
    q = NumpyQuadratic(n=5)
    x = np.linspace(-1, 2, 5)
    est = _grad(Forward(), q, x)
    assert est.nfev == 6 and est.value == pytest.approx(q(x))
    np.testing.assert_allclose(est.grad, q.grad(x), atol=1e-6 * 50)


def test_default_steps_follow_scipys_rule():
    x = np.array([0.0, 10.0, -1e3])
    eps = np.finfo(float).eps
    np.testing.assert_allclose(Forward().steps(x), eps ** 0.5 * np.array([1.0, 10.0, 1e3]))
    np.testing.assert_allclose(Central().steps(x), eps ** (1 / 3) * np.array([1.0, 10.0, 1e3]))


@settings(max_examples=25, deadline=None)
@given(a=st.floats(0.2, 2.0), b=st.floats(0.5, 3.0), x=st.floats(-1.0, 1.0))
@example(a=0.5, b=3.0, x=0.5)
def test_errors_shrink_at_their_theoretical_order(a, b, x):
    """Halving h halves the forward error (O(h)) and quarters the central one (O(h^2))."""
    f, df, d2, d3 = smooth_1d_family(a, b)
    # Keep the leading error terms (h f2/2 forward, h^2 f3/6 central) away from zero, and the
    # forward difference's next term (h^2 f3/6) below a tenth of its leading one at h = 1e-2: where
    # it is not (a=0.5, b=3, x=0: f2 = 0.25, f3 = -26.9), halving h cannot halve the error yet.
    assume(abs(d2(x)) > 0.1 and abs(d3(x)) > 0.1)
    assume(abs(d3(x)) < 30 * abs(d2(x)))
    exact = df(x)
    for cls, order in ((Forward, 1), (Central, 2)):
        errors = []
        for h in (1e-2, 5e-3, 2.5e-3):
            g = _grad(cls(step=h), f, [x]).grad[0]
            errors.append(abs(g - exact))
        ratios = [errors[i] / errors[i + 1] for i in range(2)]
        for r in ratios:
            assert 2 ** order * 0.8 < r < 2 ** order * 1.25, (cls.name, errors)


def test_noise_aware_step_beats_the_noise_free_rule_on_a_noisy_function():
    rng = np.random.default_rng(0)
    noise = 1e-3
    f = lambda x: float(np.sum(np.sin(x)) + 5.0) + noise * rng.normal()
    x = np.array([0.3, -0.2, 1.0])
    exact = np.cos(x)
    plain = [np.max(np.abs(_grad(Central(), f, x).grad - exact)) for _ in range(20)]
    aware_estimator = Central()
    aware_estimator.observe(f(x))  # the engine tells estimators the level of f at x0
    aware = [np.max(np.abs(_grad(aware_estimator, f, x, noise=noise, scale=np.ones(3)).grad - exact))
             for _ in range(20)]
    assert np.median(aware) < 0.1 * np.median(plain)
    assert np.median(aware) < 0.1


def test_probes_stay_inside_bounds():
    seen = []

    def f(x):
        seen.append(np.array(x))
        return float(np.sum(x ** 2))

    lo, hi = np.zeros(3), np.ones(3)
    x = np.array([0.0, 0.5, 1.0])
    for est in (Central(step=0.1), Forward(step=0.1)):
        g = _grad(est, f, x, bounds=(lo, hi)).grad
        np.testing.assert_allclose(g, 2 * x, atol=0.21)
    pts = np.array(seen)
    assert np.all(pts >= 0) and np.all(pts <= 1)


def test_a_central_pair_near_a_bound_stays_centred_on_x_as_far_as_half_its_step():
    # A wide (noise-aware) pair near the upper bound: shortened to stay centred on x it is exact on
    # a quadratic; slid inside the box whole, it measured the slope at its midpoint instead, on
    # the other side of the minimum at 0.65 (a run then went on into the bound).
    f = lambda x: float(np.sum((x - 0.65) ** 2))  # noqa: E731
    lo, hi = np.zeros(1), np.ones(1)
    g = _grad(Central(step=0.44), f, np.array([0.72]), bounds=(lo, hi)).grad
    np.testing.assert_allclose(g, [2 * (0.72 - 0.65)], rtol=1e-9)
    # closer to the bound than half the step, on a noisy objective: a pair of half the step, slid
    # inside; its midpoint is at most half a step from x (it was a whole step)
    seen = []
    _grad(Central(step=0.44), lambda x: seen.append(x.copy()) or f(x), np.array([0.9]), bounds=(lo, hi),
          noise=0.01)
    (plus,), (minus,) = seen
    assert plus == pytest.approx(1.0) and minus == pytest.approx(1.0 - 0.44)


@pytest.mark.parametrize("x", [[0.9, 0.3], [1.0, 0.3], [0.3, 0.0]])
def test_against_a_bound_a_known_value_at_x_gives_the_one_sided_three_point_formula(x):
    # scipy's '3-point' rule at a bound, with f(x) the engine already measured (the start, a line
    # search's accepted point): exact on a quadratic, no extra evaluation, and f(x) is the
    # estimate's value. Without it, the slid pair: the slope at its midpoint (first order).
    f = lambda p: float(np.sum((p - np.array([0.65, 0.2])) ** 2) + 3.0 * p[0] * p[1])  # noqa: E731
    lo, hi = np.zeros(2), np.ones(2)
    x = np.array(x)
    exact = 2 * (x - np.array([0.65, 0.2])) + 3.0 * x[::-1]
    central = Central(step=0.44)
    central.observe_at(x, f(x))
    seen = []
    est = _grad(central, lambda p: seen.append(p.copy()) or f(p), x, bounds=(lo, hi))
    np.testing.assert_allclose(est.grad, exact, rtol=1e-9)
    assert est.nfev == len(seen) == 4 and est.value == f(x)
    assert all(np.all((p >= lo) & (p <= hi)) for p in seen)
    slid = _grad(Central(step=0.44), f, x, bounds=(lo, hi)).grad  # f(x) unknown
    assert np.max(np.abs(slid - exact)) > 0.1
    moved = Central(step=0.44)
    moved.observe_at(x + 0.01, f(x + 0.01))  # a value at another point is not f(x)
    np.testing.assert_allclose(_grad(moved, f, x, bounds=(lo, hi)).grad, slid)


def test_a_coordinate_held_at_its_bound_beside_a_one_sided_one_warns_of_nothing():
    # x = 0.5 at the top of [0, 0.5], too narrow for the three-point formula: its pair is [0, 0.5],
    # whose upper point is x. The formula, computed for every coordinate and kept for the one-sided
    # ones, divided by that 0: "RuntimeWarning: divide by zero" in the middle of gdtools tune's output
    import warnings

    f = lambda p: float(np.sum((p - 0.2) ** 2))  # noqa: E731
    lo, hi, x = np.zeros(2), np.array([1.0, 0.5]), np.array([0.0, 0.5])
    central = Central(step=0.6)
    central.observe_at(x, f(x))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = _grad(central, f, x, bounds=(lo, hi))
    np.testing.assert_allclose(est.grad, [-0.4, 2 * (0.25 - 0.2)], rtol=1e-9)


def test_the_three_point_step_shrinks_to_fit_the_box():
    # a fixed step of 0.6 at x = 0 in [0, 1]: points at 0.6 and 1.2 do not fit; at 0.5 and 1.0 they do
    f = lambda p: float((p[0] - 0.3) ** 2)  # noqa: E731
    central = Central(step=0.6)
    central.observe_at(np.zeros(1), f(np.zeros(1)))
    seen = []
    est = _grad(central, lambda p: seen.append(p.copy()) or f(p), np.zeros(1), bounds=(np.zeros(1), np.ones(1)))
    np.testing.assert_allclose(est.grad, [-0.6], rtol=1e-9)
    assert sorted(float(p[0]) for p in seen) == pytest.approx([0.5, 1.0])


def test_min_step_moves_integer_coordinates_by_a_unit():
    h = Central().steps(np.array([0.5, 0.5]), min_step=np.array([0.0, 0.1]))
    assert h[1] == pytest.approx(0.1) and h[0] < 1e-4


def test_bad_step_is_refused():
    with pytest.raises(gd.InputError, match="step must be positive"):
        Central(step=-1.0)


@pytest.mark.parametrize("step", ["small", [1e-3, None], {"x": 1e-3}])
def test_a_step_that_is_no_number_is_refused(step):
    # numpy's comparison raised UFuncTypeError for a string, TypeError for a None or a dict
    with pytest.raises(gd.InputError, match="step must be positive"):
        Forward(step=step)


@pytest.mark.parametrize("estimator", [Forward(), Central()])
def test_noise_aware_steps_are_capped_at_a_fifth_of_the_scale(estimator):
    # pure noise (relative noise 1) asked for steps of 1.4 (central) and 2 (forward) scales
    from gdtools.estimators.finite_difference import MAX_NOISY_STEP

    h = estimator.steps(np.zeros(3), f0=1.0, noise=1.0, scale=np.array([1.0, 2.0, 10.0]))
    np.testing.assert_allclose(h, MAX_NOISY_STEP * np.array([1.0, 2.0, 10.0]))
    small = estimator.steps(np.zeros(1), f0=1.0, noise=1e-6, scale=np.ones(1))
    assert small[0] < MAX_NOISY_STEP  # below the cap the rule stands


def test_the_engine_gives_central_its_value_at_x_only_for_a_deterministic_objective():
    seen = []

    class Spy(Central):
        def observe_at(self, x, value):
            seen.append(float(value))
            super().observe_at(x, value)

    exact = lambda x: float(np.sum((x - 0.3) ** 2))  # noqa: E731
    gd.minimize(exact, np.zeros(2), gradient=Spy(), bounds=(0.0, 1.0), max_evals=40)
    assert seen and seen[0] == exact(np.zeros(2))  # the start, then accepted line-search points
    seen.clear()
    noisy = lambda x, key: exact(x) + 0.01 * float(np.random.default_rng(abs(hash(str(key))) % 2**32).normal())  # noqa: E731
    gd.minimize(noisy, np.zeros(2), gradient=Spy(), bounds=(0.0, 1.0), max_evals=7)  # no room for noise probes
    assert seen == []


def test_central_reports_f_at_x_where_the_engine_knows_it():
    # A float32 black box: central's steps are eps32**(1/3) ~ 5e-3, and the mean of its probes is
    # off f(x) by h**2 f''/2. It was the iteration's loss (0.0097 against f(x) = 6e-5) and the
    # line search's f(x): the run wandered to max_iters (11,349 evaluations, best at 388).
    from scipy.optimize import rosen

    fun = lambda x: np.float32(rosen(x))  # noqa: E731
    res = gd.minimize(fun, np.zeros(5), gradient="central", max_evals=3000)
    assert res.success and res.nfev < 1000 and res.fun < 1e-3, res
    recorded = [float(fun(x)) for x in res.history.x]
    np.testing.assert_array_equal(res.history.loss, recorded)


@pytest.mark.parametrize("gradient", ["forward", "central"])
@pytest.mark.parametrize("n", [3, 40])  # 40: 80 probes a gradient, more than the points kept
def test_an_exact_objective_is_measured_twice_at_one_point_only_to_check_a_stall(gradient, n):
    # forward differences measured f(x) again at every point the line search had accepted (and at
    # x0), and every run measured its result once more at the end: 41 evaluations, 9 repeats
    seen = []

    def fun(x):
        seen.append(tuple(np.asarray(x, dtype=float)))
        return float(np.sum((np.asarray(x) - np.arange(n)) ** 2) + 0.1 * np.sum(np.asarray(x) ** 4))

    res = gd.minimize(fun, np.zeros(n), gradient=gradient, max_evals=200 * n)
    assert res.success and len(seen) == res.nfev
    # but a run that stopped moving measures its last point once more: two values there would
    # mean noise nobody declared, and the stop would prove nothing
    once_more = [tuple(np.asarray(res.x, dtype=float))] if res.status == "no_progress" else []
    assert [p for i, p in enumerate(seen) if p in seen[:i]] == once_more
    assert res.fun == fun(res.x)  # the value reported is the value there


def test_a_noisy_objective_keeps_its_base_point_in_the_batch():
    # a noise level given: f(x) is measured beside its probes (its value from a line search is
    # another draw), as before
    seen = []

    def fun(x):
        seen.append(tuple(np.asarray(x, dtype=float)))
        return float(np.sum(np.asarray(x) ** 2))

    gd.minimize(fun, np.ones(3), gradient="forward", noise=1e-3, max_evals=60)
    assert len(seen) > len(set(seen))


def test_a_step_of_the_wrong_length_is_refused_before_anything_is_measured():
    calls = []
    with pytest.raises(gd.InputError, match="step has shape \\(2,\\), but x has 3 coordinates"):
        gd.minimize(lambda x: calls.append(1) or float(np.sum(x ** 2)), np.zeros(3), gradient=Central(step=[1e-3, 1e-3]))
    assert calls == []


@pytest.mark.parametrize("gradient", ["forward", "central"])
def test_a_probe_that_failed_once_is_measured_again_alone(gradient):
    # the 5th call crashes: before, the whole gradient was thrown away and all its probes measured
    # again at the next iteration (8 of 8 repeated for central in 4-D)
    seen = []

    def flaky(x):
        seen.append(tuple(np.asarray(x, dtype=float)))
        if len(seen) == 5:
            raise RuntimeError("flaky")
        return float(np.sum((np.asarray(x) - 1.0) ** 2))

    res = gd.minimize(flaky, np.zeros(4), gradient=gradient)
    assert res.success and res.nfev == len(seen)
    assert [p for p in set(seen) if seen.count(p) > 1] == [seen[4]] and seen.count(seen[4]) == 2  # it alone, once more


def test_a_probe_that_fails_again_leaves_the_estimate_unusable_as_before():
    def edge(x):
        if x[0] > 0.3:  # beyond the edge of the domain: every probe there fails
            raise RuntimeError("outside the domain")
        return float(np.sum((np.asarray(x) - 1.0) ** 2))

    res = gd.minimize(edge, np.zeros(3), gradient="central", max_evals=300)
    assert res.status == "failed" and "had a failed probe" in res.message and res.nfev < 300
    np.testing.assert_allclose(res.x, 0.3, atol=1e-3)


def test_a_probe_measured_again_neither_counts_as_a_failure_in_a_row_nor_overruns_the_budget():
    # an objective that fails below 0.05 (a batch too large for memory, say): the probes that fail
    # again must leave the engine its recovery, probes closer to x at the next iteration; counted
    # as failures in a row they stopped the run at x0 after 7 evaluations
    def limited(x):
        if np.any(x < 0.05):
            raise RuntimeError("out of memory")
        return float(np.sum((x - 0.1) ** 2) + 1)

    res = gd.minimize(limited, np.array([0.2, 0.2]), gradient="central", noise=0.01, max_evals=200)
    assert res.fun < 1.01 and res.nfev > 7
    calls = []

    def flaky(x):  # every third call fails
        calls.append(1)
        if len(calls) % 3 == 0:
            raise RuntimeError("flaky")
        return float(np.sum((np.asarray(x) - 1.0) ** 2))

    res = gd.minimize(flaky, np.zeros(3), gradient="central", max_evals=8)
    assert res.nfev == len(calls) <= 8


@pytest.mark.parametrize("estimator", [Forward(step=[1e-3, 1e-12, 1e-3]), Central(step=1e-12)])
def test_a_step_lost_in_the_rounding_of_x_is_refused(estimator):
    # x + 1e-12 == x at 1e6: forward differences measured x itself, a gradient of 0, and the run
    # 'converged' (success) with that coordinate at its start, where the slope is 2e6; central
    # differences divided 0 by 0
    fun = lambda x: float(np.sum((np.asarray(x) - 1) ** 2))  # noqa: E731
    with pytest.raises(gd.InputError, match=r"step 1e-12 is lost in the rounding of x\[\d\] = 1e\+06"):
        gd.minimize(fun, np.array([1.0, 1e6, 1.0]) if estimator.name == "forward" else np.full(3, 1e6),
                    gradient=estimator, max_evals=50)


def test_central_gives_an_integer_coordinate_at_a_minimum_along_its_axis_no_slope():
    # u = n / 10 for an Int(0, 10): a unit is 0.1. f(n) = (n - 3.4)^2 at n = 3: f(2) = 1.96 and
    # f(4) = 0.36 are both above f(3) = 0.16, so n = 3 is the minimum along n; the difference
    # (0.36 - 1.96) / 0.2 = -8 is the curvature over a unit, not a direction to move in.
    fun = lambda u: (10 * u[0] - 3.4) ** 2 + (u[1] - 0.3) ** 2  # noqa: E731
    x = np.array([0.3, 0.9])
    unit = np.array([0.1, 0.0])  # min_step: n is an integer, u[1] a real
    # (the engine's Problem.unit_neighbours: the probes of n are its neighbours, u[1] is no integer)
    neighbours = lambda x, upper, lower: np.array([True, False])  # noqa: E731
    central = Central()
    central.observe_at(x, fun(x))
    est = central.estimate(fun, x, key=None, iteration=0, evaluate=_evaluate(fun), min_step=unit * (1 + 1e-9),
                           neighbours=neighbours)
    assert est.grad[0] == 0.0 and abs(est.grad[1] - 1.2) < 1e-5
    # at n = 4 the neighbour n = 3 is lower: the slope stays
    x = np.array([0.4, 0.9])
    central.observe_at(x, fun(x))
    est = central.estimate(fun, x, key=None, iteration=0, evaluate=_evaluate(fun), min_step=unit * (1 + 1e-9),
                           neighbours=neighbours)
    assert est.grad[0] > 0
    # not knowing f(x) (a noisy objective's is not re-used), nothing to compare with: the difference stays
    fresh = Central()
    x = np.array([0.3, 0.9])
    est = fresh.estimate(fun, x, key=None, iteration=0, evaluate=_evaluate(fun), min_step=unit * (1 + 1e-9),
                         neighbours=neighbours)
    assert est.grad[0] < 0


def test_a_forward_step_longer_than_the_box_stays_inside_it():
    # Forward(step=1.0) in [0, 0.5] from 0.25: the probe that would leave the box above was taken
    # backwards, to -0.75, outside it too (a program run with a setting it refuses: 'failed' after
    # 3 probes); it now goes as far as the box allows on its roomier side, as central's pair does
    seen = []

    def fun(x):
        seen.append(np.array(x))
        return float(np.sum((np.asarray(x) - 1.0) ** 2))

    res = gd.minimize(fun, np.full(2, 0.25), gradient=gd.estimators.Forward(step=1.0), bounds=(0.0, 0.5),
                      max_evals=30)
    points = np.array(seen)
    assert points.min() >= 0.0 and points.max() <= 0.5
    np.testing.assert_allclose(res.x, [0.5, 0.5])


def test_central_probes_an_integer_one_unit_from_its_bound_at_the_bound():
    # n = 1 of Int(0, 10): the hair min_step adds for safety made the pair 0, 2 'not fit' the box,
    # so central differences went one-sided to 2 and 3, whose formula pointed away from n = 1, the
    # minimum along n; the minimum was never seen as one, and x crept (40 evaluations, unconverged)
    space = gd.Space(n=gd.Int(0, 10), x=gd.Real(-1, 1))
    seen = []

    def fun(p):
        seen.append(p["n"])
        return (p["n"] - 1.2) ** 2 + (p["x"] - 0.3) ** 2 + 0.3 * p["n"] * p["x"]

    res = gd.minimize(fun, {"n": 1, "x": 0.9}, space=space, gradient="central", max_evals=40)
    assert seen[1:5].count(0) == 1 and 3 not in seen[1:5]  # the first gradient's probes of n: 2 and 0
    assert res.success and res.x["n"] == 1 and abs(res.x["x"] - 0.15) < 1e-6, (res.x, res.message)


def test_forward_probes_the_other_side_of_an_integer_whose_probe_measured_f_x():
    # n = 4 and its probe n = 5 measure the same: a forward difference of 0 along n, so the run
    # 'converged' at n = 4 though n = 6 is lower (a coarse printed number, the same at n = 4 and 6,
    # did the same after 2 evaluations) (found by h69)
    values = {0: 8, 1: 7, 2: 6, 3: 5, 4: 2, 5: 2, 6: 1, 7: 3, 8: 4}
    res = gd.minimize(lambda p: float(values[p["n"]]), {"n": 4}, space=gd.Space(n=gd.Int(0, 8)),
                      gradient="forward", max_evals=20)
    assert res.x["n"] == 6, (res.x, res.message)
