"""Simultaneous perturbation stochastic approximation (Spall, 1992, 1998).

Each perturbation costs two evaluations whatever the dimension::

    delta ~ Rademacher(±1)^n,   c_k = c / (k + 1)**gamma,   h = c_k * s * delta
    g_hat = (f(x + h) - f(x - h)) / (2 h)            (element-wise division)

averaged over ``n_perturbations`` independent deltas. ``s`` is the per-coordinate scale (bounds
width or ``max(1, |x0|)``). Both points of a pair get the same PRNG key, so a stochastic objective
sees common random numbers. The default ``c`` follows the noise-aware central-difference rule,
``c = clip((3 * e_r)**(1/3), 0.05, 0.2)`` with ``e_r`` the relative noise level, and probes move
integer parameters by at least one unit. The gain ``a_k = a / (k + 1 + A)**0.602`` lives in the
optimizer (``gdtools.host_loop.calibrated_gain``), applied to Adam-normalised estimates.
"""

from __future__ import annotations

import jax
import numpy as np

from gdtools.estimators.base import Estimate, GradientEstimator
from gdtools.errors import InputError

GAMMA = 0.101


def noise_aware_fraction(noise: float, value, *, low: float = 0.05, high: float = 0.2) -> float:
    """Perturbation size as a fraction of the scale, from the relative noise level."""
    level = abs(float(value)) if value is not None and np.isfinite(value) else 0.0
    if noise <= 0:
        return low
    rel = noise / max(level, noise)
    return float(np.clip((3.0 * rel) ** (1.0 / 3.0), low, high))



def _check_fraction(average):
    if not (isinstance(average, (int, float)) and 0.0 <= average < 1.0):
        raise InputError(f"average must be a fraction in [0, 1), got {average!r}")
    return float(average)


class SPSA(GradientEstimator):
    """SPSA gradient estimate: 2 evaluations per perturbation, any dimension.

    Args:
      c: perturbation size as a fraction of each coordinate's scale; default noise-aware (above).
      n_perturbations: independent perturbations averaged per step (2 evaluations each).
      gamma: decay exponent of c_k (Spall's 0.101).
      average: recommend the mean of this last fraction of the iterates (Polyak-Ruppert averaging)
        instead of the last iterate; 0 turns it off. Off by default: on the noisy quadratics of the
        tests and benchmarks, the default steps already shrink fast enough that averaging iterates
        which were still converging made the recommendation worse.
    """

    name = "spsa"
    stochastic = True

    def __init__(self, *, c=None, n_perturbations: int = 1, gamma: float = GAMMA, average: float = 0.0):
        if c is not None and not (np.isfinite(c) and c > 0):
            raise InputError(f"c must be a positive number, got {c!r}")
        if not isinstance(n_perturbations, int) or n_perturbations < 1:
            raise InputError(f"n_perturbations must be a positive integer, got {n_perturbations!r}")
        self.c = c
        self.n_perturbations = n_perturbations
        self.gamma = gamma
        self.average = _check_fraction(average)
        self._last_value = None

    def perturbation_size(self, iteration, noise):
        c = self.c if self.c is not None else noise_aware_fraction(noise, self._last_value)
        return c / (iteration + 1) ** self.gamma

    def directions(self, key, n):
        """``n_perturbations`` Rademacher vectors, shape (m, n)."""
        return np.asarray(jax.random.rademacher(key, (self.n_perturbations, n), dtype=np.float32),
                          dtype=float)

    def observe(self, value) -> None:
        self._last_value = float(value)

    def estimate(self, fun, x, *, key, iteration, evaluate, noise=0.0, scale=None, bounds=None,
                 min_step=None) -> Estimate:
        x = np.asarray(x, dtype=float)
        s = np.ones_like(x) if scale is None else np.asarray(scale, dtype=float)
        h = self.perturbation_size(iteration, noise) * s
        if min_step is not None:
            h = np.maximum(h, min_step)
        delta = self.directions(key, len(x))
        plus, minus = x + h * delta, x - h * delta
        if bounds is not None:
            plus, minus = np.clip(plus, *bounds), np.clip(minus, *bounds)
        values = evaluate(np.vstack([plus, minus]))
        m = self.n_perturbations
        diff = values[:m] - values[m:]
        width = plus - minus
        safe = np.where(width != 0, width, np.inf)
        grad = np.mean(diff[:, None] / safe, axis=0)
        value = float(np.mean(values[np.isfinite(values)])) if np.any(np.isfinite(values)) else np.nan
        self._last_value = value
        return Estimate(value=value, grad=grad, nfev=2 * m)
