"""The compiled loop runs in chunks of iterations; every run must look as if it had none."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gdtools as gd
from gdtools.compiled_loop import (CONVERGED, MAX_CHUNK, MAX_ITERS, NO_PROGRESS, NONFINITE, STALL_ITERATIONS,
                                   make_solver)


def quadratic(x):
    return jnp.sum((x - jnp.arange(1.0, x.size + 1.0)) ** 2)


def blows_up(x):
    """Finite until x[0] passes 0.9, then nan: sgd(0.1) from 0 crosses it at iteration 11."""
    return jnp.where(x[0] > 0.9, jnp.nan, quadratic(x))


def reference(fun, optimizer, x0, *, max_iters, tol):
    """The same iterations one by one in Python: rows of (loss, largest |g|, evals, x), the status."""
    value_and_grad = jax.jit(jax.value_and_grad(fun))
    x, state = x0, optimizer.init(x0)
    f, g = value_and_grad(x)
    rows = [(float(f), float(jnp.max(jnp.abs(g))), 1, np.asarray(x))]
    status = CONVERGED if rows[0][1] <= tol else None
    last_finite = (x, f)
    while status is None:
        updates, state = optimizer.update(g, state, x)
        x = optax.apply_updates(x, updates)
        f, g = value_and_grad(x)
        gmax = float(jnp.max(jnp.abs(g)))
        rows.append((float(f), gmax, len(rows) + 1, np.asarray(x)))
        if not (np.isfinite(float(f)) and np.isfinite(gmax)):
            status = NONFINITE
        elif gmax <= tol:
            status = CONVERGED
        elif len(rows) - 1 >= max_iters:
            status = MAX_ITERS
        else:
            last_finite = (x, f)
    return rows, status, last_finite


def run_compiled(fun, optimizer, x0, *, max_iters, tol, record_x):
    solver = make_solver(fun, optimizer, n=x0.size, max_iters=max_iters, tol=tol, lower=None,
                         upper=None, record_x=record_x)
    return jax.jit(solver)(x0)


@pytest.mark.parametrize("record_x", [True, False])
@pytest.mark.parametrize("n", [2, 10, 300])
@pytest.mark.parametrize("max_iters", [1, 3, 4, 5, 16, 17, 40])
def test_runs_of_every_length_match_the_one_by_one_loop(n, max_iters, record_x):
    optimizer = optax.adam(0.05)
    x0 = jnp.zeros(n)
    rows, status, _ = reference(quadratic, optimizer, x0, max_iters=max_iters, tol=0.0)
    trace = run_compiled(quadratic, optimizer, x0, max_iters=max_iters, tol=0.0, record_x=record_x)
    nit = int(trace.nit)
    assert nit == len(rows) - 1 == max_iters and int(trace.status) == status
    np.testing.assert_allclose(np.asarray(trace.loss)[:nit + 1], [r[0] for r in rows], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(trace.grad_norm)[:nit + 1], [r[1] for r in rows], rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(trace.evals)[:nit + 1], [r[2] for r in rows])
    np.testing.assert_allclose(np.asarray(trace.x), rows[-1][3], rtol=1e-5, atol=1e-6)
    if record_x:
        np.testing.assert_allclose(np.asarray(trace.xs)[:nit + 1], np.stack([r[3] for r in rows]),
                                   rtol=1e-5, atol=1e-6)
    assert int(trace.nfev) == nit + 1


@pytest.mark.parametrize("record_x", [True, False])
@pytest.mark.parametrize("max_iters", [200, 1000])
def test_convergence_in_the_middle_of_a_chunk_stops_there(max_iters, record_x):
    optimizer = optax.sgd(0.1)
    x0 = jnp.zeros(3)
    rows, status, _ = reference(quadratic, optimizer, x0, max_iters=max_iters, tol=1e-3)
    trace = run_compiled(quadratic, optimizer, x0, max_iters=max_iters, tol=1e-3, record_x=record_x)
    assert status == CONVERGED and int(trace.status) == CONVERGED
    assert int(trace.nit) == len(rows) - 1
    # the test means something only if it stops inside a chunk (here of MAX_CHUNK iterations)
    assert int(trace.nit) % MAX_CHUNK
    np.testing.assert_allclose(np.asarray(trace.loss)[:len(rows)], [r[0] for r in rows], rtol=1e-5)


@pytest.mark.parametrize("record_x", [True, False])
def test_nan_in_the_middle_of_a_chunk_returns_the_last_finite_point(record_x):
    optimizer = optax.sgd(0.1)
    x0 = jnp.zeros(3)
    rows, status, (x_last, f_last) = reference(blows_up, optimizer, x0, max_iters=100, tol=0.0)
    trace = run_compiled(blows_up, optimizer, x0, max_iters=100, tol=0.0, record_x=record_x)
    assert status == NONFINITE and int(trace.status) == NONFINITE
    assert int(trace.nit) == len(rows) - 1 == 11
    np.testing.assert_allclose(np.asarray(trace.x), np.asarray(x_last), rtol=1e-6)
    assert float(trace.fun) == pytest.approx(float(f_last), rel=1e-6)
    assert np.isnan(np.asarray(trace.loss)[int(trace.nit)])



def test_starts_that_stop_at_different_iterations_run_together_under_vmap():
    optimizer = optax.sgd(0.1)
    starts = jnp.array([[0.0, 0.0], [0.9, 2.1], [-5.0, 9.0]])
    solver = make_solver(quadratic, optimizer, n=2, max_iters=300, tol=1e-3, lower=None, upper=None,
                         record_x=True)
    batch = jax.jit(jax.vmap(solver))(starts)
    nits = set()
    for i, x0 in enumerate(starts):
        rows, status, _ = reference(quadratic, optimizer, x0, max_iters=300, tol=1e-3)
        nit = int(batch.nit[i])
        nits.add(nit)
        assert nit == len(rows) - 1 and int(batch.status[i]) == status
        np.testing.assert_allclose(np.asarray(batch.loss[i])[:nit + 1], [r[0] for r in rows], rtol=1e-5)
        np.testing.assert_allclose(np.asarray(batch.xs[i])[:nit + 1], np.stack([r[3] for r in rows]),
                                   rtol=1e-5, atol=1e-6)
    assert len(nits) == 3


def test_no_iterations_leave_x0_and_its_row_alone():
    trace = run_compiled(quadratic, optax.sgd(0.1), jnp.zeros(2), max_iters=0, tol=0.0, record_x=True)
    assert int(trace.nit) == 0 and float(trace.loss[0]) == pytest.approx(5.0)
    np.testing.assert_array_equal(np.asarray(trace.x), 0.0)


def test_a_small_problem_runs_in_chunks_and_a_large_one_in_one_loop():
    """Chunked runs have whole chunks of history rows; that is how the test sees which loop ran."""
    small = run_compiled(quadratic, optax.adam(0.05), jnp.zeros(2), max_iters=17, tol=0.0, record_x=True)
    assert np.asarray(small.loss).shape[0] > 18
    large = run_compiled(quadratic, optax.adam(0.05), jnp.zeros(300), max_iters=17, tol=0.0, record_x=True)
    assert np.asarray(large.loss).shape[0] == 18
    lbfgs = run_compiled(quadratic, optax.lbfgs(), jnp.zeros(2), max_iters=17, tol=0.0, record_x=True)
    assert np.asarray(lbfgs.loss).shape[0] == 18  # its state is too large to gain, and nesting costs compile time


@pytest.mark.parametrize("record_x", [True, False])
@pytest.mark.parametrize("n", [2, 300])
def test_a_line_search_stuck_against_nan_stops_instead_of_spending_its_iterations(n, record_x):
    f = lambda x: jnp.sum((x + 1.0) ** 2) + jnp.where(x[0] < 0, jnp.nan, 0.0)
    trace = run_compiled(f, optax.lbfgs(), jnp.full(n, 2.0), max_iters=1000, tol=1e-6, record_x=record_x)
    # it ran all 1000 iterations (20,947 evaluations at n = 2) without moving after the 5th
    nit = int(trace.nit)
    assert int(trace.status) == NO_PROGRESS and nit < 30
    if record_x:
        np.testing.assert_array_equal(trace.xs[nit - STALL_ITERATIONS], trace.xs[nit])


def test_without_a_line_search_there_is_no_stagnation_watch():
    """Other optimizers move x whenever the gradient is not zero; their loop carries nothing more
    (the watch would cost the compiled loop time every iteration)."""
    trace = run_compiled(quadratic, optax.sgd(0.0), jnp.full(3, 0.5), max_iters=20, tol=0.0, record_x=True)
    assert int(trace.status) == MAX_ITERS and int(trace.nit) == 20


@pytest.mark.parametrize("n", [100, 5000])
def test_a_nan_in_a_large_gradient_with_a_finite_value_stops_the_run_at_once(n):
    # jnp.where's classic trap: the unselected sqrt(-1) branch makes the gradient nan while the
    # value stays finite. XLA:CPU's vectorised max over 4096 numbers or more dropped the nan, so the
    # run stepped on with it (and max |g| could even come out -inf, below any tol).
    def fun(x):
        return jnp.sum(x ** 2) + jnp.where(x[0] > -100.0, 0.0, jnp.sqrt(x[0]))

    for callback in (None, lambda state: None):  # the compiled program and the host loop
        res = gd.minimize(fun, -jnp.ones(n), optimizer="adam", max_iters=50, callback=callback)
        assert res.status == "nonfinite" and res.nit == 0 and not res.success, res


@pytest.mark.parametrize("x_dtype, f_dtype", [(jnp.float64, jnp.float32), (jnp.float32, jnp.float64)])
def test_lbfgs_on_an_objective_of_another_precision_than_x(x_dtype, f_dtype):
    # Under x64, a float32 model of float64 parameters (or float32 parameters on float64 data):
    # optax's L-BFGS keeps the value in x's dtype, and reusing it from its state crashed the
    # compiled default path (single start and batch=True) in a lax.cond of mismatched dtypes.
    with jax.enable_x64(True):
        fun = lambda x: jnp.sum((x.astype(f_dtype) - 1.0) ** 2)  # noqa: E731
        res = gd.minimize(fun, jnp.zeros(3, x_dtype))
        batch = gd.minimize(fun, jnp.zeros((2, 3), x_dtype), batch=True)
    for r in (res, *batch):
        assert r.success and r.x.dtype == x_dtype, r
        np.testing.assert_allclose(r.x, 1.0, atol=1e-5)


@pytest.mark.parametrize("after", [optax.scale(0.5), optax.clip(0.05)])
def test_a_line_search_followed_by_another_transformation_is_judged_at_the_point_it_reached(after):
    """The state of a line search holds the value and gradient at its own last trial point: the
    compiled loop took them for those at the new x even when a transformation after the search
    (chain(lbfgs(), scale(0.5))) moved x elsewhere. On a quadratic it said converged, f = 0, at a
    point where f = 7.5; the host loop, which evaluates x, went on to the minimum."""
    for optimizer in (optax.chain(optax.lbfgs(), after),
                      optax.chain(optax.sgd(1.0), optax.scale_by_zoom_linesearch(15), after),
                      optax.named_chain(("lbfgs", optax.lbfgs()), ("after", after))):
        res = gd.minimize(quadratic, jnp.zeros(4), optimizer=optimizer, max_iters=5)
        assert res.fun == pytest.approx(float(quadratic(res.x)), rel=1e-5, abs=1e-12), res
        host = gd.minimize(quadratic, jnp.zeros(4), optimizer=optimizer, max_iters=5, callback=lambda state: None)
        np.testing.assert_allclose(res.x, host.x, rtol=1e-5)
