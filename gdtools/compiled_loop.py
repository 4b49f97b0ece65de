"""The whole optimisation of a traceable objective as one XLA program (``lax.while_loop``).

Used by ``minimize(gradient="autodiff")`` when the objective is a JAX program and nothing needs the
host between steps (no callback, executor or time budget). Each iteration: optax update, projection
onto the bounds, ``value_and_grad`` at the new point (reused from a line search's state when the
optimizer keeps it), stopping tests, and one row of the history written in place.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gdtools.transforms import needs_value_fn

RUNNING, CONVERGED, MAX_ITERS, NONFINITE, NO_PROGRESS = range(5)
CODES = {CONVERGED: "converged", MAX_ITERS: "max_iters", NONFINITE: "nonfinite",
         NO_PROGRESS: "no_progress"}

#: Above this many numbers (iterations x parameters) the trajectory x is not recorded.
MAX_TRAJECTORY = 4_000_000


class Trace(NamedTuple):
    """Outputs of a compiled run (leading batch axis when vmapped)."""

    x: jax.Array
    fun: jax.Array
    grad: jax.Array
    nit: jax.Array
    nfev: jax.Array
    status: jax.Array
    loss: jax.Array        # (max_iters + 1,)
    grad_norm: jax.Array   # (max_iters + 1,)
    evals: jax.Array       # (max_iters + 1,)
    xs: jax.Array          # (max_iters + 1, n) or (0, n)


def _keeps_value_and_grad(optimizer, x0) -> bool:
    """Whether the optimizer's state carries the value and gradient at the new point (L-BFGS)."""
    state = jax.eval_shape(optimizer.init, x0)
    return (optax.tree_utils.tree_get(state, "value") is not None
            and optax.tree_utils.tree_get(state, "grad") is not None)


def make_solver(fun: Callable, optimizer, *, n: int, max_iters: int, tol: float, lower, upper,
                record_x: bool) -> Callable:
    """Build ``solve(x0) -> Trace`` for flat ``x0`` of length ``n``; jit or vmap it as needed."""
    value_and_grad = jax.value_and_grad(fun)
    extra = needs_value_fn(optimizer)
    bounded = lower is not None

    def solve(x0):
        from_state = (extra and not bounded
                      and _keeps_value_and_grad(optimizer, x0))
        f0, g0 = value_and_grad(x0)
        rows = max_iters + 1
        loss = jnp.full((rows,), jnp.nan, f0.dtype).at[0].set(f0)
        gnorm = jnp.full((rows,), jnp.nan, f0.dtype).at[0].set(jnp.max(jnp.abs(g0)))
        evals = jnp.zeros((rows,), jnp.int32).at[0].set(1)
        xs = jnp.zeros((rows if record_x else 0, n), x0.dtype)
        if record_x:
            xs = xs.at[0].set(x0)
        first_status = jnp.where(jnp.isfinite(f0) & jnp.all(jnp.isfinite(g0)),
                                 jnp.where(jnp.max(jnp.abs(g0)) <= tol, CONVERGED, RUNNING), NONFINITE)
        carry = (jnp.int32(0), x0, optimizer.init(x0), f0, g0, jnp.int32(1), first_status,
                 loss, gnorm, evals, xs)

        def cond(carry):
            k, status = carry[0], carry[6]
            return (status == RUNNING) & (k < max_iters)

        def body(carry):
            k, x, state, f, g, nfev, status, loss, gnorm, evals, xs = carry
            if extra:
                updates, new_state = optimizer.update(g, state, x, value=f, grad=g, value_fn=fun)
            else:
                updates, new_state = optimizer.update(g, state, x)
            new_x = optax.apply_updates(x, updates)
            if bounded:
                new_x = jnp.clip(new_x, lower, upper)
            if from_state:
                new_f, new_g = optax.value_and_grad_from_state(fun)(new_x, state=new_state)
                steps = optax.tree_utils.tree_get(new_state, "num_linesearch_steps", 0)
            else:
                new_f, new_g = value_and_grad(new_x)
                steps = optax.tree_utils.tree_get(new_state, "num_linesearch_steps", 0)
            new_nfev = nfev + 1 + jnp.asarray(steps, jnp.int32)
            finite = jnp.isfinite(new_f) & jnp.all(jnp.isfinite(new_g))
            new_gnorm = jnp.max(jnp.abs(new_g))
            moved = jnp.any(new_x != x)
            new_status = jnp.where(~finite, NONFINITE,
                                   jnp.where(new_gnorm <= tol, CONVERGED,
                                             jnp.where(moved, RUNNING, NO_PROGRESS)))
            keep = finite
            k1 = k + 1
            x_out = jnp.where(keep, new_x, x)
            loss = loss.at[k1].set(jnp.where(keep, new_f, jnp.nan))
            gnorm = gnorm.at[k1].set(jnp.where(keep, new_gnorm, jnp.nan))
            evals = evals.at[k1].set(new_nfev)
            if record_x:
                xs = xs.at[k1].set(x_out)
            new_status = jnp.where((new_status == RUNNING) & (k1 >= max_iters), MAX_ITERS, new_status)
            return (k1, x_out, jax.tree_util.tree_map(lambda a, b: jnp.where(keep, a, b), new_state, state),
                    jnp.where(keep, new_f, f), jnp.where(keep, new_g, g), new_nfev, new_status,
                    loss, gnorm, evals, xs)

        k, x, _, f, g, nfev, status, loss, gnorm, evals, xs = jax.lax.while_loop(cond, body, carry)
        status = jnp.where((status == RUNNING), MAX_ITERS, status)
        return Trace(x=x, fun=f, grad=g, nit=k, nfev=nfev, status=status, loss=loss, grad_norm=gnorm,
                     evals=evals, xs=xs)

    return solve
