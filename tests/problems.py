"""Test problems shared by the test files: smooth, noisy, pytree-shaped."""

import jax
import jax.numpy as jnp
import numpy as np


def rosenbrock(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def bowl(x):
    """A JAX quadratic with minimum 0 at x = 1."""
    return jnp.sum(jnp.arange(1.0, x.size + 1.0) * (x - 1.0) ** 2)


class NumpyQuadratic:
    """f(x) = 0.5 (x - c)' A (x - c) + f_min in plain NumPy float64, with its exact gradient."""

    def __init__(self, n=5, f_min=0.0, seed=0):
        rng = np.random.default_rng(seed)
        q, _ = np.linalg.qr(rng.normal(size=(n, n)))
        self.A = q @ np.diag(np.linspace(1.0, 10.0, n)) @ q.T
        self.c = rng.normal(size=n)
        self.f_min = f_min
        self.calls = 0

    def __call__(self, x):
        self.calls += 1
        d = np.asarray(x, dtype=float) - self.c
        return float(0.5 * d @ self.A @ d + self.f_min)

    def grad(self, x):
        return self.A @ (np.asarray(x, dtype=float) - self.c)


class NoisyQuadratic:
    """10-d separable quadratic, optimum value 10, with 1% multiplicative noise: fun(x, key)."""

    f_min = 10.0

    def __init__(self, n=10):
        self.c = np.linspace(-1.0, 1.0, n)
        self.d = np.linspace(1.0, 5.0, n)

    def true(self, x):
        return float(self.f_min + np.sum(self.d * (np.asarray(x, dtype=float) - self.c) ** 2))

    def __call__(self, x, key):
        return self.true(x) * (1.0 + 0.01 * float(jax.random.normal(key)))


def smooth_1d_family(a, b):
    """exp(a x) + sin(b x), its first derivative and its 2nd and 3rd derivatives, for order tests."""
    f = lambda x: float(np.exp(a * x[0]) + np.sin(b * x[0]))
    df = lambda x: a * np.exp(a * x) + b * np.cos(b * x)
    d2 = lambda x: a**2 * np.exp(a * x) - b**2 * np.sin(b * x)
    d3 = lambda x: a**3 * np.exp(a * x) - b**3 * np.cos(b * x)
    return f, df, d2, d3
