"""What ``minimize`` returns, and why a run stopped, in words a user can act on."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from gdtools.history import History

#: Why a run ended: (success, message). ``{...}`` fields are filled in by the engine.
STOP_REASONS = {
    "converged": (True, "Converged: the gradient's largest component fell below tol={tol}."),
    "no_progress": (True, "Stopped: the last steps did not change x, with the gradient's largest "
                          "component at {largest}, at the precision the run resolves (tol={tol} is "
                          "below it); the optimizer can make no further progress."),
    "max_iters": (False, "The maximum number of iterations (max_iters={max_iters}) was reached; "
                         "increase max_iters if the loss was still falling."),
    "max_evals": (True, "The evaluation budget (max_evals={max_evals}) was spent."),
    "max_time": (True, "The time budget (max_time={max_time} s) was spent."),
    "callback": (True, "Stopped by the callback."),
    "nonfinite": (False, "The objective or its gradient became non-finite (nan or inf) at iteration "
                         "{iteration}; the last finite point is returned. Lower the step size or "
                         "add bounds."),
    "failed": (False, "Stopped after failed evaluations: {detail}. Everything measured so far is in "
                      "the history."),
    "too_small": (False, "The evaluation budget (max_evals={max_evals}) is too small for one step: it "
                         "needs {detail} evaluations (the start, the first step's gradient estimate and the "
                         "final measurement). x0 is returned, as measured."),
    "worse": (False, "The run ended worse than it started: {detail}. Its steps were too large for "
                     "this problem, or the objective is noisier than the engine knew (give its noise "
                     "level, noise=, or measure repeats; fewer parameters, a smaller perturbation or "
                     "more evaluations help too); the best point measured is returned."),
}


#: A run that stops moving succeeded when the gradient's largest component has fallen to this
#: fraction of its value at the start, or eps**(1/3) of a float32 problem's (a float32 gradient
#: resolves little more): see :func:`stalled_outcome`.
STALL_REDUCTION = 1e-3


#: A finite-difference run that stopped moving (no_progress), found short of its minimum by a
#: check at its point (minimize's _check_exact_at_stall, _check_forward_stall): no success, whatever
#: the gradient's size. The two numbers are the values the check measured.
STALL_FAILURES = {
    "two_values": ("Stopped: the last steps did not change x, but the objective gave two values there "
                   "({0:.10g}, then {1:.10g}): it is noisy, and finite differences with steps sized for an "
                   "exact objective measured its noise, not its slope. Tell the engine: write it fun(x, key), "
                   "return a gdtools.Measurement with repeats, or give noise= (its standard deviation); or use "
                   "gradient='spsa'. The last point is returned."),
    "central_step": ("Stopped: forward differences made no further progress, but a step along a "
                     "central-difference gradient still lowered f from {0:.10g} to {1:.10g}: their error "
                     "(h |f''| / 2) hid the slope, and the run stopped short of the minimum. "
                     "gradient='central' goes on from here (the lowered point is returned)."),
}


def stop_message(reason: str, **fields) -> tuple[bool, str]:
    success, template = STOP_REASONS[reason]
    return success, template.format_map(_Defaulting(fields))


def stalled_outcome(*, largest: float, largest_at_start: float, tol: float, dtype,
                    space: bool = False) -> tuple[bool, str]:
    """``(success, message)`` of a run that stopped moving (``no_progress``).

    A success when the gradient's largest component is at most ``max(tol, r * g0)``, ``g0`` its
    value at the start and ``r`` :data:`STALL_REDUCTION` (``eps**(1/3)``, 4.9e-3, for float32):
    the run got where the objective's rounding or the gradient estimate's error stops a line
    search, which for a float32 objective or finite differences of a large value lies far above
    ``tol``'s default. With the gradient still larger, no step along the optimizer's direction
    lowered the objective where it should have: a failure, as scipy's L-BFGS-B reports a line
    search that finds no lower point. The rule is relative, as a gradient's accuracy is: a run
    that never moved fails whatever the gradient's size (with an absolute part, a wrong gradient
    of a small objective passed). Over a space (integers, rounding) the point stops where the
    rounded point no longer changes: a success.
    """
    if space:
        return True, "Stopped: the rounded point no longer changes; the optimizer can make no further progress."
    start = largest_at_start if math.isfinite(largest_at_start) else largest
    fraction = max(STALL_REDUCTION, float(np.finfo(dtype).eps) ** (1.0 / 3.0))
    if largest <= max(tol, fraction * start):
        return stop_message("no_progress", largest=f"{largest:.3g}", tol=tol)
    return False, (f"Stopped: the last steps did not change x, but the gradient's largest component is "
                   f"still {largest:.3g} ({start:.3g} at the start, tol={tol}): no step along the "
                   f"optimizer's direction lowered the objective. The gradient may be inaccurate there "
                   f"(finite differences of a noisy or coarsely rounded objective, such as one computed "
                   f"in low precision) or wrong, or the objective non-smooth; the last point is returned.")


class _Defaulting(dict):
    def __missing__(self, key):
        return "?"


@dataclasses.dataclass
class Result:
    """The outcome of :func:`gdtools.minimize`, in scipy.optimize's vocabulary.

    Attributes:
      x: the solution, with the structure of ``x0`` (a dict in user units when a space was given).
        For a black box whose final point could not be measured, or whose run ended worse than
        it started, the best point measured (possibly a probe), with ``fun`` its value there.
      fun: the objective at ``x`` (measured again at the end for black-box runs). A custom
        estimator that measures nothing through the engine (DeepDream's tiled one) is not asked
        again: ``fun`` is then the best value it reported during the run.
      nit: iterations (optimizer updates) performed.
      nfev: objective evaluations spent (for autodiff: value-and-gradient evaluations, a line
        search's trial points included; repeats not counted).
      success: whether the run ended for a reason that counts as success (see ``message``).
      message: why it ended.
      status: a short code for the reason (``"converged"``, ``"max_iters"``, ...).
      grad: the last gradient estimate, shaped like ``x`` (None where not available); with a space,
        a dict of the slope along each parameter's unit-cube coordinate (the optimiser's).
      history: every iteration (and, for black-box runs, every evaluation).
    """

    x: Any
    fun: float
    nit: int
    nfev: int
    success: bool
    message: str
    status: str
    history: History
    grad: Any = None

    def __repr__(self) -> str:
        return (f"Result(success={self.success}, status={self.status!r}, fun={self.fun!r}, "
                f"nit={self.nit}, nfev={self.nfev},\n       message={self.message!r},\n       x={self.x!r})")


@dataclasses.dataclass
class State:
    """What a ``callback(state)`` sees after each iteration; return True to stop the run.

    ``grad_norm`` is the gradient's largest component, projected onto the bounds when there are
    some (``|clip(x - g) - x|``, zero at a minimum on a bound), as in the history and ``tol``.
    ``x``, ``fun`` and ``grad_norm`` are the iteration's point (before its step), as in its history
    record; ``nfev`` counts every evaluation so far, the step's line-search trials included, so it
    may exceed the record's ``nfev``, which counts those made before the step.
    """

    iteration: int
    x: Any
    fun: float
    grad_norm: float
    nfev: int
    elapsed: float
    history: History
