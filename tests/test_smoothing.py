import jax
import numpy as np
import pytest

import gdtools as gd
from gdtools.estimators import Smoothing


def test_smoothing_estimate_of_a_quadratic_is_its_gradient_on_average():
    c = np.array([0.5, -1.0, 2.0])
    f = lambda x: float(np.sum((x - c) ** 2))
    evaluate = lambda pts: np.array([f(p) for p in pts])
    grads = [Smoothing(sigma=0.1, n_samples=8).estimate(f, np.zeros(3), key=jax.random.PRNGKey(i),
                                                         iteration=0, evaluate=evaluate).grad
             for i in range(200)]
    np.testing.assert_allclose(np.mean(grads, axis=0), -2 * c, atol=0.35)


def test_smoothing_settings_are_validated():
    with pytest.raises(gd.InputError, match="n_samples"):
        Smoothing(n_samples=0)


def test_a_pair_clipped_by_a_bound_is_divided_by_its_own_span():
    # divided by the full radius, the mean estimate of a unit slope at a bound was 0.5 (the clipped
    # pair spans half of 2 h u); SPSA, which divides by the real width, gave 1 (helper-53's review)
    def f(x):
        return float(np.sum(x))

    def evaluate(points):
        return np.array([f(p) for p in points])

    lower, upper = np.zeros(3), np.ones(3)
    for x in (np.full(3, 0.5), np.zeros(3), np.ones(3)):
        grads = [Smoothing(sigma=0.1).estimate(f, x, key=jax.random.PRNGKey(i), iteration=0, evaluate=evaluate,
                                               scale=np.ones(3), bounds=(lower, upper)).grad for i in range(300)]
        np.testing.assert_allclose(np.mean(grads, axis=0), 1.0, atol=0.15)
