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

from gdtools.transforms import descend, needs_value_fn

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
    from_state = (extra and lower is None
                  and _keeps_value_and_grad(optimizer, jax.ShapeDtypeStruct((n,), jnp.float32)))

    def step(x, state, f, g):
        """One iteration: the optax update, the bounds, and value and gradient at the new point."""
        new_x, state = descend(optimizer, g, state, x, value=f, value_fn=fun if extra else None,
                               lower=lower, upper=upper)
        if from_state:
            new_f, new_g = optax.value_and_grad_from_state(fun)(new_x, state=state)
        else:
            new_f, new_g = value_and_grad(new_x)
        steps = optax.tree_utils.tree_get(state, "num_linesearch_steps", 0)
        return new_x, state, new_f, new_g, 1 + jnp.asarray(steps, jnp.int32)

    def replay(x0, f0, g0, iterations):
        """``(x, f, g)`` after ``iterations`` steps from x0, recomputed (the same steps again)."""
        def body(carry):
            i, x, state, f, g = carry
            x, state, f, g, _ = step(x, state, f, g)
            return i + 1, x, state, f, g

        carry = (jnp.int32(0), x0, optimizer.init(x0), f0, g0)
        _, x, _, f, g = jax.lax.while_loop(lambda c: c[0] < iterations, body, carry)
        return x, f, g

    def solve(x0):
        f0, g0 = value_and_grad(x0)
        g0max = jnp.max(jnp.abs(g0))
        rows = max_iters + 1
        # One row per iteration: loss, largest gradient component, evaluations so far.
        table = jnp.full((rows, 3), jnp.nan, f0.dtype).at[0].set(jnp.stack([f0, g0max, 1]).astype(f0.dtype))
        xs = jnp.zeros((rows if record_x else 0, n), x0.dtype)
        if record_x:
            xs = xs.at[0].set(x0)
        first_status = jnp.where(jnp.isfinite(f0) & jnp.isfinite(g0max),
                                 jnp.where(g0max <= tol, CONVERGED, RUNNING), NONFINITE)
        carry = (jnp.int32(0), x0, optimizer.init(x0), f0, g0, jnp.int32(1), first_status, table, xs)

        def cond(carry):
            k, status = carry[0], carry[6]
            return (status == RUNNING) & (k < max_iters)

        def body(carry):
            k, x, state, f, g, nfev, status, table, xs = carry
            new_x, state, new_f, new_g, evals = step(x, state, f, g)
            nfev = nfev + evals
            # NaN and inf propagate through max, so one reduction checks finiteness and tol.
            gmax = jnp.max(jnp.abs(new_g))
            k1 = k + 1
            status = jnp.where(~(jnp.isfinite(new_f) & jnp.isfinite(gmax)), NONFINITE,
                               jnp.where(gmax <= tol, CONVERGED,
                                         jnp.where(k1 >= max_iters, MAX_ITERS, RUNNING)))
            table = table.at[k1].set(jnp.stack([new_f, gmax, nfev]).astype(table.dtype))
            if record_x:
                xs = xs.at[k1].set(new_x)
            return (k1, new_x, state, new_f, new_g, nfev, status, table, xs)

        k, x, _, f, g, nfev, status, table, xs = jax.lax.while_loop(cond, body, carry)
        # A run that met nan or inf returns the last finite point (one step back): the trajectory's
        # previous row when x is recorded, else the same steps replayed from x0, which costs time
        # only in a run that failed. (Carrying the previous x through the loop instead costs a copy
        # of x every iteration: 1.2x the whole loop's time at n = 100,000 on XLA:CPU.)
        bad = (status == NONFINITE) & (k > 0)
        if record_x:
            x_prev, f_prev, g_prev = xs[jnp.maximum(k - 1, 0)], table[k - 1, 0], g
        else:
            # Under vmap (batch=True) the replay runs as long as the longest failed start's.
            x_prev, f_prev, g_prev = replay(x0, f0, g0, jnp.where(bad, k - 1, 0))
        x = jnp.where(bad, x_prev, x)
        table = table.at[k].set(jnp.where(bad, jnp.nan, table[k]))
        status = jnp.where(status == RUNNING, MAX_ITERS, status)
        return Trace(x=x, fun=jnp.where(bad, f_prev, f), grad=jnp.where(bad, g_prev, g), nit=k, nfev=nfev,
                     status=status, loss=table[:, 0], grad_norm=table[:, 1], evals=table[:, 2].astype(jnp.int32), xs=xs)

    return solve
