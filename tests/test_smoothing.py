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
