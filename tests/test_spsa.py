import numpy as np
import pytest

import gdtools as gd
from gdtools.estimators import SPSA
from problems import NoisyQuadratic


def test_spsa_estimate_is_unbiased_on_a_linear_function():
    w = np.array([1.0, -2.0, 3.0, 0.5])
    f = lambda x: float(w @ x)
    evaluate = lambda pts: np.array([f(p) for p in pts])
    import jax

    grads = [SPSA(c=0.1).estimate(f, np.zeros(4), key=jax.random.PRNGKey(i), iteration=0,
                                   evaluate=evaluate).grad for i in range(400)]
    np.testing.assert_allclose(np.mean(grads, axis=0), w, atol=0.4)


def test_spsa_costs_two_evaluations_per_perturbation():
    import jax

    f = lambda x: float(np.sum(x ** 2))
    evaluate = lambda pts: np.array([f(p) for p in pts])
    est = SPSA(n_perturbations=3).estimate(f, np.ones(50), key=jax.random.PRNGKey(0), iteration=0,
                                           evaluate=evaluate)
    assert est.nfev == 6 and est.grad.shape == (50,)


def test_spsa_settings_are_validated():
    with pytest.raises(gd.InputError, match="n_perturbations"):
        SPSA(n_perturbations=0)
    with pytest.raises(gd.InputError, match="c must be"):
        SPSA(c=-0.1)


def test_iterate_averaging_is_an_option_that_changes_the_recommendation():
    problem = NoisyQuadratic()
    plain = gd.minimize(problem, np.zeros(10), gradient=SPSA(), max_evals=400, seed=0)
    averaged = gd.minimize(problem, np.zeros(10), gradient=SPSA(average=0.5), max_evals=400, seed=0)
    # The same iterates, recommended differently: the last one, or the mean of the last half.
    assert [r["loss"] for r in plain.history.iterations[:-1]] == [r["loss"] for r in averaged.history.iterations[:-1]]
    assert not np.array_equal(plain.x, averaged.x)
    trajectory = averaged.history.x[-100:]
    assert np.all(averaged.x >= trajectory.min(axis=0) - 1e-12) and np.all(averaged.x <= trajectory.max(axis=0) + 1e-12)
    assert problem.true(averaged.x) <= 1.05 * problem.f_min
    with pytest.raises(gd.InputError, match="average"):
        SPSA(average=1.5)


def test_the_perturbations_of_one_step_are_distinct_directions():
    # drawn independently, 4 directions in 3-D (4 up to sign) repeated one another: 2 evaluations
    # of the same two points for nothing
    import jax

    from gdtools.estimators.spsa import _distinct_up_to_sign

    for seed in range(20):
        d = SPSA(n_perturbations=4).directions(jax.random.PRNGKey(seed), 3)
        canonical = {tuple(row * row[0]) for row in d}
        assert len(canonical) == 4 and set(np.unique(d)) <= {-1.0, 1.0}
    too_many = np.ones((3, 2))  # 3 rows, 2 directions up to sign: left as drawn
    assert _distinct_up_to_sign(too_many.copy(), jax.random.PRNGKey(0)).tolist() == too_many.tolist()
    seen = []
    fun = lambda x: seen.append(tuple(np.asarray(x, float))) or float(np.sum((np.asarray(x) - 1) ** 2))  # noqa: E731
    gd.minimize(fun, np.zeros(3), gradient=SPSA(n_perturbations=4), max_evals=202)
    assert len(seen) == len(set(seen))


def test_iterate_averaging_holds_with_an_optimizer_of_ones_own():
    # average= was read only where the engine made its default optimizer: with optimizer="adam"
    # the result was the last iterate, the option silently ignored
    problem = NoisyQuadratic()
    plain = gd.minimize(problem, np.zeros(10), gradient=SPSA(), optimizer="adam", max_evals=400, seed=0)
    averaged = gd.minimize(problem, np.zeros(10), gradient=SPSA(average=0.5), optimizer="adam", max_evals=400,
                           seed=0)
    assert [r["loss"] for r in plain.history.iterations[:-1]] == [r["loss"] for r in averaged.history.iterations[:-1]]
    assert not np.array_equal(plain.x, averaged.x)
    trajectory = averaged.history.x[-100:]
    assert np.all(averaged.x >= trajectory.min(axis=0) - 1e-12) and np.all(averaged.x <= trajectory.max(axis=0) + 1e-12)


def test_iterate_averaging_holds_for_a_start_on_a_jax_device():
    # a JAX-array x0 (device mode of the host loop) turned average= off without a word
    import jax
    import jax.numpy as jnp

    def fun(x, key):
        return float(np.sum((np.asarray(x) - 1.0) ** 2) + 0.5 * jax.random.normal(key))

    plain = gd.minimize(fun, jnp.zeros(3), gradient=SPSA(), max_evals=200, seed=0)
    averaged = gd.minimize(fun, jnp.zeros(3), gradient=SPSA(average=0.5), max_evals=200, seed=0)
    on_host = gd.minimize(fun, np.zeros(3), gradient=SPSA(average=0.5), max_evals=200, seed=0)
    assert not np.allclose(np.asarray(plain.x), np.asarray(averaged.x))
    np.testing.assert_allclose(np.asarray(averaged.x), on_host.x, rtol=1e-5)


def test_iterate_averaging_with_only_a_time_budget_is_refused():
    # with max_time alone the window began past 10**9 iterations: averaging silently off
    fun = lambda x: float(np.sum((np.asarray(x) - 1.0) ** 2))  # noqa: E731
    with pytest.raises(gd.InputError, match="average=0.5 .* max_time alone"):
        gd.minimize(fun, np.zeros(3), gradient=SPSA(average=0.5), max_time=1.0)
    res = gd.minimize(fun, np.zeros(3), gradient=SPSA(average=0.5), max_time=30.0, max_evals=40)
    assert res.status == "max_evals"
