"""Exact gradients of a JAX-traceable objective by reverse-mode autodiff (``jax.value_and_grad``)."""

from __future__ import annotations

import jax

from gdtools.bound_args import BoundArgs, kept_on
from gdtools.estimators.base import Estimate, GradientEstimator


#: The attribute under which a function keeps its compiled value-and-gradient.
VALUE_AND_GRAD = "_gdtools_value_and_grad"


class AutoDiff(GradientEstimator):
    """``jax.value_and_grad`` of the objective, compiled once per objective.

    Costs one evaluation (a forward and a backward pass) per step. The objective must be a JAX
    program: ``jnp`` operations, no conversion to NumPy or Python floats inside.
    """

    name = "autodiff"
    traceable = True
    pure = True  # (a host callback inside the objective, jax.debug.print say, may run once more at a stop)

    def __init__(self):
        self._fun = None
        self._value_and_grad = None

    def value_and_grad(self, fun):
        """The compiled ``x -> (value, grad)`` of ``fun``, kept on ``fun`` itself where it can hold
        attributes (so a later run of the same objective, with a new estimator, compiles nothing),
        and on this estimator for the last ``fun`` seen."""
        if fun is not self._fun:
            if isinstance(fun, BoundArgs):  # the args are inputs of the program, kept on fun_flat
                with_args = kept_on(fun.fun_flat, VALUE_AND_GRAD, lambda: jax.jit(jax.value_and_grad(fun.fun_flat)))
                compiled = BoundArgs(with_args, fun.args)
            else:
                compiled = kept_on(fun, VALUE_AND_GRAD, lambda: jax.jit(jax.value_and_grad(fun)))
            self._fun, self._value_and_grad = fun, compiled
        return self._value_and_grad

    def estimate(self, fun, x, *, key, iteration, evaluate, noise=0.0, scale=None, bounds=None,
                 min_step=None) -> Estimate:
        value, grad = self.value_and_grad(fun)(x)
        return Estimate(value=value, grad=grad, nfev=1)
