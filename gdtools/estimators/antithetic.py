"""What SPSA and Gaussian smoothing share: antithetic pairs ``x ± h·d`` along random directions.

A subclass draws the directions (Rademacher for SPSA, Gaussian for smoothing) and turns the pair
differences into a gradient; this base class validates the settings, sizes the perturbation
(``h = size_k · s``, at least ``min_step``, with ``size_k = size / (k + 1)**gamma`` and a noise-aware
default size), keeps the probes inside the bounds and measures all pairs as one batch, each pair
with a PRNG key of its own that its two points share (common random numbers).
"""

from __future__ import annotations

import abc

import numpy as np

from gdtools.errors import InputError
from gdtools.estimators.base import Estimate, GradientEstimator

#: Spall's decay exponent of the perturbation size.
GAMMA = 0.101


def noise_aware_fraction(noise: float, value, *, low: float = 0.05, high: float = 0.2) -> float:
    """Perturbation size as a fraction of the scale, from the relative noise level.

    ``clip((3 e_r)**(1/3), low, high)`` with ``e_r = noise / max(|f|, noise)``: the central-difference
    rule of Moré & Wild with ``|f'''| ~ |f| / s**3`` (see ``finite_difference``).
    """
    level = abs(float(value)) if value is not None and np.isfinite(value) else 0.0
    if noise <= 0:
        return low
    rel = noise / max(level, noise)
    return float(np.clip((3.0 * rel) ** (1.0 / 3.0), low, high))


class AntitheticEstimator(GradientEstimator):
    """Base of the estimators that measure ``count`` antithetic pairs per step.

    Args:
      size: perturbation size as a fraction of each coordinate's scale (None: noise-aware).
      count: pairs per step (2 evaluations each).
      gamma: decay exponent of the size.
      average: recommend the mean of this last fraction of the iterates (Polyak-Ruppert averaging)
        instead of the last iterate; 0 turns it off.
      size_name, count_name: the subclass's names for ``size`` and ``count``, used in messages.
    """

    stochastic = True

    def __init__(self, *, size, count, gamma, average, size_name, count_name):
        if size is not None and not (isinstance(size, (int, float, np.integer, np.floating))
                                     and not isinstance(size, bool) and np.isfinite(size) and size > 0):
            raise InputError(f"{size_name} must be a positive number (a fraction of each coordinate's "
                             f"scale, one for all coordinates), got {size!r}")
        if not isinstance(count, (int, np.integer)) or isinstance(count, bool) or count < 1:
            raise InputError(f"{count_name} must be a positive integer, got {count!r}")
        if not (isinstance(gamma, (int, float, np.integer, np.floating)) and not isinstance(gamma, bool)
                and np.isfinite(gamma) and gamma >= 0):
            raise InputError(f"gamma must be a non-negative number (the decay exponent of {size_name}_k; "
                             f"0 keeps it constant), got {gamma!r}")
        if not (isinstance(average, (int, float, np.integer, np.floating)) and 0.0 <= average < 1.0):
            raise InputError(f"average must be a fraction in [0, 1), got {average!r}")
        self.gamma = float(gamma)
        self.average = float(average)
        self._size, self._count = size, int(count)
        self._size_name = size_name
        self._last_value = None
        self.last_probes = None

    def observe(self, value) -> None:
        self._last_value = float(value)

    def describe(self) -> dict:
        """The settings, as a fresh estimator describes them: the state a run leaves on it (its last
        probes, the pairs a bound moved) is no setting. Recorded as one, the same object given to
        resume=True after an interrupted run was refused as 'another gradient estimator'.
        (``last_probes`` stays None, as histories have always recorded it, so that they resume.)"""
        fields = super().describe()
        fields.pop("moved_by_bounds", None)
        if "last_probes" in vars(self):
            fields["last_probes"] = None
        return fields

    def evaluations(self, n: int) -> int:
        return 2 * self._count

    def perturbation_size(self, iteration, noise) -> float:
        """``size_k`` as a fraction of the scale at this iteration."""
        size = self._size if self._size is not None else noise_aware_fraction(noise, self._last_value)
        return size / (iteration + 1) ** self.gamma

    @abc.abstractmethod
    def directions(self, key, n) -> np.ndarray:
        """``count`` random directions, shape ``(count, n)``."""

    @abc.abstractmethod
    def combine(self, diff, plus, minus, directions, h) -> np.ndarray:
        """The gradient from the pair differences ``f(plus) - f(minus)``."""

    def estimate(self, fun, x, *, key, iteration, evaluate, noise=0.0, scale=None, bounds=None,
                 min_step=None) -> Estimate:
        x = np.asarray(x, dtype=float)
        s = np.ones_like(x) if scale is None else np.asarray(scale, dtype=float)
        size = self.perturbation_size(iteration, noise)
        h = size * s
        if min_step is not None:
            h = np.maximum(h, min_step)
        d = self.directions(key, len(x))
        plus, minus = x + h * d, x - h * d
        lost = (x + h == x) | (x - h == x)  # (the size itself: a Gaussian draw near 0 is no fault)
        if np.any(lost):
            # a perturbation lost in the rounding of x: every difference 0, a zero gradient, and a
            # run that sat at x0 for its whole budget and reported success (c=1e-17 at x = 1e6)
            i = int(np.argmax(lost))
            raise InputError(f"{self.name}'s perturbation at coordinate {i} ({h[i]:.3g}, {self._size_name}_k = "
                             f"{size:.3g} of its scale {s[i]:.3g}) is lost in the rounding of x = {x[i]:.6g}: "
                             f"give a larger {self._size_name}")
        # Even probes: no integer step widened h and no bound moved a probe.
        symmetric = min_step is None or bool(np.all(h == size * s))
        #: where a bound moved a probe of a pair, (count, n) booleans, or None (see Smoothing.combine)
        self.moved_by_bounds = None
        if bounds is not None:
            clipped_plus, clipped_minus = np.clip(plus, *bounds), np.clip(minus, *bounds)
            self.moved_by_bounds = (clipped_plus != plus) | (clipped_minus != minus)
            symmetric = symmetric and np.array_equal(clipped_plus, plus) and np.array_equal(clipped_minus, minus)
            plus, minus = clipped_plus, clipped_minus
        m = self._count
        # Each pair gets a key of its own (the engine's evaluate.grouped): with the step's key for all,
        # a fun(x, key) that fails for some keys lost all of a step's pairs at once (smoothing's 4),
        # and k pairs averaged one draw of the noise it takes from its key, not k
        grouped = getattr(evaluate, "grouped", None)
        probes = np.vstack([plus, minus])
        values = grouped(probes, np.tile(np.arange(m), 2)) if grouped is not None and m > 1 else evaluate(probes)
        # A failed probe spoils its own pair only: the pairs measured whole give the estimate (one
        # probe of smoothing's 8 failing made the whole gradient nan, 'no gradient' for the step, and
        # at a 10% failure rate three such steps in a row ended every run); none whole: nan, a
        # spoilt estimate, as before
        whole = np.isfinite(values[:m]) & np.isfinite(values[m:])
        use = whole if whole.any() else np.ones(m, dtype=bool)
        moved = self.moved_by_bounds
        if moved is not None:
            self.moved_by_bounds = moved[use]
        grad = self.combine((values[:m] - values[m:])[use], plus[use], minus[use], d[use], h)
        self.moved_by_bounds = moved
        # The probes' values, for calibrations that read the curvature from them (gdtools.gain);
        # None when bounds or integer steps made the probes uneven.
        self.last_probes = (dict(size=size, plus=values[:m], minus=values[m:]) if symmetric else None)
        finite = values[np.isfinite(values)]
        # the objective's size, for the next perturbation (noise_aware_fraction): any probe tells it
        self._last_value = float(np.mean(finite)) if finite.size else np.nan
        # The loss at x: the mean of the pairs measured whole. A lone probe of a pair whose other
        # failed is f(x + h d) or f(x - h d), a slope's worth off f(x) (and with no pair whole the
        # gradient, nan, moves nothing): as the iteration's loss, a jump of the curve and a best so
        # far no iterate had.
        value = float(np.mean((values[:m][whole] + values[m:][whole]) / 2.0)) if whole.any() else np.nan
        return Estimate(value=value, grad=grad, nfev=2 * m)
