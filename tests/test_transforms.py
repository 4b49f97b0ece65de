import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gdtools as gd
from gdtools.transforms import normalized_sgd, resolve_optimizer, scale_by_mean_abs, spall_gain


def test_scale_by_mean_abs_makes_mean_step_one():
    g = {"a": jnp.array([1.0, -3.0]), "b": jnp.array([4.0])}
    tx = scale_by_mean_abs()
    out, _ = tx.update(g, tx.init(g))
    total = jnp.concatenate([jnp.abs(out["a"]), jnp.abs(out["b"])])
    assert float(jnp.mean(total)) == pytest.approx(1.0, rel=1e-6)


def test_normalized_sgd_step_size_is_independent_of_gradient_scale():
    tx = normalized_sgd(0.5)
    for scale in (1e-3, 1.0, 1e6):  # far above eps=1e-8
        g = jnp.array([1.0, -1.0]) * scale
        u, _ = tx.update(g, tx.init(g))
        np.testing.assert_allclose(u, [-0.5, 0.5], rtol=1e-4)


def test_spall_gain_decays_with_exponent():
    sched = spall_gain(1.0, A=9.0, alpha=0.602)
    assert sched(0) == pytest.approx(10 ** -0.602)
    assert sched(90) == pytest.approx(100 ** -0.602)


def test_shorthands_and_errors():
    assert isinstance(resolve_optimizer("adam"), optax.GradientTransformation)
    tx = optax.sgd(0.1)
    assert resolve_optimizer(tx) is tx
    with pytest.raises(gd.InputError, match="unknown optimizer"):
        resolve_optimizer("bfgs-turbo")
    with pytest.raises(gd.InputError, match="GradientTransformation"):
        resolve_optimizer(42)


@pytest.mark.parametrize("values", [[-2.0], [0.5, -3.0, 2.0], [-0.0, 0.0], [1.0, np.nan, -2.0], [np.inf, 1.0], [-np.inf, 1.0],
                                    [1e-300, -1e-310]])
def test_largest_projected_component_is_max_abs_on_device_and_host(values):
    from gdtools.transforms import largest_projected_component

    g = np.array(values)
    expected = np.max(np.abs(g))
    device = float(jax.jit(largest_projected_component)(jnp.asarray(g, jnp.float32), jnp.zeros(len(g), jnp.float32)))
    host = float(largest_projected_component(g, np.zeros(len(g))))
    assert (np.isnan(host) and np.isnan(expected)) or host == expected
    # the device counts nan as inf (see largest_projected_component)
    expected = np.max(np.abs(np.where(np.isnan(g), np.inf, g)))
    assert device == np.float32(expected) or device == expected
    bounded = float(jax.jit(largest_projected_component)(jnp.asarray(g, jnp.float32), jnp.zeros(len(g), jnp.float32),
                                                         -1.0, 1.0))
    g32 = np.where(np.isnan(g), np.inf, g).astype(np.float32)
    expected_bounded = np.max(np.abs(np.where(np.isfinite(g32), np.clip(-g32, -1.0, 1.0), g32)))  # x = 0
    assert bounded == expected_bounded


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", [8, 32, 33, 4097])
def test_a_nan_anywhere_in_a_batch_of_gradients_is_not_finite(dtype, n):
    # Under vmap (batch=True) XLA:CPU's row-wise maximum dropped nan from rows of 8 to 32 numbers
    # once the batch held 4096 numbers: a start with a nan gradient was called converged.
    from gdtools.transforms import largest_projected_component

    with jax.enable_x64(dtype == "float64"):
        for column in (0, n // 2, n - 1):
            rows = np.zeros((256, n), dtype)
            rows[:, (column + 1) % n] = -2.0
            rows[::2, column] = np.nan
            got = np.asarray(jax.jit(jax.vmap(lambda g: largest_projected_component(g, None)))(jnp.asarray(rows)))
            assert np.all(got[::2] == np.inf) and np.all(got[1::2] == 2.0), (column, got[:4])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", [8, 5000])
def test_a_huge_finite_gradient_is_finite(dtype, n):
    # A sum that overflows to inf and -inf in different lanes comes out nan: not a nan gradient.
    from gdtools.transforms import largest_projected_component

    with jax.enable_x64(dtype == "float64"):
        big = np.finfo(dtype).max / 3
        g = np.tile(np.array([big, -big], dtype), n // 2)
        assert float(jax.jit(lambda g: largest_projected_component(g, None))(jnp.asarray(g))) == pytest.approx(big)


@pytest.mark.parametrize("values", [[-2.0], [0.5, -3.0, 2.0], [1.0, np.nan, -2.0], [np.inf, 1.0], [-np.inf, 1.0],
                                    [-5.0, np.nan], [1e-300, -1e-310], [-0.0]])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("size", [33, 320, 4096, 4097])
def test_largest_projected_component_of_many_numbers_on_device(values, dtype, size):
    # From TREE_REDUCTION_WINDOW + 1 to VARIADIC_LARGEST numbers the device computes max(max g, -min g)
    # in one variadic reduction, above it max |g| again: the same answer either way, nan
    # propagating, in any shape and under vmap, in float32 and float64.
    from gdtools.transforms import TREE_REDUCTION_WINDOW, VARIADIC_LARGEST, largest_projected_component

    assert TREE_REDUCTION_WINDOW + 1 == 33 and VARIADIC_LARGEST == 4096  # the sizes above are its edges
    with jax.enable_x64(dtype == "float64"):
        rng = np.random.default_rng(len(values))
        g = np.zeros(size, dtype)
        g[rng.choice(size, len(values), replace=False)] = values
        expected = np.max(np.abs(np.where(np.isnan(g), np.inf, g)))  # a device counts nan as inf
        same = lambda got, want: got == want  # noqa: E731
        zeros = lambda shape: jnp.zeros(shape, dtype)  # noqa: E731
        got = jax.jit(largest_projected_component)(jnp.asarray(g), zeros(size))
        assert got.dtype == np.dtype(dtype) and same(float(got), expected)
        if size % 11 == 0:
            square = g.reshape(11, -1)
            assert same(float(largest_projected_component(jnp.asarray(square), zeros(square.shape))), expected)
        batch = np.stack([g, -g, np.zeros(size, dtype)])
        got = jax.vmap(largest_projected_component)(jnp.asarray(batch), zeros(batch.shape))
        for row, value in zip(batch, np.asarray(got)):
            assert same(float(value), np.max(np.abs(np.where(np.isnan(row), np.inf, row))))
        bounded = float(jax.jit(largest_projected_component)(jnp.asarray(g), zeros(size), -1.0, 1.0))
        projected = np.where(np.isfinite(g), np.clip(-g, -1.0, 1.0), np.where(np.isnan(g), np.inf, g))
        assert same(bounded, np.max(np.abs(projected)))


def test_largest_component_of_integers_and_complex_numbers_is_their_largest_magnitude():
    from gdtools.transforms import largest_projected_component

    assert int(largest_projected_component(jnp.arange(-50, 40, dtype=jnp.int32), None)) == 50
    assert float(largest_projected_component(jnp.full(100, 1 + 1j, jnp.complex64), None)) == pytest.approx(2 ** 0.5)


def test_bounded_lbfgs_keeps_held_coordinates_on_their_bound_and_converges_as_scipy_does():
    # A coupled quadratic with most of its minimum on the bounds of [0, 1]^20. With only the
    # gradient masked, L-BFGS's matrix moved held coordinates into the box and the projection back,
    # iteration after iteration: 1000 iterations (4995 evaluations) and no convergence.
    from scipy.optimize import minimize as scipy_minimize

    rng = np.random.default_rng(5)
    n = 20
    c = rng.uniform(-2, 3, n)
    weights = np.exp(rng.uniform(0, np.log(100), n))
    a = rng.normal(size=(n, n)) * 0.3
    q = a @ a.T + np.diag(weights)
    rng.uniform(0, 1, n)
    x0 = rng.uniform(0, 1, n)
    fun = lambda x: (x - c) @ q @ (x - c)  # noqa: E731
    res = gd.minimize(fun, jnp.asarray(x0), bounds=(0.0, 1.0))
    ref = scipy_minimize(lambda x: float(fun(x)), x0, jac=lambda x: np.asarray(jax.grad(fun)(x)),
                         method="L-BFGS-B", bounds=[(0.0, 1.0)] * n)
    assert res.success and res.status == "converged"
    assert res.nfev <= 100
    np.testing.assert_allclose(np.asarray(res.x), ref.x, atol=1e-3)  # float32 against float64


@pytest.mark.parametrize("gradient", ["central", "spsa"])
def test_an_optimizer_that_wants_only_the_value_gets_a_black_boxs_value(gradient):
    """optax.polyak_sgd and optax.contrib.reduce_on_plateau take the objective's value at x, which
    every gradient estimate has, not its value function; with a black box they were refused as
    'needs the objective's value function (an optax line search)'."""
    from optax import contrib

    fun = lambda x: float(np.sum((np.asarray(x) - 1.0) ** 2))  # noqa: E731
    # Polyak's step on this quadratic, f / |g|^2 * g = (x - 1) / 2: halfway to the minimum each time
    res = gd.minimize(fun, np.zeros(3), gradient="central", optimizer=optax.polyak_sgd(), max_iters=5)
    np.testing.assert_allclose(res.x, 1 - 0.5 ** 5, rtol=1e-6)
    # the plateau's schedule as a hand-written optax loop on the exact gradient runs it
    plateau = optax.chain(optax.adam(0.1), contrib.reduce_on_plateau(patience=2, cooldown=0, factor=0.5))
    x, state = np.zeros(3), plateau.init(jnp.zeros(3))
    for _ in range(30):
        updates, state = plateau.update(jnp.asarray(2 * (x - 1), jnp.float32), state, jnp.asarray(x, jnp.float32),
                                        value=fun(x))
        x = x + np.asarray(updates, dtype=float)
    res = gd.minimize(fun, np.zeros(3), gradient="central", optimizer=plateau, max_iters=30)
    np.testing.assert_allclose(res.x, x, rtol=1e-4)
    res = gd.minimize(fun, np.zeros(3), gradient=gradient, optimizer=plateau, max_evals=100)
    assert res.fun < fun(np.zeros(3))
    # a line search still needs the value function, and says so
    with pytest.raises(gd.InputError, match="needs the objective's value function"):
        gd.minimize(fun, np.zeros(3), gradient=gradient, optimizer=optax.lbfgs(), max_evals=40)


def test_a_transformation_that_takes_extra_arguments_but_none_of_ours_gets_the_plain_update():
    # optax.contrib.sam is an ExtraArgs transformation whose default update takes no value=: the
    # compiled loop failed with a raw TypeError ('unexpected keyword argument value'), the host
    # loop with 'needs the objective's value function ... a black box', for an autodiff run
    f = lambda x: jnp.sum((x - 1.0) ** 2)  # noqa: E731
    opt = optax.contrib.sam(optax.sgd(1e-1), optax.sgd(1e-2))
    x, state = jnp.zeros(3), opt.init(jnp.zeros(3))
    for _ in range(20):
        updates, state = opt.update(jax.grad(f)(x), state, x)
        x = optax.apply_updates(x, updates)
    for extra in ({}, {"callback": lambda s: None}):
        res = gd.minimize(f, jnp.zeros(3), optimizer=opt, max_iters=20, tol=0.0, **extra)
        np.testing.assert_allclose(res.x, x, rtol=1e-5)
