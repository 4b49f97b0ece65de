"""Forward and central finite differences, with scipy's step rule and a noise-aware one.

Steps are set per coordinate. Without noise they follow scipy's ``approx_derivative``::

    forward:  h_i = eps**(1/2) * max(1, |x_i|)
    central:  h_i = eps**(1/3) * max(1, |x_i|)

with ``eps`` the machine epsilon of float64, or of float32 when the objective returns float32 values
(a ``jax.numpy`` objective without ``jax_enable_x64``), whose differences a float64 step would lose
to rounding. When the objective is noisy (noise level ``e_f``,
given or measured from repeats) such steps would difference pure noise, so the step follows
Moré & Wild (2011), *Estimating derivatives of noisy simulations*::

    forward:  h = 2 * sqrt(e_f / |f''|)        central:  h = (3 * e_f / |f'''|)**(1/3)

with the unknown derivatives modelled as ``|f''| ~ |f| / s**2`` and ``|f'''| ~ |f| / s**3`` for
the typical scale ``s`` of a coordinate, i.e. ``h_i = s_i * 2 * sqrt(e_r)`` and
``h_i = s_i * (3 * e_r)**(1/3)`` with ``e_r = e_f / max(|f|, e_f)`` the relative noise, at most
``MAX_NOISY_STEP * s_i``. The larger of the two rules is used. Steps are at least ``min_step`` (integer parameters must move by one unit),
and stay inside bounds: a forward probe that would leave the box is taken backwards, a central
pair is shortened to fit (to half its step at most); where it still does not fit, an exact
objective whose value at x is known gets scipy's one-sided three-point formula, and otherwise the
pair slides inside.
"""

from __future__ import annotations

import numpy as np

from gdtools.estimators.base import Estimate, GradientEstimator
from gdtools.errors import InputError

EPS = np.finfo(np.float64).eps
#: The most memory the probe points of one gradient may take (they are measured as one batch).
MAX_PROBE_BYTES = 2 * 1024 ** 3


def _check_step(step):
    if step is None:
        return step
    try:
        steps = np.asarray(step, dtype=float)
    except (TypeError, ValueError):  # a string, a None among numbers, a dict
        steps = np.array(np.nan)
    if not (np.all(steps > 0) and np.all(np.isfinite(steps))):
        raise InputError(f"step must be positive and finite, got {step!r}")
    return step


#: Largest noise-aware step, as a fraction of each coordinate's scale: the cap of SPSA's noise-aware
#: perturbation too. Uncapped, the rule's steps grow to the whole scale and beyond as the relative
#: noise nears 1 (a third of it at 1% noise, for central differences), and a pair then measures the
#: spread of the objective over its range rather than a slope.
MAX_NOISY_STEP = 0.2


class _FiniteDifference(GradientEstimator):
    order: int = 1

    def __init__(self, *, step=None):
        self.step = _check_step(step)
        self._last_value = None
        self._known = None  # (x, f(x)) from observe_at
        self._eps = EPS

    def observe_precision(self, eps: float) -> None:
        self._eps = max(EPS, float(eps))

    def observe(self, value) -> None:
        self._last_value = float(value)

    def observe_at(self, x, value) -> None:
        value = float(value)
        self._known = (np.array(x, dtype=float), value) if np.isfinite(value) else None

    def _known_value(self, x):
        """f(x) if the engine told it (:meth:`observe_at`) for this very x, else None."""
        if self._known is not None and self._known[0].shape == x.shape and np.array_equal(self._known[0], x):
            return self._known[1]
        return None

    @staticmethod
    def _measured_again_where_failed(points, values, evaluate) -> tuple[np.ndarray, int]:
        """``(values, extra evaluations)``: the probes that failed (nan: a run that crashed now and
        then) measured once more through the engine's ``evaluate.again`` (as far as the budget
        allows), the others kept. Without this one failed probe spoiled the whole gradient, and the
        engine measured all n + 1 or 2n probes again at the next iteration. A probe that fails again
        stays nan (beyond the edge of the objective's domain, say): the engine then probes closer."""
        failed = np.flatnonzero(~np.isfinite(values))
        again = getattr(evaluate, "again", None)
        if not failed.size or again is None:  # (an evaluate of one's own: no second try)
            return values, 0
        measured = np.asarray(again(points[failed]), dtype=float)
        values = np.array(values, dtype=float)
        values[failed[:len(measured)]] = measured
        return values, len(measured)

    def check_size(self, n: int) -> None:
        """InputError when a given step does not fit n coordinates, or when one gradient's probe
        points would not fit in memory (2n or n + 1 points of n numbers: 160 GB at n = 100,000)."""
        if self.step is not None:
            self.steps(np.zeros(n))  # a step per coordinate must have one per coordinate
        points = self.evaluations(n)
        size = 8 * points * n
        if size > MAX_PROBE_BYTES:
            raise InputError(f"{self.name} differences on {n} parameters measure {points} points of {n} "
                             f"numbers for each gradient ({size / 1024 ** 3:.0f} GiB at once); use "
                             f"gradient='spsa' or 'smoothing' (2 evaluations a step whatever n), or "
                             f"fewer parameters")

    def steps(self, x, *, f0=None, noise=0.0, scale=None, min_step=None) -> np.ndarray:
        """The per-coordinate steps this estimator would use at ``x``."""
        x = np.asarray(x, dtype=float)
        if self.step is not None:
            try:
                h = np.broadcast_to(np.asarray(self.step, dtype=float), x.shape).copy()
            except ValueError:
                raise InputError(f"step has shape {np.shape(self.step)}, but x has {x.size} coordinates: "
                                 f"give one step, or one per coordinate") from None
        else:
            power = 1.0 / (self.order + 1)
            h = self._eps ** power * np.maximum(1.0, np.abs(x))
            if noise > 0:
                s = np.ones_like(x) if scale is None else np.asarray(scale, dtype=float)
                level = abs(float(f0)) if f0 is not None and np.isfinite(f0) else 0.0
                rel = noise / max(level, noise)
                noisy = s * np.minimum(2.0 * np.sqrt(rel) if self.order == 1 else (3.0 * rel) ** (1.0 / 3.0),
                                       MAX_NOISY_STEP)
                h = np.maximum(h, noisy)
        if min_step is not None:
            h = np.maximum(h, min_step)
        if self.step is not None:
            lost = np.flatnonzero(x + h == x)
            if lost.size:
                # the probe would be x itself: a gradient of 0 there, 'converged' wherever x is
                i = int(lost[0])
                raise InputError(f"step {h[i]:.3g} is lost in the rounding of x[{i}] = {x[i]:.6g}, whose float64 "
                                 f"spacing is {np.spacing(abs(x[i])):.3g} (x + step == x at {lost.size} of "
                                 f"{x.size} coordinates): give larger steps, or the default step=None")
        return h


class Forward(_FiniteDifference):
    """Forward differences: ``g_i = (f(x + h_i e_i) - f(x)) / h_i``; n + 1 evaluations, error O(h);
    n where the engine already measured f(x) of an exact objective (see :meth:`observe_at`).

    Args:
      step: a fixed step (scalar or per coordinate); default: the rules in the module docstring.
    """

    name = "forward"
    order = 1

    def evaluations(self, n: int) -> int:
        return n + 1

    def estimate(self, fun, x, *, key, iteration, evaluate, noise=0.0, scale=None, bounds=None,
                 min_step=None) -> Estimate:
        x = np.asarray(x, dtype=float)
        self.check_size(len(x))
        h = self.steps(x, f0=self._last_value, noise=noise, scale=scale, min_step=min_step)
        if bounds is not None:
            lo, hi = bounds
            h = np.where(x + h > hi, -h, h)
            # a step longer than the room on either side (a given step wider than the box): as far
            # as the box allows on its roomier side, not backwards out of it (-0.75 in [0, 0.5])
            h = np.where(x + h < lo, np.where(hi - x >= x - lo, hi - x, lo - x), h)
        # f(x) of an exact objective is not measured again where the engine already did (the
        # start, a line search's accepted point): n evaluations a gradient instead of n + 1
        known = self._known_value(x) if noise == 0 else None
        points = x + np.diag(h) if known is not None else np.vstack([x, x + np.diag(h)])
        values, again = self._measured_again_where_failed(points, evaluate(points), evaluate)
        if known is not None:
            values = np.concatenate([[known], values])
        f0 = values[0]
        self._last_value = f0
        grad = (values[1:] - f0) / h
        other = self._other_side_of_ties(x, h, f0, values[1:], min_step, bounds, evaluate)
        if other is not None:
            tied, lower = other
            grad[tied] = np.where(np.isfinite(lower), (values[1:][tied] - lower) / (2 * h[tied]), grad[tied])
            again += len(lower)
        return Estimate(value=f0, grad=grad, nfev=len(points) + again)

    @staticmethod
    def _other_side_of_ties(x, h, f0, probed, min_step, bounds, evaluate):
        """``(coordinates, values)`` of the probes on the other side of x, ``x - h_i e_i``, of the
        integer parameters (those with a ``min_step``) whose probe measured exactly f(x); None where
        there is none. Their difference of 0 said nothing of the slope: a coarse printed number
        the same at n = 4 and 6 (|n - 5| + 1) 'converged' at n = 4 after 2 evaluations, though
        n = 5 is lower. The central difference of the two sides tells (and where the other side
        measured no lower either, 0 stays, as central differences' own rule for an integer).
        Measured through ``evaluate.again``, as far as the budget allows."""
        again = getattr(evaluate, "again", None)
        if min_step is None or again is None or not np.isfinite(f0):
            return None
        outside = np.zeros(len(x), dtype=bool)
        if bounds is not None:
            outside = (x - h < bounds[0]) | (x - h > bounds[1])
        tied = np.flatnonzero((np.asarray(min_step) > 0) & (probed == f0) & ~outside)
        if not tied.size:
            return None
        points = np.tile(x, (tied.size, 1))
        points[np.arange(tied.size), tied] -= h[tied]
        lower = np.asarray(again(points), dtype=float)
        return tied[:len(lower)], lower


class Central(_FiniteDifference):
    """Central differences: ``g_i = (f(x + h_i e_i) - f(x - h_i e_i)) / (2 h_i)``; 2n evaluations, error O(h²).

    Against a bound, where even a pair shortened to half its step does not fit, an exact objective
    whose value at x the engine already measured (the start, a line search's accepted point; see
    :meth:`observe_at`) gets scipy's one-sided three-point formula
    ``g_i = s (-3 f(x) + 4 f(x + s h_i e_i) - f(x + 2 s h_i e_i)) / (2 h_i)`` (``s`` the side with
    room), still O(h²) and no extra evaluation; otherwise the pair slides inside the box (first
    order; on a noisy objective the formula would also multiply the noise by 3.6).

    Over a Space the engine also gives ``estimate`` ``neighbours(x, upper, lower)``: per
    coordinate, whether the probes are an integer's neighbours one unit either side. Where both
    measured no lower than a known f(x), the integer is at a minimum along its axis: its component is 0.

    Args:
      step: a fixed step (scalar or per coordinate); default: the rules in the module docstring.
    """

    name = "central"
    order = 2

    def evaluations(self, n: int) -> int:
        return 2 * n

    def estimate(self, fun, x, *, key, iteration, evaluate, noise=0.0, scale=None, bounds=None,
                 min_step=None, neighbours=None) -> Estimate:
        x = np.asarray(x, dtype=float)
        n = len(x)
        self.check_size(n)
        h = self.steps(x, f0=self._last_value, noise=noise, scale=scale, min_step=min_step)
        one_sided = np.zeros(n, dtype=bool)
        f0 = self._known_value(x) if noise == 0 else None
        if bounds is not None:
            # Near a bound the pair is shortened to stay centred on x, down to half its step (the
            # noise-aware step is as short as the noise allows). Where even that does not fit, the
            # one-sided three-point formula when f(x) is known (its step shortened to fit the box,
            # down to the same half), else the pair slides inside the box. A slid pair measures the
            # slope at its own midpoint, not at x (first order; on the 10-d Rosenbrock in [-2, 0.5]
            # central differences took 88 iterations and 1943 evaluations that way, 22 and 528
            # with the formula, as forward differences' 22), and sliding a whole noise-aware step (a
            # third of the range and more on a noisy objective) measured it so far away that runs
            # went on past the minimum into the bound.
            lo, hi = bounds
            room = np.minimum(x - lo, hi - x)
            # (an integer's unit less the hair min_step adds for safety: a probe one unit from x
            # still reaches its neighbour on the bound. The hair made the pair that fits exactly,
            # n = 1 of Int(0, 10), 'not fit': it went one-sided to 2 and 3, whose formula pointed
            # away from n = 0 and 1, and n = 1 at its minimum along n kept a wrong-signed slope.)
            shortest = 0.5 * h if min_step is None else np.maximum(0.5 * h, min_step * (1.0 - 1e-6))
            side = np.where(hi - x >= x - lo, 1.0, -1.0)
            if f0 is not None:
                h3 = np.minimum(h, 0.5 * np.where(side > 0, hi - x, x - lo))
                one_sided = (room < shortest) & (h3 >= shortest)
                h = np.where(one_sided, h3, h)
            h = np.where(one_sided, h, np.maximum(np.minimum(h, room), shortest))
        upper, lower = x + h, x - h
        if one_sided.any():
            upper = np.where(one_sided, x + side * h, upper)
            lower = np.where(one_sided, x + 2 * side * h, lower)
        if bounds is not None:
            lower = np.where(upper > hi, np.maximum(hi - 2 * h, lo), lower)
            upper = np.where(upper > hi, hi, upper)
            upper = np.where(lower < lo, np.minimum(lo + 2 * h, hi), upper)
            lower = np.where(lower < lo, lo, lower)
        plus_points = np.tile(x, (n, 1))
        minus_points = plus_points.copy()
        np.fill_diagonal(plus_points, upper)
        np.fill_diagonal(minus_points, lower)
        points = np.vstack([plus_points, minus_points])
        values, again = self._measured_again_where_failed(points, evaluate(points), evaluate)
        plus, minus = values[:n], values[n:]
        grad = (plus - minus) / (upper - lower)
        if one_sided.any():
            # (the other coordinates' steps in the formula: 1, not a pair's upper point, which is x
            # itself for a coordinate held at its upper bound, a division by 0 warned of)
            step = np.where(one_sided, upper - x, 1.0)
            grad = np.where(one_sided, (-3.0 * f0 + 4.0 * plus - minus) / step / 2.0, grad)
        if f0 is not None and neighbours is not None:
            # An integer coordinate whose neighbours a unit either side both measured no lower than
            # f(x) is at a minimum along its own axis: its difference is the curvature over a unit
            # seen from one side, not a direction to move in. Left in, it dominated the step: every
            # trial moved the integer to a worse neighbour until the steps were so short that it
            # rounded back, and the real coordinates crept (n = 3, x stuck at 0.74 for 40
            # evaluations, the minimum at x = -0.15). Such a coordinate's component is 0. Only
            # where the probes are its neighbours: on a log scale the pair that reaches 2 from 3
            # reaches 5 above, and 4 may be lower than both.
            centred = np.isclose(upper - x, x - lower, rtol=1e-9, atol=0.0)
            at_minimum = (np.asarray(neighbours(x, upper, lower), dtype=bool) & centred & ~one_sided
                          & (plus >= f0) & (minus >= f0))
            grad = np.where(at_minimum, 0.0, grad)
        # f(x) where the engine knows it; else the probes' mean, off by about h**2 f''/2 (float32
        # central steps, 5e-3: 0.0097 against f(x) = 6e-5 on Rosenbrock), which the history
        # recorded as the iteration's loss
        value = f0 if f0 is not None else float(np.mean(values))
        self._last_value = value
        return Estimate(value=value, grad=grad, nfev=2 * n + again)
