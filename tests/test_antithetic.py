"""What SPSA and smoothing share (estimators/antithetic.py): the acceptance on a noisy quadratic,
settings validation and bounded probes."""

import numpy as np
import pytest

import gdtools as gd
from gdtools.estimators import SPSA, Smoothing
from gdtools.estimators.antithetic import noise_aware_fraction
from problems import NoisyQuadratic


@pytest.mark.parametrize("gradient", ["spsa", "smoothing"])
@pytest.mark.parametrize("seed", [0, 1])
def test_reaches_5_percent_of_optimum_on_noisy_quadratic_in_2000_evals(gradient, seed):
    problem = NoisyQuadratic()
    res = gd.minimize(problem, np.zeros(10), gradient=gradient, max_evals=2000, seed=seed)
    assert res.nfev <= 2000
    assert problem.true(res.x) <= 1.05 * problem.f_min, problem.true(res.x)


@pytest.mark.parametrize("cls", [SPSA, Smoothing])
def test_probes_stay_inside_the_bounds(cls):
    seen = []

    def fun(x):
        seen.append(np.array(x))
        return float(np.sum((np.asarray(x) - 0.9) ** 2))

    gd.minimize(fun, np.full(3, 0.95), gradient=cls(), bounds=(0.0, 1.0), max_evals=60)
    pts = np.array(seen)
    assert np.all(pts >= 0.0) and np.all(pts <= 1.0)


def test_noise_aware_size_grows_with_relative_noise_within_its_clip():
    assert noise_aware_fraction(0.0, 10.0) == 0.05
    small, large = noise_aware_fraction(1e-4, 10.0), noise_aware_fraction(0.1, 10.0)
    assert 0.05 <= small < large <= 0.2
    assert noise_aware_fraction(100.0, 1.0) == 0.2


@pytest.mark.parametrize("cls", [SPSA, Smoothing])
@pytest.mark.parametrize("gamma", [float("nan"), -0.5, "0.1", None])
def test_a_bad_decay_exponent_is_refused(cls, gamma):
    # unchecked, nan made every probe nan (the run 'failed' with 3 failed evaluations of a healthy
    # objective), a negative one made the perturbations grow, and a string a TypeError mid-run
    with pytest.raises(gd.InputError, match="gamma"):
        cls(gamma=gamma)


@pytest.mark.parametrize("cls, count_name", [(SPSA, "n_perturbations"), (Smoothing, "n_samples")])
def test_numpy_numbers_are_numbers_for_the_count_and_the_averaged_fraction(cls, count_name):
    # np.int64(2) was refused as "must be a positive integer, got np.int64(2)", np.float32(0.5) as
    # no fraction in [0, 1): the settings of a sweep computed with NumPy
    est = cls(**{count_name: np.int64(2)}, average=np.float32(0.5))
    assert est.evaluations(5) == 4 and est.describe()[count_name] == 2 and est.average == 0.5
    with pytest.raises(gd.InputError, match=count_name):
        cls(**{count_name: True})


@pytest.mark.parametrize("cls, size_name", [(gd.estimators.SPSA, "c"), (gd.estimators.Smoothing, "sigma")])
def test_a_perturbation_lost_in_the_rounding_of_x_is_refused(cls, size_name):
    # c=1e-17 at x = 1e6: every difference 0, and the run sat at x0 for its budget saying success
    with pytest.raises(gd.InputError, match=f"lost in the rounding of x = 1e\\+06: give a larger {size_name}"):
        gd.minimize(lambda x: float(np.sum((x - 1.0) ** 2)), np.full(3, 1e6), gradient=cls(**{size_name: 1e-17}),
                    max_evals=50)


@pytest.mark.parametrize("cls, count_name", [(SPSA, "n_perturbations"), (Smoothing, "n_samples")])
def test_the_loss_of_an_estimate_whose_probe_failed_is_no_lone_probes_value(cls, count_name):
    # one probe of the pair failed (nan): the estimate's value, the iteration's recorded loss (the
    # mean of the probes around x), was the other probe's value, f(x + c d) or f(x - c d), a slope's
    # worth off f(x) either way: a tuning run's curve jumped, and its best so far claimed a value
    # no iterate had (the gradient, nan, moved nothing)
    import jax

    def measured(*values):
        return lambda points: np.array(values[:len(points)], dtype=float)

    key = jax.random.PRNGKey(0)
    x = np.zeros(2)
    one = {count_name: 1}
    lone = cls(**one).estimate(None, x, key=key, iteration=1, evaluate=measured(np.nan, -0.4))
    assert np.isnan(lone.value)
    pairs = cls(**{count_name: 2}).estimate(None, x, key=key, iteration=1,
                                            evaluate=measured(1.0, np.nan, 3.0, 5.0))  # plus, plus, minus, minus
    assert pairs.value == 2.0  # the pair that was measured whole, (1 + 3) / 2
    whole = cls(**one).estimate(None, x, key=key, iteration=1, evaluate=measured(1.0, 3.0))
    assert whole.value == 2.0


@pytest.mark.parametrize("cls, count_name, size_name", [(SPSA, "n_perturbations", "c"),
                                                        (Smoothing, "n_samples", "sigma")])
def test_a_failed_probe_spoils_its_own_pair_only(cls, count_name, size_name):
    # one probe of the step's 6 failed (a program that crashes now and then): the whole gradient was
    # nan, the iteration 'had a failed probe, so no gradient', and smoothing (4 pairs a step) at a 10%
    # failure rate stopped after 3 such estimates in a row in every run; the pairs measured whole
    # still give an estimate, as they give the loss
    import jax

    key, x, h = jax.random.PRNGKey(0), np.array([0.3, -0.2, 0.5]), 0.1
    slope = np.array([1.0, -2.0, 3.0])
    settings = {count_name: 3, size_name: h, "gamma": 0.0}
    d = cls(**settings).directions(key, 3)

    def one_failed(points):
        values = points @ slope
        values[1] = np.nan  # the second pair's plus probe
        return values

    est = cls(**settings).estimate(None, x, key=key, iteration=1, evaluate=one_failed)
    diff = 2 * h * (d @ slope)  # f(x + h d) - f(x - h d) of the linear function
    each = diff[:, None] / (2 * h * d) if cls is SPSA else diff[:, None] * d / (2 * h)
    assert np.allclose(est.grad, each[[0, 2]].mean(axis=0))
    assert est.value == pytest.approx(x @ slope)

    def every_pair_failed(points):
        values = points @ slope
        values[:3] = np.nan
        return values

    assert np.all(np.isnan(cls(**settings).estimate(None, x, key=key, iteration=1, evaluate=every_pair_failed).grad))


@pytest.mark.parametrize("cls", [SPSA, Smoothing])
def test_an_estimator_that_ran_resumes_its_run(cls, tmp_path):
    # the run's state kept on the estimator (its last probes, the pairs a bound moved) was recorded
    # as settings: the same SPSA() object given to resume=True after an interrupted run was refused,
    # 'another gradient estimator (last_probes: recorded, not given; moved_by_bounds: given, not
    # recorded)'
    estimator, path = cls(), tmp_path / "run.jsonl"
    settings = estimator.describe()
    calls = []

    def interrupted(x):
        calls.append(1)
        if len(calls) > 9:
            raise KeyboardInterrupt
        return float(np.sum((np.asarray(x) - 1.0) ** 2))

    with pytest.raises(KeyboardInterrupt):
        gd.minimize(interrupted, np.zeros(2), gradient=estimator, max_evals=30, history=path)
    assert estimator.describe() == settings
    res = gd.minimize(lambda x: float(np.sum((np.asarray(x) - 1.0) ** 2)), np.zeros(2), gradient=estimator,
                      max_evals=30, history=path, resume=True)
    assert res.nfev <= 30


def _keys_of_each_estimate(cls, count_name, count):
    """The keys a fun(x, key) got for each estimate's 2 * count probes (plus rows, then minus rows)."""
    import jax

    seen = []

    def fun(x, key):
        seen.append(tuple(np.asarray(jax.random.key_data(key)).ravel().tolist()))
        return float(np.sum((np.asarray(x) - 1.0) ** 2) + 0.01 * jax.random.normal(key))

    res = gd.minimize(fun, np.zeros(3), gradient=cls(**{count_name: count}), max_evals=5 + 4 * 2 * count, seed=0)
    probes = seen[1 + 3:-1]  # (after the start and the noise measured at x0, before the final measurement)
    assert res.nfev == len(seen) and len(probes) == 4 * 2 * count
    return [probes[i:i + 2 * count] for i in range(0, len(probes), 2 * count)]


@pytest.mark.parametrize("cls, count_name", [(SPSA, "n_perturbations"), (Smoothing, "n_samples")])
def test_each_pair_of_a_step_has_a_key_of_its_own_shared_by_its_two_probes(cls, count_name):
    # every probe of a step got the step's key: a fun(x, key) that fails for some keys (a scenario
    # its simulator crashes on) lost all of smoothing's 4 pairs together, not the failing pair, and
    # SPSA(n_perturbations=k) averaged k pairs that all saw the same draw of a fun(x, key)'s noise
    for keys in _keys_of_each_estimate(cls, count_name, 4):
        assert keys[:4] == keys[4:]  # the two probes of a pair: common random numbers
        assert len(set(keys[:4])) == 4  # the pairs: independent draws
    single = _keys_of_each_estimate(cls, count_name, 1)  # one pair: the step's key, as before
    assert all(len(set(keys)) == 1 for keys in single) and len({keys[0] for keys in single}) == len(single)


def test_smoothing_on_a_fun_x_key_that_fails_for_some_keys_drops_only_the_failing_pairs():
    import jax

    def fun(x, key):
        if jax.random.uniform(jax.random.fold_in(key, 7)) < 0.3:
            raise RuntimeError("the simulator crashed in this scenario")
        return float(np.sum((np.asarray(x) - 1.0) ** 2) + 0.01 * jax.random.normal(key))

    res = gd.minimize(fun, np.zeros(3), gradient="smoothing", max_evals=400, max_failures=1000, seed=0)
    spoilt = np.mean(~np.isfinite(res.history.loss[1:]))  # the iterations with no pair measured whole
    assert spoilt < 0.05, spoilt  # (0.3 of them, each key failing all 4 pairs at once)
    assert np.max(np.abs(res.x - 1.0)) < 0.2
