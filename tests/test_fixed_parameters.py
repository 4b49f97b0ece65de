"""Parameters fixed by equal bounds (lower == upper) are taken out of the problem, as scipy does."""

import concurrent.futures
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

import gdtools as gd
from gdtools.fixed_parameters import FixedParameters
from problems import rosenbrock

# (autodiff runs here in float32, x64 being off in the tests: the warning that says so is expected)
pytestmark = [pytest.mark.filterwarnings("ignore:x0 is float64"), pytest.mark.filterwarnings("ignore:os.fork")]

LOWER = np.array([-2.0, 0.5, -2.0, -2.0, -2.0])
UPPER = np.array([2.0, 0.5, 2.0, 2.0, 2.0])
X0 = np.array([0.0, 0.5, 0.0, 0.0, 0.0])


def rosenbrock_np(x):
    x = np.asarray(x, dtype=float)
    return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2))


class Recording:
    """The objective, keeping every point it is asked about."""

    def __init__(self, fun):
        self.fun, self.points = fun, []

    def __call__(self, x):
        self.points.append(np.array(x, dtype=float))
        return self.fun(x)


def scipy_answer():
    return scipy.optimize.minimize(rosenbrock_np, X0, method="L-BFGS-B", bounds=list(zip(LOWER, UPPER)))


def assert_fixed_everywhere(res):
    assert res.x[1] == 0.5
    assert np.isnan(res.grad[1]) and np.all(np.isfinite(np.delete(res.grad, 1)))
    for record in res.history.iterations + res.history.evaluations:
        assert record["x"] is None or (len(record["x"]) == 5 and record["x"][1] == 0.5)


@pytest.mark.parametrize("gradient", ["central", "forward"])
def test_black_box_differences_solve_the_problem_scipy_solves(gradient):
    fun = Recording(rosenbrock_np)
    res = gd.minimize(fun, X0, gradient=gradient, bounds=(LOWER, UPPER))
    ref = scipy_answer()
    assert res.success, res.message
    np.testing.assert_allclose(res.x, ref.x, atol=1e-4)
    assert_fixed_everywhere(res)
    # no probe was spent on the fixed parameter: it never moved, and it costs no evaluations
    assert all(p[1] == 0.5 for p in fun.points)
    per_gradient = {"central": 8, "forward": 4}[gradient]
    assert res.nfev < res.nit * (per_gradient + 3) + 3


def test_one_step_per_parameter_of_x0():
    # steps for all 5 parameters of x0 (the fixed one's unused) were refused: 'step has shape (5,),
    # but x has 4 coordinates'
    fun = Recording(rosenbrock_np)
    steps = np.array([1e-6, 1.0, 2e-6, 3e-6, 4e-6])
    res = gd.minimize(fun, X0, gradient=gd.estimators.Central(step=steps), bounds=(LOWER, UPPER), max_iters=1)
    assert_fixed_everywhere(res)
    offsets = {(int(i), float(abs(d))) for p in fun.points[1:9] for i, d in enumerate(p - X0) if d}
    np.testing.assert_allclose(sorted(offsets), [(0, 1e-6), (2, 2e-6), (3, 3e-6), (4, 4e-6)], rtol=1e-6)


def test_autodiff_compiled_and_host_loop_agree_with_scipy():
    ref = scipy_answer()
    compiled = gd.minimize(rosenbrock, X0, bounds=(LOWER, UPPER))
    host = gd.minimize(rosenbrock, X0, bounds=(LOWER, UPPER), max_evals=500)
    assert compiled.history.meta.get("engine") == "compiled" and host.history.meta.get("engine") != "compiled"
    for res in (compiled, host):
        assert res.success, res.message
        np.testing.assert_allclose(res.x, ref.x, atol=1e-5)
        assert_fixed_everywhere(res)


def test_spsa_moves_the_free_parameters_only():
    fun = Recording(rosenbrock_np)
    res = gd.minimize(fun, X0, gradient="spsa", bounds=(LOWER, UPPER), max_evals=400)
    assert res.fun < 0.5 * rosenbrock_np(X0)
    assert all(p[1] == 0.5 for p in fun.points)
    assert_fixed_everywhere(res)


def test_a_device_start_and_a_pytree_start():
    res = gd.minimize(rosenbrock, jnp.asarray(X0), bounds=(LOWER, UPPER))
    assert isinstance(res.x, jax.Array)
    np.testing.assert_allclose(res.x, scipy_answer().x, atol=1e-5)
    assert float(res.x[1]) == 0.5 and bool(jnp.isnan(res.grad[1]))

    def fun(p):
        return jnp.sum((p["a"] - 3.0) ** 2) + (p["b"] - 2.0) ** 2 * jnp.sum(p["a"] ** 2)

    res = gd.minimize(fun, {"a": jnp.zeros(2), "b": 1.0}, bounds=({"a": -5.0, "b": 1.0}, {"a": 5.0, "b": 1.0}))
    assert float(res.x["b"]) == 1.0 and np.isnan(res.grad["b"])
    np.testing.assert_allclose(res.x["a"], 1.5, atol=1e-6)  # min of (a-3)² + a², b held at 1


def test_another_fixed_value_is_another_problem_not_a_cached_program():
    """The compiled solver and the checked objective are kept for later calls: one kept for the
    fixed parameter at 0.5 must not serve a run that fixes it at 0.0."""
    first = gd.minimize(rosenbrock, X0, bounds=(LOWER, UPPER))
    lower, upper, x0 = LOWER.copy(), UPPER.copy(), X0.copy()
    lower[1] = upper[1] = x0[1] = 0.0
    second = gd.minimize(rosenbrock, x0, bounds=(lower, upper))
    ref = scipy.optimize.minimize(rosenbrock_np, x0, method="L-BFGS-B", bounds=list(zip(lower, upper)))
    assert second.x[1] == 0.0
    np.testing.assert_allclose(second.x, ref.x, atol=1e-5)
    assert abs(second.fun - rosenbrock_np(second.x)) < 1e-6 * second.fun
    assert not np.allclose(first.x, second.x, atol=1e-3)


def test_a_batch_of_starts():
    starts = np.stack([X0, X0 + np.array([0.3, 0.0, -0.2, 0.0, 0.1])])
    results = gd.minimize(rosenbrock, starts, bounds=(LOWER, UPPER), batch=True)
    for res in results:
        np.testing.assert_allclose(res.x, scipy_answer().x, atol=1e-5)
        assert res.x[1] == 0.5
    bad = starts.copy()
    bad[1, 1] = 0.4
    with pytest.raises(gd.InputError, match=r"start 1 of x0 violates the bounds: coordinate 1 is 0\.4"):
        gd.minimize(rosenbrock, bad, bounds=(LOWER, UPPER), batch=True)


def test_a_batch_start_names_the_coordinate_of_x0_not_of_the_free_ones():
    # the starts are checked on the free coordinates: coordinate 3 of x0 is the free ones' 2
    starts = np.stack([X0, X0])
    starts[1, 3] = 5.0
    with pytest.raises(gd.InputError, match=r"start 1 of x0 violates the bounds: coordinate 3 is 5\.0"):
        gd.minimize(rosenbrock, starts, bounds=(LOWER, UPPER), batch=True)
    starts[1, 3] = np.nan
    with pytest.raises(gd.InputError, match=r"start 1 of x0 holds nan or inf \(coordinate 3\)"):
        gd.minimize(rosenbrock, starts, bounds=(LOWER, UPPER), batch=True)


def test_a_start_off_the_fixed_value_is_refused():
    x0 = X0.copy()
    x0[1] = 0.4
    with pytest.raises(gd.InputError, match=r"x0 violates the bounds: coordinate 1 is 0\.4, outside \[0\.5, 0\.5\]"):
        gd.minimize(rosenbrock_np, x0, gradient="central", bounds=(LOWER, UPPER))


def test_a_resumed_run_replays_what_was_measured(tmp_path):
    path = tmp_path / "run.jsonl"
    gd.minimize(rosenbrock_np, X0, gradient="forward", bounds=(LOWER, UPPER), max_evals=30, history=path)
    fun = Recording(rosenbrock_np)
    res = gd.minimize(fun, X0, gradient="forward", bounds=(LOWER, UPPER), max_evals=60, history=path, resume=True)
    assert len(fun.points) <= 60 - 30 + 1  # the first 30 were replayed, not measured again
    loaded = gd.History.load(path)
    assert all(len(r["x"]) == 5 and r["x"][1] == 0.5 for r in loaded.evaluations)
    assert res.nfev <= 60


def test_a_process_pool_gets_the_whole_point():
    with concurrent.futures.ProcessPoolExecutor(1) as pool:
        res = gd.minimize(rosenbrock_np, X0, gradient="central", bounds=(LOWER, UPPER), executor=pool, max_evals=60)
    assert res.x[1] == 0.5 and res.nfev <= 60


def test_expand_and_reduce():
    fixed = FixedParameters(np.array([False, True, False, True]), np.array([0.0, 7.0, 0.0, -1.0]),
                            to_user=np.asarray, jax_unravel=jnp.asarray)
    z = np.array([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(fixed.expand(z), [[1.0, 7.0, 2.0, -1.0], [3.0, 7.0, 4.0, -1.0]])
    np.testing.assert_array_equal(fixed.reduce(fixed.expand(z)), z)
    assert np.isnan(fixed.expand(z[0], fill=np.nan)[[1, 3]]).all()
    np.testing.assert_array_equal(fixed.expand_jax(jnp.asarray(z[0])), [1.0, 7.0, 2.0, -1.0])
    out = jax.jit(lambda v: fixed.expand_jax(v, fill=jnp.nan))(jnp.asarray(z[1]))
    assert np.isnan(np.asarray(out)[[1, 3]]).all() and float(out[2]) == 4.0
    assert pickle.loads(pickle.dumps(fixed)).key == fixed.key


def test_a_resume_without_the_fixed_parameter_names_the_start_not_the_size(tmp_path):
    # the history recorded the free count as the number of parameters: 'another number of
    # parameters (4 recorded, 5 given)', though both runs had 5 (found by helper-54's review)
    path = tmp_path / "run.jsonl"
    gd.minimize(rosenbrock_np, X0, gradient="forward", bounds=(LOWER, UPPER), max_evals=20, history=path)
    assert gd.History.load(path).meta["n"] == 5
    with pytest.raises(gd.InputError) as refused:
        gd.minimize(rosenbrock_np, X0, gradient="forward", bounds=(LOWER - 1, UPPER + 1), max_evals=40,
                    history=path, resume=True)
    assert "number of parameters" not in str(refused.value) and "start" in str(refused.value)
