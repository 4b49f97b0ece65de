"""Central differences next to a bound: the 10-d Rosenbrock in the box [-2, 0.5], a NumPy black box.

    python examples/bounded_rosenbrock.py

The minimum in the box lies on its upper face. A central pair that does not fit inside the box is
replaced by scipy's one-sided three-point formula where f(x) is already known (no extra
evaluation). Prints gdtools' iterations and evaluations beside scipy's L-BFGS-B with its own
``3-point`` finite differences, from the same start.
"""

import numpy as np
import scipy.optimize

import gdtools as gd

N, LOWER, UPPER = 10, -2.0, 0.5


def rosenbrock(x):
    x = np.asarray(x, dtype=float)
    return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2))


x0 = np.zeros(N)
res = gd.minimize(rosenbrock, x0, gradient="central", bounds=(LOWER, UPPER))
ref = scipy.optimize.minimize(rosenbrock, x0, method="L-BFGS-B", jac="3-point", bounds=[(LOWER, UPPER)] * N)
print(f"gdtools central:        status={res.status} nit={res.nit} nfev={res.nfev} f={res.fun:.6g}")
print(f"scipy L-BFGS-B 3-point: success={ref.success} nit={ref.nit} nfev={ref.nfev} f={ref.fun:.6g}")
