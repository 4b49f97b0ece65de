"""The README's example: a JAX objective by autodiff, and a NumPy black box by SPSA.

    python examples/quickstart.py
"""

import jax.numpy as jnp
import numpy as np

import gdtools as gd


def rosenbrock(x):  # a JAX program: minimised by autodiff, compiled end to end
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


res = gd.minimize(rosenbrock, jnp.zeros(10))
print(f"autodiff: status={res.status} nit={res.nit} nfev={res.nfev} max|x-1|={float(jnp.max(jnp.abs(res.x - 1))):.1e}")


def black_box(x, key):  # any Python code; 1% multiplicative noise drawn from the key
    import jax

    value = 10.0 + np.sum((np.asarray(x) - 0.5) ** 2)
    return value * (1.0 + 0.01 * float(jax.random.normal(key)))


res = gd.minimize(black_box, np.zeros(10), gradient="spsa", max_evals=2000, seed=0)
print(f"spsa:     status={res.status} nfev={res.nfev} f(x)={10 + np.sum((res.x - 0.5) ** 2):.4f} (optimum 10)")
