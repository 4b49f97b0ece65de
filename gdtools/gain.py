"""The default step rule of black-box runs: Spall's decaying gain on normalised estimates.

:func:`calibrated_gain` builds the optax transformation; :func:`curvature_limited_first_step`
shrinks its first step on objectives whose curvature along the first probes says that a step of
the default size would climb out of the valley (a stiff function such as Rosenbrock's).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gdtools.transforms import scale_by_array, spall_gain

#: Fraction of each coordinate's scale that the first step of a decaying-gain run moves.
FIRST_STEP = 0.15
#: The smallest first step the curvature rule may choose, as a fraction of ``FIRST_STEP``.
MIN_FIRST_STEP_FRACTION = 0.05
ALPHA = 0.602
#: Adam's moment decay rates for the normalised decaying-gain runs (short momentum, long variance).
B1, B2 = 0.5, 0.999
#: The curvature a first step may climb, as a fraction of |f(x0)| (see curvature_limited_first_step).
CURVATURE_RISE = 0.1
#: No single step moves a coordinate by more than this many first steps (a guard against divergence).
MAX_STEP = 2.0


def calibrated_gain(scale, *, iterations: int, noisy: bool = True,
                    first_step: float = FIRST_STEP) -> optax.GradientTransformation:
    """Spall's decaying gain on Adam-normalised gradient estimates, in units of each coordinate's scale.

    ``x_{k+1} = x_k - a_k * s * m_k / sqrt(v_k)`` with bias-corrected moments (``b1 = 0.5``,
    ``b2 = 0.999``) and ``a_k = a / (k + 1 + A)**0.602``, ``A = 10%`` of the iterations the budget
    allows (Spall 1998, "Implementation of the simultaneous perturbation algorithm"). The
    normalisation calibrates the gain from the gradient estimates themselves: ``a`` is chosen so
    the first step moves each coordinate by ``first_step * s`` (default ``FIRST_STEP``), whatever
    the gradient's magnitude, and a plain ``a * g`` step's sensitivity to one unlucky first estimate
    (the usual SPSA divergence) is gone. With a noisy objective ``v`` is Adam's moving average;
    without noise it is AMSGrad's running maximum, so that steps keep shrinking with the gradient
    instead of growing back as it vanishes. Steps are clipped to ``MAX_STEP * first_step * s`` per
    coordinate.
    """
    s = np.ascontiguousarray(scale, dtype=float)
    return _calibrated_gain(s.tobytes(), s.shape, int(iterations), bool(noisy), float(first_step),
                            bool(jax.config.jax_enable_x64))


@functools.lru_cache(maxsize=32)
def _calibrated_gain(scale: bytes, shape: tuple, iterations: int, noisy: bool, first_step: float,
                     x64: bool) -> optax.GradientTransformation:
    """One transformation object per setting, so that its compiled update (kept per object, see
    host_loop._jitted_descent) serves every run with those settings: built anew for each call, it
    was compiled anew, 0.2 s of a 0.25 s SPSA run on a cheap objective. ``x64``: the precision it is
    traced in (a device run in float32 and a host run in float64 get one each: JAX reused the
    lowering of its clipping constant across the two and failed to verify the program)."""
    s = np.frombuffer(scale, dtype=float).reshape(shape)
    A = max(1.0, 0.1 * iterations)
    a = first_step * (A + 1.0) ** ALPHA
    limit = MAX_STEP * first_step * s
    clip = optax.GradientTransformation(
        lambda params: optax.EmptyState(),
        lambda updates, state, params=None: (jnp.clip(updates, -limit, limit), state))
    moments = (optax.scale_by_adam if noisy else optax.scale_by_amsgrad)(b1=B1, b2=B2)
    return optax.chain(moments, scale_by_array(s), optax.scale_by_learning_rate(spall_gain(a, A=A, alpha=ALPHA)),
                       clip)


def curvature_limited_first_step(*, f0: float, f0_samples: int, size: float, plus, minus,
                                 noise: float) -> float:
    """The first step (fraction of the scale), shrunk where the first probes show strong curvature.

    For noisy objectives whose noise is measured or given (``noise`` > 0: the standard deviation of
    one evaluation); otherwise the default stands. The first estimate's probes sit at
    ``x0 ± size * s * d`` with ``d`` of entries about ±1, so the mean over its pairs of
    ``f(+) + f(-) - 2 f(x0)`` is about ``size² κ``, the curvature ``κ = dᵀHd`` per unit step of
    every coordinate (in units of the scale). A normalised first step moves every coordinate by
    ``t``, which curvature alone raises the objective by about ``t² κ / 2``. The first step is the
    ``t`` at which that rise is ``CURVATURE_RISE * |f(x0)|``, kept within
    ``[MIN_FIRST_STEP_FRACTION, 1] * FIRST_STEP``; ``κ`` is first lowered by two standard deviations
    of its noise (``f0`` is the mean of ``f0_samples`` evaluations at x0). Where the curvature is
    not clearly positive (flat, concave or lost in the noise) the default stands. (A slope-based rule,
    ``t = |g|₁ / κ``, was tried first: with probes as wide as a noisy objective needs, the
    third-order terms of a stiff function swamp the slope.)

    Limitation: the allowed rise is measured against ``|f(x0)|``, so adding a constant to the
    objective changes the step: an objective offset far above its minimum keeps the default, one
    whose value at x0 is near zero (while its minimum is below) gets the smallest step.

    On the noisy 10-d Rosenbrock of ``benchmarks/noisy_blackbox.py`` the default step of 0.15
    climbs the valley's walls; this rule picks about 0.03 there, and leaves the first steps on the
    noisy sphere and the ill-conditioned quadratic at the default.
    """
    plus, minus = np.asarray(plus, dtype=float), np.asarray(minus, dtype=float)
    if not (size > 0 and math.isfinite(f0) and plus.size and np.all(np.isfinite(plus))
            and np.all(np.isfinite(minus))):
        return FIRST_STEP
    if not (math.isfinite(noise) and noise > 0):
        return FIRST_STEP  # noise unknown (or none): the rule is for measured, noisy objectives
    kappa = float(np.mean(plus + minus - 2.0 * f0)) / size ** 2
    # The two probes of a pair share a key (common random numbers), so their noise may be one
    # and the same draw: the sum f(+) + f(-) then carries twice one evaluation's noise, not sqrt(2).
    kappa_sd = noise * math.sqrt(4.0 + 4.0 / max(f0_samples, 1)) / size ** 2
    kappa_low = kappa - 2.0 * kappa_sd
    if not kappa_low > 0:
        return FIRST_STEP
    step = math.sqrt(2.0 * CURVATURE_RISE * abs(f0) / kappa_low)
    return float(np.clip(step, MIN_FIRST_STEP_FRACTION * FIRST_STEP, FIRST_STEP))
