"""The host loop's estimate made ahead on a device (gdtools.host_loop.PIPELINE): same results."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gdtools as gd
from gdtools import host_loop


def _run(monkeypatch, pipeline, fun, x0, **kwargs):
    monkeypatch.setattr(host_loop, "PIPELINE", pipeline)
    calls = []
    user_callback = kwargs.pop("callback", None)

    def callback(state):
        calls.append((state.iteration, float(state.fun), np.asarray(state.x).copy()))
        return user_callback(state) if user_callback else None

    result = gd.minimize(fun, x0, callback=callback, **kwargs)
    return result, calls


def _same(a, b, *, wasted=0):
    """``wasted``: evaluations of an estimate made ahead that the stop left unused (counted)."""
    (ra, ca), (rb, cb) = a, b
    np.testing.assert_array_equal(np.asarray(ra.x), np.asarray(rb.x))
    assert (ra.nit, ra.status, ra.nfev + wasted) == (rb.nit, rb.status, rb.nfev)
    assert ra.fun == rb.fun or (np.isnan(ra.fun) and np.isnan(rb.fun))
    assert [(i, f) for i, f, _ in ca] == [(i, f) for i, f, _ in cb]
    for (_, _, xa), (_, _, xb) in zip(ca, cb):
        np.testing.assert_array_equal(xa, xb)
    la = [r["loss"] for r in ra.history.iterations]
    lb = [r["loss"] for r in rb.history.iterations]
    np.testing.assert_array_equal(np.asarray(la, float), np.asarray(lb, float))


def rosen(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


@pytest.mark.parametrize("optimizer", [None, optax.adam(0.01)], ids=["lbfgs", "adam"])
def test_device_run_gives_the_same_results_ahead_or_not(monkeypatch, optimizer):
    x0 = jnp.zeros(5)
    runs = [_run(monkeypatch, p, rosen, x0, optimizer=optimizer, max_iters=25, tol=0.0) for p in (False, True)]
    _same(*runs)
    assert runs[1][0].nit == 25


def test_a_callback_stop_returns_the_same_point(monkeypatch):
    x0 = jnp.zeros(4)
    runs = [_run(monkeypatch, p, rosen, x0, optimizer=optax.adam(0.05), max_iters=50,
                 callback=lambda s: s.iteration == 6) for p in (False, True)]
    _same(*runs)
    assert runs[1][0].status == "callback" and runs[1][0].nit == 7


def blows_up(x):
    """Finite until x[0] passes 1, then nan (with a finite gradient there)."""
    return jnp.where(x[0] < 1.0, jnp.sum((x - 3.0) ** 2), jnp.nan)


def test_nonfinite_stops_at_the_same_place(monkeypatch):
    x0 = jnp.zeros(3)
    runs = [_run(monkeypatch, p, blows_up, x0, optimizer=optax.sgd(0.1), max_iters=40) for p in (False, True)]
    _same(*runs, wasted=1)  # the estimate made ahead of the nan was evaluated all the same
    assert runs[1][0].status == "nonfinite"


def test_a_nan_value_is_a_failure_and_the_last_finite_point_comes_back():
    """A JAX objective that returns nan where its gradient is finite: not 'converged' with
    fun = nan (as the host loop used to say), but the compiled loop's answer, one step back."""
    compiled = gd.minimize(blows_up, jnp.zeros(3), optimizer=optax.sgd(0.1), max_iters=40)
    hosted = gd.minimize(blows_up, jnp.zeros(3), optimizer=optax.sgd(0.1), max_iters=40, callback=lambda s: None)
    for result in (compiled, hosted):
        assert result.status == "nonfinite" and not result.success
        np.testing.assert_allclose(np.asarray(result.x), 0.6, rtol=1e-6)
        assert result.fun == pytest.approx(3 * 2.4 ** 2, rel=1e-6)


def test_the_dream_is_the_same_ahead_or_not(monkeypatch, tmp_path):
    from gdtools.dream.deepdream import Dreamer

    image = np.random.default_rng(0).uniform(0, 255, (40, 56, 3)).astype(np.float32)
    out = []
    for pipeline in (False, True):
        monkeypatch.setattr(host_loop, "PIPELINE", pipeline)
        out.append(Dreamer("block2", tile=32, octaves=2, steps=4, jitter=6)(image))
    np.testing.assert_array_equal(out[0], out[1])


def test_an_estimator_that_is_not_pure_is_not_run_ahead(monkeypatch):
    """A custom traceable estimator may count or log: it sees exactly one estimate per iteration."""
    from gdtools.estimators.autodiff import AutoDiff

    class Counting(AutoDiff):
        pure = False

        def __init__(self):
            super().__init__()
            self.calls = []

        def estimate(self, fun, x, *, iteration, **kwargs):
            self.calls.append(iteration)
            return super().estimate(fun, x, iteration=iteration, **kwargs)

    monkeypatch.setattr(host_loop, "PIPELINE", True)
    counting = Counting()
    result = gd.minimize(rosen, jnp.zeros(3), gradient=counting, optimizer=optax.adam(0.01), max_iters=5,
                         callback=lambda s: s.iteration == 2)
    assert result.nit == 3 and counting.calls == [0, 1, 2]


def test_the_update_is_compiled_once_per_run(monkeypatch, caplog):
    """The step taken ahead and the last one (taken as usual) share one compiled update."""
    import logging

    import jax

    monkeypatch.setattr(host_loop, "PIPELINE", True)
    jax.config.update("jax_log_compiles", True)
    try:
        with caplog.at_level(logging.WARNING, logger="jax"):
            gd.minimize(rosen, jnp.zeros(7), optimizer=optax.adam(0.02), max_iters=4, callback=lambda s: None)
    finally:
        jax.config.update("jax_log_compiles", False)
    steps = [r for r in caplog.records if r.getMessage().startswith("Compiling jit(step)")]
    assert len(steps) == 1


def test_a_device_run_that_stops_moving_stops_instead_of_spending_its_iterations():
    # float32 L-BFGS on the host loop (a callback keeps it there) reaches a point it cannot leave;
    # the value and gradient stay exactly as they were, and the run ends as the compiled one would.
    res = gd.minimize(rosen, jnp.zeros(10), callback=lambda state: None, max_iters=1000)
    assert res.status in ("no_progress", "converged") and res.nit < 200
    assert res.fun < 1e-8


def test_what_is_read_back_is_asked_for_before_the_estimate_made_ahead(monkeypatch):
    """A device runs its programs in order: the value and the largest gradient component of
    iteration k must be dispatched before the estimate of k + 1, or reading them back waits for
    that estimate too, and the device idles while the host records (the GPU step measured
    2.8 ms against the network's 1.9 ms with the order reversed)."""
    from gdtools.estimators.autodiff import AutoDiff

    events = []
    real = host_loop.stationarity

    def stationarity(grad, x, clip):
        events.append("largest")
        return real(grad, x, clip)

    class Logged(AutoDiff):
        def estimate(self, fun, x, *, iteration, **kwargs):
            events.append(f"estimate {iteration}")
            return super().estimate(fun, x, iteration=iteration, **kwargs)

    monkeypatch.setattr(host_loop, "PIPELINE", True)
    monkeypatch.setattr(host_loop, "stationarity", stationarity)
    gd.minimize(rosen, jnp.zeros(3), gradient=Logged(), optimizer=optax.adam(0.01), max_iters=3,
                callback=lambda s: None)
    assert events == ["estimate 0", "largest", "estimate 1", "largest", "estimate 2", "largest"]


@pytest.mark.parametrize("on_failure", ["stop", 1000.0])
def test_a_failed_noise_probe_at_x0_is_left_out_of_the_noise_level(on_failure):
    # fun(x, key) of unknown noise is measured at x0 NOISE_PROBES more times. One of them failing
    # left the noise unmeasured with "stop" (noise-free steps of 6e-6 on noise 1e-3: differences of
    # pure noise), and with a penalty made the penalty's distance from f a "noise" (steps at their
    # cap of 0.2). The successful measurements give the level: central steps of about 0.06.
    import jax

    calls = []

    def noisy(x, key):
        calls.append(None)
        if len(calls) == 2:  # the first noise probe
            raise RuntimeError("flaky")
        return float(np.sum((np.asarray(x) - 1.0) ** 2)) + 10.0 + 1e-3 * float(jax.random.normal(key))

    res = gd.minimize(noisy, np.zeros(3), gradient="central", max_evals=30, on_failure=on_failure)
    first_probe = res.history.evaluations[1 + host_loop.NOISE_PROBES]
    assert first_probe["iteration"] == 0 and 0.01 < first_probe["x"][0] < 0.15, first_probe


@pytest.mark.parametrize("optimizer", ["lbfgs", optax.lbfgs()])
def test_an_optax_line_search_on_a_black_box_is_refused_before_anything_is_measured(optimizer):
    # The update wanted the objective's value function only at the first step: the start and the
    # first gradient (an hour each for a tuned program) were measured, then an InputError. Bad
    # input is named before anything is measured.
    calls = []

    def black_box(x):
        calls.append(None)
        return float(np.sum((np.asarray(x) - 1.0) ** 2))

    with pytest.raises(gd.InputError, match="value function"):
        gd.minimize(black_box, np.zeros(3), gradient="central", optimizer=optimizer, max_evals=50)
    assert calls == []


def _float32_behind_a_float(d):
    """A quadratic computed in float32 and returned as a Python float: the type hides the precision."""
    d = np.asarray(d, np.float32)
    return lambda x: float(np.sum(d * (np.asarray(x, np.float32) - 1) ** 2))


@pytest.mark.parametrize("gradient", ["forward", "central"])
def test_probes_that_all_return_f_x_are_tried_again_with_steps_sized_for_float32(gradient):
    # Steps sized for float64 change no float32 value of 248: every difference was exactly 0, and
    # the run "converged" at x0 (scipy's L-BFGS-B does the same).
    fun = _float32_behind_a_float(np.logspace(0, 2, 10))
    x0 = np.zeros(10)
    res = gd.minimize(fun, x0, gradient=gradient)
    assert res.nit > 0
    assert res.fun < 1e-3 * fun(x0)


def test_a_budget_with_no_room_for_the_float32_sized_probes_is_no_convergence():
    # max_evals=21 for n = 10: x0 and 10 probes all returning f(x), and no room for 10 more; the
    # zero difference "converged" at x0, f = 248, a success
    fun = _float32_behind_a_float(np.logspace(0, 2, 10))
    res = gd.minimize(fun, np.zeros(10), gradient="forward", max_evals=21)
    assert not res.success and res.status == "too_small"
    assert "needs 22 evaluations" in res.message


def test_a_flat_objective_still_converges_after_one_more_estimate_with_float32_steps():
    n = 3
    res = gd.minimize(lambda x: float(np.floor(np.sum(x))), np.full(n, 0.5), gradient="forward")
    assert res.success and res.status == "converged"
    assert res.nfev == 1 + n + n  # x0, the float64-sized probes, the float32-sized ones; no more


@pytest.mark.parametrize("gradient", ["forward", "central"])
def test_integer_parameters_on_a_plateau_are_not_probed_again_with_float32_steps(gradient):
    # An Int moves by its unit whatever the precision: the retry with steps sized for float32 ran
    # the very same probes again (forward: (51, 50) and (50, 51) measured twice each).
    space = gd.Space(a=gd.Int(0, 100), b=gd.Int(0, 100))
    calls = []

    def program(p):
        calls.append((p["a"], p["b"]))
        return float((p["a"] // 10 - 3) ** 2 + (p["b"] // 10 - 2) ** 2)

    res = gd.minimize(program, space=space, gradient=gradient, max_evals=50)
    assert len(calls) == len(set(calls)) == res.nfev


def test_a_run_whose_probes_all_fail_goes_back_to_the_best_point_measured():
    # A setting that crashes above a = 0.55 (a tune run with --penalty). Once a step landed there,
    # every probe failed, read as the penalty: a flat estimate, so the run never left, and 27 of its
    # 30 evaluations failed.
    def program(p):
        if p["a"] > 0.55:
            raise RuntimeError("crashed")
        return (p["a"] - 0.3) ** 2 + (p["b"] - 7) ** 2

    res = gd.minimize(program, {"a": 0.5, "b": 10}, space=gd.Space(a=gd.Real(0, 1), b=gd.Int(1, 20)),
                      gradient="spsa", on_failure=100.0, max_evals=30, seed=0)
    failed = sum(e.get("status") == "failed" for e in res.history.evaluations)
    assert failed <= 10
    assert res.fun < 1.0


def test_a_run_whose_steps_land_in_the_failing_region_again_and_again_stops():
    # A fixed gain steps from the best point into the region that fails, every probe there fails,
    # the run goes back, and the same step follows: 1500 times, to max_iters (3003 evaluations).
    def fun(x):
        if x[0] + x[1] >= 2.0:
            raise RuntimeError("boom")
        return float((x[0] - 3) ** 2 + (x[1] - 3) ** 2)

    res = gd.minimize(fun, np.zeros(2), gradient="forward", on_failure=100.0, optimizer=optax.sgd(0.4))
    assert res.status == "failed" and not res.success
    assert "every probe failed" in res.message and "boom" in res.message
    assert res.nfev <= 40
    assert res.fun < 18.0  # the best point measured, below the start's 18


def test_probes_that_all_return_finite_values_but_overflow_are_a_nonfinite_gradient_not_a_failure():
    """Values of ±1e308 on either side of x: every probe measured, their difference inf. That was
    reported as 3 gradient estimates with 'a failed probe', 'the last error: None', after measuring
    the same probes three times."""
    def cliff(x):
        return float(1e308 if x[0] > 0 else -1e308) + x[1] ** 2

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's overflow in the difference
        res = gd.minimize(cliff, np.array([0.0, 1.0]), gradient="central")
    assert res.status == "nonfinite" and "None" not in res.message
    assert res.nfev <= 5  # the start and one estimate's 4 probes, not three estimates'
    np.testing.assert_array_equal(res.x, [0.0, 1.0])


def test_a_subclass_that_keeps_gdtools_differences_overflows_as_they_do():
    """A subclass of Central (its estimate inherited) was taken for an estimator of one's own: the
    same overflowing differences were an InputError calling its gradient its bug."""
    class MyCentral(gd.estimators.Central):
        pass

    def cliff(x):
        return float(1e308 if x[0] > 0 else -1e308) + x[1] ** 2

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = gd.minimize(cliff, np.array([0.0, 1.0]), gradient=MyCentral())
    assert res.status == "nonfinite"
    np.testing.assert_array_equal(res.x, [0.0, 1.0])


@pytest.mark.parametrize("x0", [np.zeros(5), jnp.zeros(5)], ids=["numpy", "device"])
def test_autodiff_reads_the_line_search_value_and_gradient_as_the_compiled_program_does(x0):
    # L-BFGS's zoom line search keeps the value and gradient at the point it accepts; the host loop
    # (a callback, max_time) computed them again there: 90 evaluations against the compiled
    # program's 51 for the same 37 iterations on the 5-d Rosenbrock.
    def rosenbrock(x):
        return jnp.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)

    compiled = gd.minimize(rosenbrock, x0)
    hosted = gd.minimize(rosenbrock, x0, callback=lambda state: None)
    assert hosted.nit == compiled.nit and np.allclose(hosted.x, compiled.x, atol=1e-6)
    assert hosted.success and abs(hosted.nfev - compiled.nfev) <= 1, (hosted.nfev, compiled.nfev)


@pytest.mark.parametrize("gradient", ["central", "forward"])
def test_the_smallest_budget_that_pays_for_a_step_takes_it_on_an_exact_objective(gradient):
    # The start, one gradient estimate and one more evaluation (what gdtools tune asks for at least):
    # the one more was kept for a final measurement that an exact line-search run never makes, so
    # the line search had no trial left, and central differences spent 2n + 1 of 2n + 2 unmoved.
    n = 3
    budget = 2 + gd.estimators.resolve(gradient).evaluations(n)
    res = gd.minimize(lambda x: float(np.sum((np.asarray(x) - 0.5) ** 2)), np.zeros(n), gradient=gradient,
                      max_evals=budget)
    assert res.nfev <= budget and res.nit == 1
    assert res.fun < 0.1  # 0.75 at the start: the step was taken


@pytest.mark.parametrize("optimizer", [
    optax.chain(optax.lbfgs(), optax.scale(0.5)),
    optax.named_chain(("lbfgs", optax.lbfgs()), ("scale", optax.scale(0.5))),
], ids=["chain", "named_chain"])
def test_a_transformation_after_the_line_search_has_the_value_and_gradient_computed(optimizer):
    # the search's state holds them at its own trial point, which scale(0.5) then moves from: read
    # from the state, the run took f there for f at x (as the compiled loop did, cc157d3)
    def quadratic(x):
        return jnp.sum((x - jnp.arange(3.0)) ** 2)

    res = gd.minimize(quadratic, jnp.full(3, 5.0), optimizer=optimizer, max_iters=3, callback=lambda s: None)
    assert abs(float(res.fun) - float(quadratic(jnp.asarray(res.x)))) < 1e-5
    for record in res.history.iterations:
        assert abs(record["loss"] - float(quadratic(jnp.asarray(record["x"])))) < 1e-4


def test_an_optimizer_whose_state_names_a_value_and_grad_of_its_own_gets_each_gradient_computed():
    # No line search: its state's "value" (a step size) and "grad" (a momentum) were read as the
    # value and gradient at the new point, as a line search's are: with a callback the run followed
    # the momentum off to 1e17, while the compiled program (which reads them only from an optimizer
    # that takes value_fn) converged to [3, 3]
    from typing import NamedTuple

    class State(NamedTuple):
        value: jnp.ndarray
        grad: jnp.ndarray

    def update(g, state, params=None):
        momentum = 0.5 * state.grad + g
        return -state.value * momentum, State(state.value, momentum)

    momentum = optax.GradientTransformation(lambda p: State(jnp.asarray(0.1, p.dtype), jnp.zeros_like(p)), update)
    fun = lambda x: jnp.sum((x - 3.0) ** 2)  # noqa: E731
    hosted = gd.minimize(fun, np.array([0.0, 1.0]), optimizer=momentum, max_iters=100, callback=lambda state: None)
    assert hosted.success and np.allclose(hosted.x, 3.0, atol=1e-5), hosted.x


def test_a_start_that_failed_once_with_max_failures_1_is_said_to_have_failed_once():
    # the message read 'it failed 1 times in a row (--max-failures 1)'
    def fails(x):
        raise RuntimeError("no licence")

    with pytest.raises(gd.InputError) as info:
        gd.minimize(fails, np.zeros(2), gradient="central", max_failures=1)
    assert "it failed once (max_failures=1)" in str(info.value) and "1 times" not in str(info.value)


def test_a_failed_start_read_as_the_penalty_is_not_taken_for_f_at_x0():
    # on_failure=100 and a start that failed once: the penalty was told to the estimator as f(x0) of
    # an exact objective, and forward differences took (f(x0 + h) - 100) / h for the first gradient
    # (largest component 5.8e9, not 6): a wasted first step, and a grad-norm curve off by 9 decades
    calls = []

    def flaky_start(x):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("flaky start")
        return float(np.sum((np.asarray(x) - np.array([1.0, -2.0, 3.0])) ** 2))

    res = gd.minimize(flaky_start, np.zeros(3), gradient="forward", on_failure=100.0, max_evals=200)
    first = res.history.iterations[0]
    assert first["grad_norm"] == pytest.approx(6.0, rel=1e-3)
    assert res.success and np.allclose(res.x, [1.0, -2.0, 3.0], atol=1e-5)


def test_failures_in_a_row_among_the_starts_noise_probes_end_the_run_as_failed():
    # the start of a fun(x, key) measured, then its noise probes at x0 failed max_failures times in a
    # row: EvaluationFailed escaped minimize as an exception, where failures in the iterations end
    # the run with a result (the best point measured: here x0, as measured)
    import jax

    calls = []

    def flaky(x, key):
        calls.append(1)
        if 2 <= len(calls) <= 4:
            raise RuntimeError("flaky")
        return float(np.sum((np.asarray(x) - 1.0) ** 2) + 0.01 * float(jax.random.normal(key)))

    res = gd.minimize(flaky, np.zeros(2), gradient="spsa", max_evals=40)
    assert res.status == "failed" and not res.success
    assert "3 consecutive evaluations failed" in res.message and "RuntimeError: flaky" in res.message
    assert res.nfev == len(calls) == 4
    np.testing.assert_array_equal(res.x, np.zeros(2))
    assert res.fun == res.history.evaluations[0]["value"]


def test_an_estimator_run_before_does_not_lend_its_f_at_x0_to_a_failed_start():
    # Forward() given to a run of g1, then to a run of g2 from the same x0 whose start failed (read
    # as on_failure=100): the estimator still held g1(x0) from the first run and took it for g2's
    # f(x0), its first gradient (f2(x0 + h) - f1(x0)) / h
    estimator = gd.estimators.Forward()
    gd.minimize(lambda x: float(np.sum(np.asarray(x) ** 2)) + 50.0, np.zeros(2), gradient=estimator, max_evals=20)
    calls = []

    def flaky_start(x):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("flaky start")
        return float(np.sum((np.asarray(x) - 1.0) ** 2))

    res = gd.minimize(flaky_start, np.zeros(2), gradient=estimator, on_failure=100.0, max_evals=60)
    assert res.history.iterations[0]["grad_norm"] == pytest.approx(2.0, rel=1e-3)


@pytest.mark.parametrize("cls", [gd.estimators.Forward, gd.estimators.Central, gd.estimators.SPSA,
                                 gd.estimators.Smoothing])
def test_an_estimator_run_before_does_not_lend_its_level_of_f_to_a_failed_start(cls):
    # The noise-aware steps compare the noise with |f|, learnt from the start: an estimator object
    # given to a run of an objective near 1e6 kept that level, and a later run with noise=0.5 whose
    # start failed (read as on_failure=100) sized its steps from it, not as a fresh estimator does
    def failed_start(x):
        if not np.any(x):
            raise RuntimeError("the start failed")
        return float(np.sum((np.asarray(x) - 1.0) ** 2)) + 5.0

    def run(estimator):
        return gd.minimize(failed_start, np.zeros(3), gradient=estimator, on_failure=100.0, noise=0.5,
                           max_evals=30, seed=1)

    reused = cls()
    gd.minimize(lambda x: float(np.sum(np.asarray(x) ** 2)) + 1e6, np.zeros(3), gradient=reused, noise=0.5,
                max_evals=30, seed=1)
    np.testing.assert_array_equal(run(reused).history.x, run(cls()).history.x)


@pytest.mark.parametrize("gradient", ["forward", "central"])
def test_a_probe_of_a_fun_x_key_that_failed_is_measured_again_with_another_key(gradient):
    # measured again with the key it failed with, a fun(x, key) whose failures depend on the key
    # failed again for certain (30% of keys failing: 46% of evaluations failed) (found by h70)
    bad_keys, calls = set(), []

    def unlucky(x, key):
        calls.append(1)
        word = tuple(np.asarray(jax.random.key_data(key)).ravel().tolist())
        if len(calls) == 5:
            bad_keys.add(word)
        if word in bad_keys:  # a draw of the simulation that diverges, whatever x
            raise RuntimeError("diverged")
        return float(np.sum((np.asarray(x) - 1.0) ** 2))

    res = gd.minimize(unlucky, np.zeros(3), gradient=gradient, max_evals=12, on_failure="stop", max_failures=50)
    failed = [tuple(r["x"]) for r in res.history.evaluations if r["status"] != "ok"]
    assert failed and len(set(failed)) == len(failed), failed  # no probe failed twice



def test_the_noise_probes_at_x0_run_side_by_side_on_an_executor():
    # fun(x, key) of unknown noise is measured at x0 NOISE_PROBES more times: they were asked for
    # one at a time, so an executor (a thread pool, a dask cluster) ran them one after another,
    # three times the start's wait before the first gradient. Here each waits for the others.
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import jax

    together = [threading.Barrier(host_loop.NOISE_PROBES, timeout=20)]
    calls = []

    def noisy(x, key):
        calls.append(None)
        if together[0] is not None and 2 <= len(calls) <= 1 + host_loop.NOISE_PROBES:
            together[0].wait()
        return float(np.sum((np.asarray(x) - 1.0) ** 2)) + 1e-3 * float(jax.random.normal(key))

    with ThreadPoolExecutor(host_loop.NOISE_PROBES) as pool:
        res = gd.minimize(noisy, np.zeros(2), gradient="central", max_evals=12, seed=4, executor=pool)
    by_index = lambda history: sorted(history.evaluations, key=lambda r: r["index"])  # noqa: E731
    probes = by_index(res.history)[1:1 + host_loop.NOISE_PROBES]
    assert all(r["status"] == "ok" and r["x"] == [0.0, 0.0] for r in probes), probes
    together[0] = None  # the same run measured here: the same keys, so the same values
    alone = gd.minimize(noisy, np.zeros(2), gradient="central", max_evals=12, seed=4)
    assert [r["value"] for r in by_index(alone.history)] == [r["value"] for r in by_index(res.history)]
