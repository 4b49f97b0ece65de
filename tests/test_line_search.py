from concurrent.futures import ThreadPoolExecutor

import numpy as np
import optax
import pytest

import gdtools as gd
from gdtools.line_search import LineSearchDescent


def rosen_np(x):
    x = np.asarray(x)
    return float(np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))


@pytest.mark.parametrize("gradient", ["central", "forward"])
def test_finite_differences_solve_rosenbrock_from_the_classic_start(gradient):
    res = gd.minimize(rosen_np, np.array([-1.2, 1.0]), gradient=gradient, max_evals=3000)
    assert res.success, res.message
    np.testing.assert_allclose(res.x, 1.0, atol=1e-4)
    assert res.nfev < 1000


def test_trial_steps_can_be_measured_in_parallel_batches():
    search = LineSearchDescent(trials_per_batch=4)
    with ThreadPoolExecutor(4) as pool:
        res = gd.minimize(rosen_np, np.zeros(4), gradient="central", optimizer=search, executor=pool,
                          max_evals=4000)
    np.testing.assert_allclose(res.x, 1.0, atol=1e-4)


def test_every_accepted_step_decreases_the_loss():
    res = gd.minimize(rosen_np, np.array([-1.2, 1.0]), gradient="forward", max_evals=2000)
    loss = res.history.loss
    assert np.all(np.diff(loss[np.isfinite(loss)]) <= 1e-12)


def test_optax_line_search_on_a_black_box_is_refused_clearly():
    with pytest.raises(gd.InputError, match="value function"):
        gd.minimize(rosen_np, np.zeros(2), gradient="central", optimizer=optax.lbfgs(), max_evals=50)


def test_bad_settings_are_refused():
    with pytest.raises(gd.InputError, match="c1"):
        LineSearchDescent(c1=2.0)


def test_a_failed_search_along_the_quasi_newton_direction_retries_along_the_gradient():
    # 10-d Rosenbrock in the box [-2, 0.5]: forward differences stalled 0.05 above the minimum
    # (no_progress, reported as success) with a projected gradient of 2.8: the L-BFGS pairs made of
    # projected steps had scaled the direction far off and every trial along it failed. Retrying
    # along -g with a fresh memory (as L-BFGS-B does) reaches scipy's 7.594813.
    from scipy.optimize import rosen

    res = gd.minimize(rosen, np.zeros(10), gradient="forward", bounds=(-2 * np.ones(10), 0.5 * np.ones(10)),
                      max_evals=5000)
    assert res.status == "converged" and res.fun == pytest.approx(7.594813, abs=1e-6), (res.fun, res.status)


def test_a_second_finite_difference_run_compiles_nothing():
    # the default line search's direction was jitted per instance, so every minimize call compiled
    # it again: 0.44 s of a 0.46 s call on a cheap objective
    from gdtools import compile_time

    fun = lambda x: float(np.sum((np.asarray(x) - 1.0) ** 2))  # noqa: E731
    gd.minimize(fun, np.zeros(5), gradient="central")
    before = compile_time.stages()
    res = gd.minimize(lambda x: fun(x) + 1.0, np.zeros(5), gradient="central")  # another objective
    assert res.success and compile_time.stages() == before
    assert LineSearchDescent()._update is LineSearchDescent()._update


def test_trial_steps_that_project_onto_one_point_measure_it_once():
    # steps past a bound all land on the bound: it was measured again for every shorter step
    # (here 5 times), each counted against the budget, on an exact objective whose value there
    # cannot change
    measured = []

    def evaluate(points):
        measured.extend(tuple(p) for p in np.asarray(points))
        return np.array([(float(p[0]) - 0.6) ** 2 for p in np.asarray(points)])

    search = LineSearchDescent()
    x = np.array([0.5])
    new_x, new_value, _ = search.step(x, 0.01, np.array([-10.0]), search.init(x), evaluate,
                                      lambda p: np.clip(p, 0.0, 1.0), bounds=(np.zeros(1), np.ones(1)))
    assert len(measured) == len(set(measured)) and measured.count((1.0,)) == 1, measured
    assert 0.5 < new_x[0] < 1.0 and new_value == (new_x[0] - 0.6) ** 2


def test_a_step_that_leaves_the_value_unchanged_is_not_accepted():
    # Himmelblau from a float32 JAX start, forward differences: near the minimum Armijo's required
    # decrease c1 * t * g.d fell below the rounding of f, so trial points with exactly the value at
    # x passed it. x crept on (1e-12 a step, in float64, below what the float32 objective resolves),
    # the value never changed and the gradient changed only in its last digits, so the stall was
    # never seen: 1000 iterations and 4015 evaluations, "max_iters" (a few hundred suffice to stall).
    import jax.numpy as jnp

    def himmelblau(x):
        return (x[0] ** 2 + x[1] - 11) ** 2 + (x[0] + x[1] ** 2 - 7) ** 2

    res = gd.minimize(himmelblau, jnp.zeros(2, jnp.float32), gradient="forward")
    assert res.status in ("converged", "no_progress") and res.nfev < 300, (res.status, res.nfev)
    np.testing.assert_allclose(np.asarray(res.x), [3.0, 2.0], atol=1e-3)
    records = res.history.iterations
    for before, after in zip(records, records[1:]):  # every step that moved x lowered f
        if not np.array_equal(before["x"], after["x"]):
            assert after["loss"] < before["loss"], (before, after)


def test_coordinates_held_at_a_bound_stay_there_and_the_run_is_short():
    # A bounded quadratic whose minimum lies on the bounds in four of five coordinates. L-BFGS's
    # direction gave held coordinates components into the box from the others' gradients: they
    # left the bound (x = 0 -> 2e-4) and came back, and the run took 145 evaluations (scipy: 12).
    c = np.array([1.185, -0.651, -1.795, -1.917, 2.066])
    weights = np.arange(1, 6)
    path = []
    res = gd.minimize(lambda x: float(np.sum(weights * (np.asarray(x) - c) ** 2)), np.full(5, 0.5),
                      gradient="forward", bounds=(0.0, 1.0), callback=lambda s: path.append(np.asarray(s.x)))
    assert res.success
    np.testing.assert_allclose(res.x, np.clip(c, 0, 1), atol=1e-6)
    path.append(np.asarray(res.x))
    for i, bound in [(1, 0.0), (2, 0.0), (3, 0.0), (4, 1.0)]:
        reached = [k for k, x in enumerate(path) if x[i] == bound]
        assert reached and all(x[i] == bound for x in path[reached[0]:])
    assert res.nfev <= 40


def test_a_search_at_a_minimum_stops_where_the_decrease_it_promises_is_below_rounding():
    # At the minimum of 1e3 + |x|^2 a finite-difference gradient is its error (1e-6 here): no step
    # lowers f. The search halved its step 30 times along the quasi-Newton direction and 30 along
    # -g, 60 evaluations for nothing; a first-order decrease below f's rounding cannot be measured.
    from gdtools.line_search import LineSearchDescent

    measured = []

    def evaluate(points):
        measured.extend(points)
        return [1e3 + float(np.sum(p ** 2)) for p in points]

    search = LineSearchDescent()
    x = np.zeros(3)
    new_x, _, _ = search.step(x, 1e3, np.full(3, 1e-6), search.init(x), evaluate, lambda p: p)
    assert new_x is x
    assert 0 < len(measured) <= 30


def test_trial_steps_that_round_to_one_integer_setting_measure_it_once():
    # an exact objective over an Int: the search's trial steps along n (0.1 of its unit and less)
    # all round back to n = 1, the start's setting, which was measured again for each of them
    # (8 of 14 evaluations of `gdtools tune --objective stdout --gradient central`)
    space = gd.Space(x=gd.Real(-1.0, 1.0), n=gd.Int(0, 1))
    settings = []

    def objective(params):
        settings.append(tuple(params.items()))
        return (params["x"] - 0.3) ** 2 + 0.1 * params["n"]

    gd.minimize(objective, {"x": 0.3, "n": 1}, space=space, gradient="central", max_evals=14)
    start = (("x", 0.3), ("n", 1))
    # the start, and central differences' probe past the bound, which is the start again
    assert settings.count(start) <= 2, settings


@pytest.mark.parametrize("gradient, n_best, start", [("forward", 30, 30), ("central", 3, 3)])
def test_a_search_that_leaves_every_integer_where_it_was_moves_the_reals_along_their_own_direction(
        gradient, n_best, start):
    # n sits at its best setting, but its slope (forward: measured on one side; central: from 2 and
    # 5, the symmetric pair a log scale makes at 3) dominated the direction: the search shrank the
    # step until n rounded back, and x moved by the same sliver, iteration after iteration (forward:
    # x held at 0.739 for 60 evaluations, its minimum at -0.15)
    space = gd.Space(n=gd.Int(1, 1024, log=True), x=gd.Real(-1, 1))
    res = gd.minimize(lambda p: (p["n"] - n_best - 0.2) ** 2 + 5 * (p["x"] + 0.15) ** 2,
                      {"n": start, "x": 0.74}, space=space, gradient=gradient, max_evals=60)
    assert res.x["n"] == n_best and abs(res.x["x"] + 0.15) < 1e-3, (res.x, res.message)


def test_an_integer_whose_setting_is_its_bound_is_held_there_as_a_coordinate_on_its_bound():
    # after the first step n's unit position was 0.36, which stands for n = 0, its lower bound; its
    # slope pushed it further down, a move its rounding undid, and L-BFGS's memory turned that slope
    # into a step of x away from its minimum: 30 trials from 0.13 towards 0, the budget spent there
    space = gd.Space(n=gd.Int(0, 1), x=gd.Real(0, 1))
    res = gd.minimize(lambda p: p["n"] + (p["x"] - 0.3) ** 2, {"n": 1, "x": 0.9}, space=space,
                      gradient="central", max_evals=40)
    assert res.x["n"] == 0 and abs(res.x["x"] - 0.3) < 1e-6, (res.x, res.message)
