import math

import jax
import numpy as np
import pytest

import gdtools as gd
from gdtools import gain
from gdtools.gain import FIRST_STEP, MIN_FIRST_STEP_FRACTION, curvature_limited_first_step


def _probes(f, x0, size, d):
    return dict(f0=f(x0), f0_samples=1, size=size, plus=[f(x0 + size * d)], minus=[f(x0 - size * d)],
                noise=1e-6)


def test_a_stiff_quadratic_shrinks_the_first_step_to_the_allowed_rise():
    d = np.ones(4)
    f = lambda x: 1.0 + 500.0 * float(np.sum((x - 0.05) ** 2))  # kappa = d.Hd = 1000 * 4, near the bottom
    step = curvature_limited_first_step(**_probes(f, np.zeros(4), 0.2, d))
    assert step == pytest.approx(math.sqrt(2 * gain.CURVATURE_RISE * f(np.zeros(4)) / 4000.0), rel=1e-6)
    assert MIN_FIRST_STEP_FRACTION * FIRST_STEP <= step < FIRST_STEP


def test_mild_flat_or_concave_curvature_keeps_the_default():
    d = np.array([1.0, -1.0, 1.0])
    for f in (lambda x: float(np.sum((x - 1.0) ** 2)),   # mild: the default step is already small
              lambda x: float(np.sum(x)),                # flat
              lambda x: -float(np.sum(x ** 2)) + 5.0):   # concave
        assert curvature_limited_first_step(**_probes(f, np.zeros(3), 0.2, d)) == FIRST_STEP


def test_curvature_lost_in_the_noise_keeps_the_default():
    d = np.ones(4)
    f = lambda x: 1.0 + 500.0 * float(np.sum((x - 0.05) ** 2))
    probes = _probes(f, np.zeros(4), 0.2, d)
    rise = probes["plus"][0] + probes["minus"][0] - 2 * probes["f0"]
    probes["noise"] = rise  # one evaluation's noise as large as the whole second difference
    assert curvature_limited_first_step(**probes) == FIRST_STEP


def test_unknown_noise_keeps_the_default():
    # The rule is for noisy objectives whose noise was measured; without it, the default stands.
    d = np.ones(4)
    f = lambda x: 1.0 + 500.0 * float(np.sum((x - 0.05) ** 2))
    probes = _probes(f, np.zeros(4), 0.2, d)
    assert curvature_limited_first_step(**probes) < FIRST_STEP
    for unknown in (0.0, math.nan):
        probes["noise"] = unknown
        assert curvature_limited_first_step(**probes) == FIRST_STEP


def test_nonfinite_probes_keep_the_default():
    d = np.ones(2)
    probes = _probes(lambda x: float(np.sum(x ** 2)), np.zeros(2), 0.2, d)
    probes["plus"] = [math.nan]
    assert curvature_limited_first_step(**probes) == FIRST_STEP


def test_spsa_on_a_noisy_stiff_valley_takes_small_first_steps_and_makes_progress():
    rng = np.random.default_rng(0)

    def rosenbrock(x):
        return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2))

    res = gd.minimize(lambda x, key: rosenbrock(np.asarray(x)) + 0.1 * rng.standard_normal(), np.zeros(6),
                      gradient="spsa", max_evals=400, seed=0)
    steps = np.abs(np.diff(np.asarray(res.history.x[:3]), axis=0))
    assert steps.max() < 0.5 * FIRST_STEP  # the default 0.15 would climb the valley's walls
    assert rosenbrock(np.asarray(res.x)) < rosenbrock(np.zeros(6))


def test_probes_that_bounds_made_uneven_are_not_offered_for_calibration():
    est = gd.estimators.SPSA()
    evaluate = lambda pts: np.sum(pts ** 2, axis=1)
    key = jax.random.PRNGKey(0)
    est.estimate(None, np.zeros(3), key=key, iteration=0, evaluate=evaluate)
    assert est.last_probes is not None and est.last_probes["size"] > 0
    est.estimate(None, np.zeros(3), key=key, iteration=0, evaluate=evaluate,
                 bounds=(np.zeros(3), np.ones(3)))
    assert est.last_probes is None


def test_a_second_spsa_run_with_the_same_settings_compiles_nothing():
    # the gain was a new transformation each call, so its update was compiled again: 0.2 s a run
    from gdtools import compile_time

    fun = lambda x: float(np.sum((np.asarray(x) - 1.0) ** 2))  # noqa: E731
    gd.minimize(fun, np.zeros(5), gradient="spsa", max_evals=100)
    before = compile_time.stages()
    gd.minimize(lambda x: fun(x) + 1.0, np.zeros(5), gradient="spsa", max_evals=100, seed=3)
    assert compile_time.stages() == before
    assert gain.calibrated_gain(np.ones(3), iterations=50) is gain.calibrated_gain(np.ones(3), iterations=50)
    assert gain.calibrated_gain(np.ones(3), iterations=50) is not gain.calibrated_gain(np.ones(3), iterations=51)
