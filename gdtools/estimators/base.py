"""The one small interface every gradient estimator implements.

An estimator turns an objective into a gradient at a point. The engine hands it

* ``fun``: the objective on a flat parameter vector (``x -> scalar``), for estimators that call or
  differentiate it directly (autodiff); given to traceable estimators only (``traceable = True``): a
  black-box estimator measures with ``evaluate``, and calling ``fun`` there raises InputError;
* ``evaluate``: a function that measures a batch of flat points, ``evaluate(points) -> values``
  with ``points`` of shape ``(m, n)``, through the executor, with repeats and common random numbers,
  recording each evaluation in the history. Black-box estimators ask for all their probes at once so
  that they can run in parallel. The engine's ``evaluate`` also has ``grouped(points, groups)``, which
  gives each group of rows a key of its own (SPSA's and smoothing's pairs).

and gets back an :class:`Estimate`. Write a new estimator by subclassing :class:`GradientEstimator`.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, Callable

import numpy as np


@dataclasses.dataclass(frozen=True)
class Estimate:
    """What an estimator returns for one point.

    Attributes:
      value: the best available estimate of ``fun(x)`` (exact for autodiff and forward differences,
        the mean of the probes for symmetric schemes); ``nan`` if the scheme gives none.
      grad: the gradient estimate, a flat array shaped like ``x``.
      nfev: how many objective evaluations the estimate cost (repeats not counted).
    """

    value: Any
    grad: Any
    nfev: int


Evaluate = Callable[[np.ndarray], np.ndarray]

#: The most numbers of a setting per coordinate that :meth:`GradientEstimator.describe` records.
MAX_DESCRIBED_NUMBERS = 10_000


class GradientEstimator(abc.ABC):
    """Base class: ``estimate(fun, x, *, key, iteration, evaluate, noise, scale) -> Estimate``.

    Attributes:
      name: short label used in histories and plots.
      stochastic: True when the estimate is random even for a deterministic objective (SPSA,
        smoothing); the engine then defaults to a decaying-gain optimizer instead of a line search.
      traceable: True when ``estimate`` can run inside ``jax.jit`` on a traceable objective.
      uses_fun: False for an estimator that differentiates an objective of its own and never calls
        the ``fun`` it is given (DeepDream's tiled one); the engine then skips tracing ``fun`` to
        check that it returns a scalar, which for a whole network costs a trace per run.
      pure: True when ``estimate`` only computes (no counters, files or host callbacks): on a
        device the engine may then make the next estimate before it has read this one back, and
        discard it if the run stops.
    """

    name: str = "estimator"
    stochastic: bool = False
    traceable: bool = False
    uses_fun: bool = True
    pure: bool = False

    @abc.abstractmethod
    def estimate(
        self,
        fun: Callable,
        x,
        *,
        key,
        iteration: int,
        evaluate: Evaluate,
        noise: float = 0.0,
        scale=None,
        bounds=None,
    ) -> Estimate:
        """Estimate the gradient of ``fun`` at the flat point ``x``.

        Args:
          fun: objective on flat vectors (traceable estimators only; see the module docstring).
          x: flat point, a NumPy array (host engine) or a JAX array (compiled engine, device mode).
          key: a JAX PRNG key for this iteration; use it for every random choice.
          iteration: the iteration number, from 0, for gain schedules.
          evaluate: batch evaluator of flat points (see module docstring).
          noise: the current estimate of the objective's noise level (standard deviation of one
            evaluation, in the objective's units); 0 for a deterministic objective.
          scale: flat array, the typical size of a move per coordinate (from bounds or ``x0``).
          bounds: ``(lo, hi)`` flat arrays or ``None``; probes should stay inside them.
        """

    def evaluations(self, n: int) -> int:
        """Evaluations one estimate in ``n`` dimensions will cost, as far as known before making it
        (the engine keeps ``max_evals`` with it before the first estimate has told). Default 1."""
        return 1

    def observe_precision(self, eps: float) -> None:
        """Learn the machine epsilon of the objective's values (float32's when it computes in
        float32); finite differences size their steps by it. The default ignores it."""

    def observe(self, value) -> None:
        """Learn the objective's level from a value measured by the engine (e.g. at ``x0``).

        Noise-aware step rules compare the noise level with ``|f|``; the default does nothing.
        ``nan`` at the start of a run whose start failed: nothing is known of the level (not what
        an earlier run of the same estimator object told it).
        """

    def observe_at(self, x, value) -> None:
        """Learn ``f(x) = value`` of a deterministic objective, measured by the engine at ``x`` (the
        start, a line search's accepted point). Central differences use it against a bound; the
        default does nothing."""

    def describe(self) -> dict:
        """Settings of this estimator, as recorded in histories."""
        fields = {}
        for k, v in vars(self).items():
            if k.startswith("_"):
                continue
            if isinstance(v, (np.integer, np.floating)):
                v = v.item()
            elif isinstance(v, (list, tuple, np.ndarray)):
                # a setting per coordinate (Central(step=[0.1, 0.2])): recorded as numbers, so that
                # the history says which steps ran and a resume with others is refused
                try:
                    numbers = np.asarray(v)
                except (TypeError, ValueError):
                    continue
                if numbers.dtype.kind not in "iuf" or numbers.size > MAX_DESCRIBED_NUMBERS:
                    continue
                v = numbers.tolist()
            if isinstance(v, (int, float, str, bool, list)) or v is None:
                fields[k] = v
        return {"name": self.name, **fields}
