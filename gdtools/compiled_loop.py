"""The whole optimisation of a traceable objective as one XLA program (``lax.while_loop``).

Used by ``minimize(gradient="autodiff")`` when the objective is a JAX program and nothing needs the
host between steps (no callback, executor or time budget). Each iteration: optax update, projection
onto the bounds, ``value_and_grad`` at the new point (reused from a line search's state when the
optimizer keeps it), stopping tests, and one row of the history (small problems run in chunks of
iterations; see CHUNK_BYTES).
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gdtools.transforms import descend, keeps_value_and_grad, largest_projected_component, needs_value_fn

RUNNING, CONVERGED, MAX_ITERS, NONFINITE, NO_PROGRESS = range(5)
CODES = {CONVERGED: "converged", MAX_ITERS: "max_iters", NONFINITE: "nonfinite",
         NO_PROGRESS: "no_progress"}

#: A small problem's loop runs in chunks of a few iterations whose history rows (loss, gradient,
#: evaluations and, when recorded, x) stay in buffers of at most CHUNK_BYTES, written into the
#: whole history once per chunk. XLA:CPU compiles a while loop that touches less than about 1 kB
#: per iteration into one function, and runs any larger loop kernel by kernel, each kernel paying
#: a dispatch; a loop over the whole history is never that small. With chunks the inner loop is
#: compiled whole (n = 10, adam, float64: 1.7x a bare hand-written fori_loop with x recorded,
#: against 4.8x for one loop over the whole history; interleaved runs on 2 cores). Chunks only
#: where the loop's own arrays (x, gradient, new x, optimizer state) take at most SMALL_LOOP_BYTES
#: (a larger loop is never compiled whole) and the optimizer has no line search: an optimizer with
#: one runs a loop of its own in each iteration, and nesting that once more costs compile time
#: (L-BFGS at n = 10, chunked: 1.9 s against 1.6 s) for runs that are short anyway.
CHUNK_BYTES = 640
SMALL_LOOP_BYTES = 512
MIN_CHUNK, MAX_CHUNK = 4, 16

#: Iterations in a row with the value and the gradient unchanged after which a run of an optimizer
#: with a line search stops: no_progress.
STALL_ITERATIONS = 3

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
    # One row per iteration from row 0 (x0) to row nit: loss, largest gradient component,
    # evaluations so far; rows after nit mean nothing (a chunked run has whole chunks of rows: at
    # least max_iters + 1). Returned whole: slicing its columns in the program costs a kernel each.
    table: jax.Array       # (rows, 3)
    xs: jax.Array          # (rows, n) or (0, n)

    @property
    def loss(self):
        return self.table[..., 0]

    @property
    def grad_norm(self):
        return self.table[..., 1]

    @property
    def evals(self):
        return self.table[..., 2].astype(jnp.int32)


def make_solver(fun: Callable, optimizer, *, n: int, max_iters: int, tol: float, lower, upper,
                record_x: bool) -> Callable:
    """Build ``solve(x0, args=()) -> Trace`` for flat ``x0`` of length ``n``, minimising
    ``fun(x, *args)``; jit or vmap it as needed. ``args`` are inputs of the program, not constants
    in it: one compiled solver serves every value of them (new data, same shapes)."""
    extra = needs_value_fn(optimizer)
    from_state = lower is None and keeps_value_and_grad(optimizer, jax.ShapeDtypeStruct((n,), jnp.float32))

    def solve(x0, args=()):
        objective = lambda x: fun(x, *args)  # noqa: E731
        return _run(objective, jax.value_and_grad(objective), x0)

    def step(fun, value_and_grad, x, state, f, g):
        """One iteration: the optax update, the bounds, and value and gradient at the new point."""
        new_x, state = descend(optimizer, g, state, x, value=f, value_fn=fun if extra else None,
                               lower=lower, upper=upper)
        # (the state keeps the value in x's dtype: an objective of another precision, a float32
        # model of float64 parameters under x64, is evaluated here again)
        reuse = from_state and f.dtype == x.dtype
        if reuse:
            new_f, new_g = optax.value_and_grad_from_state(fun)(new_x, state=state)
        else:
            new_f, new_g = value_and_grad(new_x)
        # Evaluations: the line search's trial points (its last one is new_x, whose value and
        # gradient the state then carries), plus value_and_grad at new_x when it is computed here.
        steps = optax.tree_utils.tree_get(state, "num_linesearch_steps", 0)
        return new_x, state, new_f, new_g, jnp.asarray(steps, jnp.int32) + (0 if reuse else 1)

    def replay(step, x0, f0, g0, iterations):
        """``(x, f, g)`` after ``iterations`` steps from x0, recomputed (the same steps again)."""
        def body(carry):
            i, x, state, f, g = carry
            x, state, f, g, _ = step(x, state, f, g)
            return i + 1, x, state, f, g

        carry = (jnp.int32(0), x0, optimizer.init(x0), f0, g0)
        _, x, _, f, g = jax.lax.while_loop(lambda c: c[0] < iterations, body, carry)
        return x, f, g

    def chunk_length(x0, state, line_search: bool) -> int | None:
        """Iterations per chunk, or None for one loop over the whole history (see CHUNK_BYTES)."""
        itemsize = jnp.dtype(x0.dtype).itemsize
        loop_bytes = itemsize * 3 * n + sum(leaf.size * jnp.dtype(leaf.dtype).itemsize
                                            for leaf in jax.tree_util.tree_leaves(state))
        fits = CHUNK_BYTES // (itemsize * (3 + (n if record_x else 0)))
        if line_search or loop_bytes > SMALL_LOOP_BYTES or fits < MIN_CHUNK or max_iters < 2 * MIN_CHUNK:
            return None
        return min(fits, MAX_CHUNK)

    def _run(fun, value_and_grad, x0):
        """The run for the objective ``fun(x)`` (its arguments bound)."""
        step_ = functools.partial(step, fun, value_and_grad)
        state0 = optimizer.init(x0)
        line_search = optax.tree_utils.tree_get(state0, "num_linesearch_steps") is not None
        chunk = chunk_length(x0, state0, line_search)
        rows = max_iters + 1 if chunk is None else 1 + -(-max_iters // chunk) * chunk
        f0, g0 = value_and_grad(x0)
        g0max = largest_projected_component(g0, x0, lower, upper)
        # One row per iteration: loss, largest gradient component, evaluations so far.
        table = jnp.full((rows, 3), jnp.nan, f0.dtype).at[0].set(jnp.stack([f0, g0max, 1]).astype(f0.dtype))
        xs = jnp.zeros((rows if record_x else 0, n), x0.dtype)
        if record_x:
            xs = xs.at[0].set(x0)
        # The stagnation watch (iterations in a row with the value and the largest gradient
        # component unchanged), carried only for optimizers with a line search: other optimizers'
        # steps move x whenever g != 0.
        watch0 = (jnp.int32(0),) if line_search else ()

        def status_of(k, f, gmax, watch):
            """Why the run stops after iteration k (RUNNING: it goes on). Computed in the loop's
            condition and once after it, not carried: a carried status costs XLA:CPU a kernel an
            iteration."""
            going = jnp.where(k >= max_iters, MAX_ITERS, RUNNING)
            if watch:
                going = jnp.where(watch[0] >= STALL_ITERATIONS, NO_PROGRESS, going)
            return jnp.where(~(jnp.isfinite(f) & jnp.isfinite(gmax)), NONFINITE,
                             jnp.where(gmax <= tol, CONVERGED, going))

        def iteration(carry):
            """One iteration, its row written at row ``j`` of ``rows_f`` (and ``rows_x``)."""
            j, k, x, state, f, g, nfev, gm, rows_f, rows_x, *watch = carry
            new_x, state, new_f, new_g, evals = step_(x, state, f, g)
            nfev = nfev + evals
            gmax = largest_projected_component(new_g, new_x, lower, upper)
            if watch:
                # Stagnation (optimizers with a line search, which may find no step at all: e.g.
                # nothing but nan beyond the point): the value and the gradient's largest component
                # exactly as they were, STALL_ITERATIONS iterations in a row. Two scalar comparisons,
                # where comparing x would cost a pass over it every iteration.
                watch = [jnp.where((new_f == f) & (gmax == gm), watch[0] + 1, 0)]
            zero = jnp.zeros((), j.dtype)
            row = jnp.stack([new_f, gmax, nfev]).astype(rows_f.dtype)[None]
            rows_f = jax.lax.dynamic_update_slice(rows_f, row, (j, zero))
            if record_x:
                rows_x = jax.lax.dynamic_update_slice(rows_x, new_x[None], (j, zero))
            return (j + 1, k + 1, new_x, state, new_f, new_g, nfev, gmax, rows_f, rows_x, *watch)

        def running(carry):
            _, k, _, _, f, _, _, gmax, _, _, *watch = carry
            return status_of(k, f, gmax, watch) == RUNNING

        start = (jnp.int32(0), x0, state0, f0, g0, jnp.int32(1), g0max)
        if chunk is None:
            # One loop, writing row k + 1 of the whole history each iteration.
            carry = jax.lax.while_loop(running, iteration, (jnp.int32(1), *start, table, xs, *watch0))
            _, k, x, _, f, g, nfev, gmax, table, xs, *watch = carry
        else:
            def chunk_of_iterations(carry):
                # `chunk` iterations at most, their rows kept in small buffers (carried from chunk
                # to chunk, not refilled) and written into the history once per chunk. Rows after
                # the last iteration are left as they are.
                k, x, state, f, g, nfev, gmax, table, xs, rows_f, rows_x, *watch = carry
                inner = (jnp.int32(0), k, x, state, f, g, nfev, gmax, rows_f, rows_x, *watch)
                inner = jax.lax.while_loop(lambda c: running(c) & (c[0] < chunk), iteration, inner)
                _, k1, x, state, f, g, nfev, gmax, rows_f, rows_x, *watch = inner
                zero = jnp.zeros((), k.dtype)
                table = jax.lax.dynamic_update_slice(table, rows_f, (k + 1, zero))
                if record_x:
                    xs = jax.lax.dynamic_update_slice(xs, rows_x, (k + 1, zero))
                return (k1, x, state, f, g, nfev, gmax, table, xs, rows_f, rows_x, *watch)

            def chunks_running(carry):
                k, _, _, f, _, _, gmax, _, _, _, _, *watch = carry
                return status_of(k, f, gmax, watch) == RUNNING

            rows_f = jnp.full((chunk, 3), jnp.nan, table.dtype)
            rows_x = jnp.zeros((chunk if record_x else 0, n), xs.dtype)
            carry = jax.lax.while_loop(chunks_running, chunk_of_iterations,
                                       (*start, table, xs, rows_f, rows_x, *watch0))
            k, x, _, f, g, nfev, gmax, table, xs, _, _, *watch = carry
        status = status_of(k, f, gmax, watch)
        # A run that met nan or inf returns the last finite point (one step back): the trajectory's
        # previous row when x is recorded, else the same steps replayed from x0, which costs time
        # only in a run that failed. (Carrying the previous x through the loop instead costs a copy
        # of x every iteration: 1.2x the whole loop's time at n = 100,000 on XLA:CPU.)
        bad = (status == NONFINITE) & (k > 0)
        if record_x:
            x_prev = xs[jnp.maximum(k - 1, 0)]
            # its value and gradient again, only in a run that failed (under vmap: in every run)
            f_prev, g_prev = jax.lax.cond(bad, value_and_grad, lambda x: (f, g), x_prev)
        else:
            # Under vmap (batch=True) the replay runs as long as the longest failed start's.
            x_prev, f_prev, g_prev = replay(step_, x0, f0, g0, jnp.where(bad, k - 1, 0))
        x = jnp.where(bad, x_prev, x)
        # The failed iterate's row keeps its evaluation count; its loss and gradient are nan.
        table = table.at[k, :2].set(jnp.where(bad, jnp.nan, table[k, :2]))
        return Trace(x=x, fun=jnp.where(bad, f_prev, f), grad=jnp.where(bad, g_prev, g), nit=k, nfev=nfev,
                     status=status, table=table, xs=xs)

    return solve
