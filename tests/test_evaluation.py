import math
import multiprocessing
import os
import pickle
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gdtools as gd
from gdtools.evaluation import Evaluator, Measurement, as_measurement
from gdtools.host_loop import NOISE_PROBES


def sphere(x):
    return float(np.sum(np.asarray(x) ** 2))


def pid_sphere(x):
    return gd.Measurement(value=sphere(x), params={"pid": os.getpid()})


def test_as_measurement_accepts_numbers_and_refuses_the_rest():
    assert as_measurement(2).value == 2.0
    assert as_measurement(np.float32(1.5)).value == 1.5
    with pytest.raises(gd.InputError, match="scalar"):
        as_measurement([1.0, 2.0])
    with pytest.raises(gd.InputError, match="the objective returned str 'fast', expected a real scalar"):
        as_measurement("fast")
    with pytest.raises(gd.InputError, match=r"returned None, expected a real scalar \(a missing return statement\?\)"):
        as_measurement(None)


@pytest.mark.parametrize("kwargs, message", [
    (dict(value="1.0"), "Measurement value must be a real number, got str '1.0'"),
    (dict(value=None), "Measurement value must be a real number, got NoneType None"),
    (dict(value=[1.0]), r"Measurement value must be a real number, got list \[1.0\]"),
    (dict(value=True), "Measurement value must be a real number, got bool True"),
    (dict(value=1.0, status="fail"), "Measurement status must be 'ok' or 'failed', got 'fail'"),
])
def test_a_measurement_built_wrong_is_named_where_it_is_built(kwargs, message):
    with pytest.raises(gd.InputError, match=message):
        Measurement(**kwargs)


def test_a_measurement_takes_any_real_scalar_as_a_float():
    for value in (2, np.float32(1.5), np.array(3.0), jax.numpy.float32(0.5)):
        m = Measurement(value=value)
        assert type(m.value) is float and m.value == float(value)


def test_measurement_noise_from_repeats():
    m = Measurement(value=1.0, samples=(1.0, 1.1, 0.9, 1.0), statistic="median", spread=0.08)
    assert m.noise == pytest.approx(1.2533 * 0.08 / 2)
    assert math.isnan(Measurement(value=1.0).noise)


def test_a_measurement_without_a_spread_gets_its_samples_spread():
    m = Measurement(value=2.0, samples=(1.0, 2.0, 3.0), statistic="median")
    assert m.spread == pytest.approx(1.0) and m.noise == pytest.approx(1.2533 / math.sqrt(3))
    assert Measurement(value=1.0, samples=(1.0, math.nan, 3.0)).spread == pytest.approx(math.sqrt(2))
    assert Measurement(value=2.0, samples=tuple(jnp.array([1.0, 2.0, 3.0]))).spread == pytest.approx(1.0)  # JAX scalars
    assert math.isnan(Measurement(value=1.0, samples=(1.0,)).spread)
    assert math.isnan(Measurement(value=1.0, samples=(1.0, 1.0), spread=math.nan).spread)  # unknown, said so


def test_a_failed_repeat_does_not_count_towards_the_noise_of_the_mean():
    # nan samples were counted in sqrt(n): the noise of a mean of 2 read as that of a mean of 4
    m = Measurement(value=2.0, samples=(1.0, math.nan, 3.0, math.nan), statistic="mean")
    assert m.noise == pytest.approx(math.sqrt(2) / math.sqrt(2))


@pytest.mark.parametrize("spread", [-0.1, "0.1", [0.1, 0.2], True])
def test_a_spread_that_is_no_standard_deviation_is_refused(spread):
    # a negative spread was taken as given, and its noise estimate came out negative
    with pytest.raises(gd.InputError, match="Measurement spread must be"):
        Measurement(value=1.0, samples=(1.0, 1.1), spread=spread)


def test_a_spread_given_as_a_numpy_or_jax_number_is_kept_as_a_float():
    assert Measurement(value=1.0, spread=np.float32(0.5)).spread == 0.5
    assert type(Measurement(value=1.0, spread=jnp.float32(0.5)).spread) is float


def test_repeats_without_a_spread_are_noise_the_engine_sees():
    # Samples given without `spread` were taken for a noise-free objective: central differences
    # then took the line search meant for exact functions and probed values up to 5e9.
    rng = np.random.default_rng(0)

    def objective(p):
        samples = _bowl(p) * (1.0 + 0.03 * rng.standard_normal(5))
        return gd.Measurement(value=float(np.median(samples)), samples=tuple(samples), statistic="median")

    res = gd.minimize(objective, space=BOX, gradient="central", max_evals=60, seed=0)
    assert res.history.meta["optimizer"] == "default (Spall's gain)"
    assert res.success and _bowl(res.x) < 1.01, (res.x, res.message)


def test_batch_goes_through_the_executor_and_keeps_order():
    h = gd.History()
    points = np.arange(12.0).reshape(6, 2)
    with ThreadPoolExecutor(3) as pool:
        ev = Evaluator(sphere, to_arg=lambda x: x, history=h, executor=pool)
        values = ev(points)
    np.testing.assert_allclose(values, np.sum(points ** 2, axis=1))
    assert sorted(r["index"] for r in h.evaluations) == list(range(6))


def shifted_sphere(x, shift):
    return sphere(np.asarray(x) - shift)


def test_extra_arguments_travel_with_the_objective_to_other_processes():
    ev = Evaluator(shifted_sphere, to_arg=lambda x: x, args=(np.array([1.0, 2.0]),))
    call = pickle.loads(pickle.dumps(ev._call))  # what an executor sends to a worker process
    assert call(np.array([1.0, 2.0])).value == 0.0
    np.testing.assert_allclose(ev(np.array([[0.0, 0.0], [1.0, 3.0]])), [5.0, 1.0])


def test_process_pool_runs_evaluations_in_other_processes():
    # JAX is multithreaded: worker processes must be spawned, not forked.
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        res = gd.minimize(pid_sphere, np.ones(3), gradient="central", max_evals=30, executor=pool, tol=0.0)
    pids = {r["params"]["pid"] for r in res.history.evaluations}
    assert os.getpid() not in pids
    assert res.fun < sphere(np.ones(3))


def test_failures_stop_after_max_failures_and_nothing_measured_is_lost():
    calls = []

    def flaky(x):
        calls.append(x)
        if len(calls) > 5:
            raise RuntimeError("device unplugged")
        return sphere(x)

    res = gd.minimize(flaky, np.ones(2), gradient="spsa", max_evals=100, max_failures=3)
    assert not res.success and res.status == "failed"
    assert "device unplugged" in res.message and "3 consecutive" in res.message
    statuses = [r["status"] for r in res.history.evaluations]
    # The third failure stops the run; its batch partner was measured too and is kept.
    assert statuses.count("ok") == 5 and statuses.count("failed") >= 3
    assert np.isfinite(res.fun)  # the best measured point is kept


def test_penalty_policy_replaces_failed_values():
    def half_broken(x):
        if x[0] > 1.2:
            return gd.Measurement(value=math.nan, status="failed", error="timeout")
        return sphere(x)

    res = gd.minimize(half_broken, np.ones(2), gradient="spsa", max_evals=60, on_failure=100.0)
    assert res.nfev <= 61 and np.isfinite(res.fun)


def test_replay_reuses_recorded_values_until_the_run_diverges():
    h = gd.History()
    Evaluator(sphere, to_arg=lambda x: x, history=h)(np.array([[1.0, 2.0], [3.0, 4.0]]))
    calls = []
    counting = lambda x: calls.append(x) or sphere(x)
    ev = Evaluator(counting, to_arg=lambda x: x, replay=h.evaluations)
    np.testing.assert_allclose(ev(np.array([[1.0, 2.0], [3.0, 5.0]])), [5.0, 34.0])
    assert len(calls) == 1  # the first point was replayed, the changed second one measured


@pytest.mark.parametrize("policy", ["ignore", math.nan, math.inf, True])
def test_bad_policy_settings_are_refused(policy):
    with pytest.raises(gd.InputError, match="on_failure"):
        Evaluator(sphere, to_arg=lambda x: x, on_failure=policy)
    with pytest.raises(gd.InputError, match="max_failures"):
        Evaluator(sphere, to_arg=lambda x: x, max_failures=0)


def test_resume_reaches_the_uninterrupted_result(tmp_path):
    def noisy(x, key):
        import jax

        return sphere(np.asarray(x) - 0.5) * (1 + 0.01 * float(jax.random.normal(key)))

    full = gd.minimize(noisy, np.zeros(3), gradient="spsa", max_evals=80, seed=5,
                       history=str(tmp_path / "full.jsonl"))
    # Simulate a crash: keep the first half of the file's lines.
    lines = (tmp_path / "full.jsonl").read_text().splitlines()
    (tmp_path / "cut.jsonl").write_text("\n".join(lines[: len(lines) // 2]) + "\n")
    calls = []

    def counting(x, key):
        calls.append(1)
        return noisy(x, key)

    resumed = gd.minimize(counting, np.zeros(3), gradient="spsa", max_evals=80, seed=5,
                          history=str(tmp_path / "cut.jsonl"), resume=True)
    np.testing.assert_array_equal(resumed.x, full.x)
    assert resumed.fun == full.fun
    assert len(calls) < full.nfev  # recorded evaluations were not measured again
    after = gd.History.load(tmp_path / "cut.jsonl")
    assert len(after.evaluations) == full.nfev
    assert [r["loss"] for r in after.iterations] == [r["loss"] for r in full.history.iterations]


def test_a_run_stopped_by_failures_is_retried_when_resumed(tmp_path):
    # A run that stopped on max_failures failures in a row (a broken program, a full disk): its
    # resume replayed the failures and stopped again with the stale error, measuring nothing.
    path, broken = tmp_path / "run.jsonl", [False]

    def program(x):
        if broken[0]:
            raise OSError("disk full")
        return sphere(np.asarray(x) - 0.5)

    full = gd.minimize(program, np.zeros(3), gradient="spsa", max_evals=40, seed=2)
    calls = []

    def breaking(x):
        calls.append(1)
        broken[0] = broken[0] or len(calls) > 15
        return program(x)

    stopped = gd.minimize(breaking, np.zeros(3), gradient="spsa", max_evals=40, seed=2, history=str(path))
    assert stopped.status == "failed" and "disk full" in stopped.message
    assert [r["status"] for r in stopped.history.evaluations][-3:] == ["failed"] * 3
    broken[0] = False  # fixed
    resumed = gd.minimize(program, np.zeros(3), gradient="spsa", max_evals=40, seed=2, history=str(path),
                          resume=True)
    np.testing.assert_array_equal(resumed.x, full.x)  # the failures measured again, as never made
    after = gd.History.load(path)
    assert all(r["status"] == "ok" for r in after.evaluations) and len(after.evaluations) == full.nfev
    assert after.meta["seed"] == 2 and after.meta["estimator"] == stopped.history.meta["estimator"]  # kept


def test_a_parallel_run_stopped_by_failed_probes_is_retried_when_resumed(tmp_path):
    # With a pool, each pair's failing probe (quick) was written before the probe that succeeded:
    # the failures that ended the run (by index) did not end the file, so the resume, the program
    # fixed, replayed them and stopped again at once with the stale error, measuring nothing
    import time

    path, broken = tmp_path / "run.jsonl", [True]
    space = gd.Space(x=gd.Real(0, 10), y=gd.Int(1, 100, log=True))

    def program(p):
        if p["x"] < 3.5 and broken[0]:
            raise MemoryError("out of memory")
        time.sleep(0.1)
        return (p["x"] - 3) ** 2 + (p["y"] - 10) ** 2 / 100 + 1

    with ThreadPoolExecutor(2) as pool:
        stopped = gd.minimize(program, space=space, max_evals=40, executor=pool, history=str(path))
    assert stopped.status == "failed" and "out of memory" in stopped.message, stopped
    statuses = [r["status"] for r in gd.History.load(path).evaluations]
    assert statuses[-2:] == ["failed", "ok"]  # the failure first in the file, its index last
    broken[0] = False  # fixed
    with ThreadPoolExecutor(2) as pool:
        resumed = gd.minimize(program, space=space, max_evals=40, executor=pool, history=str(path), resume=True)
    assert resumed.status == "max_evals", resumed
    after = gd.History.load(path)
    assert len(after.evaluations) == resumed.nfev and sorted(r["index"] for r in after.evaluations) == list(
        range(resumed.nfev))


def test_space_runs_record_each_evaluation_in_user_units():
    space = gd.Space(rate=gd.Int(10, 1000, log=True), alpha=gd.Real(0.0, 1.0))
    res = gd.minimize(lambda p: (np.log(p["rate"]) - 4.0) ** 2 + (p["alpha"] - 0.3) ** 2, space=space,
                      gradient="spsa", max_evals=30)
    params = [r["params"] for r in res.history.evaluations]
    assert all(set(p) == {"rate", "alpha"} for p in params)
    assert all(isinstance(p["rate"], int) and 10 <= p["rate"] <= 1000 for p in params)


def test_a_measured_noise_level_is_kept_while_single_samples_arrive():
    ev = Evaluator(sphere, to_arg=lambda x: x)
    ev.observe_noise(0.25)
    ev(np.zeros((50, 2)))
    assert ev.noise == 0.25


#: The noisy-timing tests' problem: a bowl over a box, minimum 1 at a = 1.3, b = 0.6.
BOX = gd.Space(a=gd.Real(0.0, 2.0), b=gd.Real(0.0, 2.0))


def _bowl(p):
    return 1.0 + (p["a"] - 1.3) ** 2 + (p["b"] - 0.6) ** 2


def _timed_once(rng):
    """The bowl as a wall-time-like objective measured once a point: 3% multiplicative noise, one
    sample, and the Measurement says it is noisy by nature."""
    def objective(p):
        v = _bowl(p) * (1.0 + 0.03 * rng.standard_normal())
        return gd.Measurement(value=v, samples=(v,), statistic="median", noisy=True)
    return objective


@pytest.mark.parametrize("gradient, probes", [("central", NOISE_PROBES), ("spsa", 0)])
def test_a_time_measured_once_a_point_gets_its_noise_measured_for_finite_differences(gradient, probes):
    # One sample a point shows no spread. Taken for an exact function, central differences used
    # scipy's noise-free steps, differenced pure noise and never left the start. Their noise is now
    # measured at x0 by NOISE_PROBES more evaluations. SPSA keeps its smallest perturbation.
    res = gd.minimize(_timed_once(np.random.default_rng(0)), space=BOX, gradient=gradient,
                      max_evals=60, seed=0)
    starts = [r for r in res.history.evaluations[: 1 + NOISE_PROBES] if r["x"] == [0.5, 0.5]]
    assert len(starts) == 1 + probes and all(r.get("noisy") for r in starts)
    assert abs(res.x["a"] - 1.3) < 0.15 and abs(res.x["b"] - 0.6) < 0.15, res.x
    assert res.success


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_finite_differences_on_an_objective_found_noisy_at_x0_take_the_decaying_gain(seed):
    # The default optimizer of finite differences is a line search, for exact objectives. On a
    # timing it compared single noisy values, took steps uphill by luck, climbed into a corner and
    # ended `worse`, returning the start (these seeds). Noise found at x0 now selects the gain.
    res = gd.minimize(_timed_once(np.random.default_rng(seed)), space=BOX, gradient="central",
                      max_evals=60, seed=seed)
    assert res.success and _bowl(res.x) < 1.01, (res.x, res.message)
    assert res.history.meta["optimizer"] == "default (Spall's gain)"


def test_resuming_a_run_recorded_before_the_gain_could_take_over_keeps_its_line_search(tmp_path):
    # A history whose meta says only "default" was written by an engine that kept the line search
    # on a noisy objective: the resumed run must take that path, or its replay diverges and the
    # file mixes two runs.
    import json

    path = tmp_path / "old.jsonl"
    path.write_text(json.dumps({"kind": "meta", "format": 1, "estimator": {"name": "central", "step": None},
                                "optimizer": "default", "seed": 1, "n": 2, "space": BOX.describe()}) + "\n")
    kwargs = dict(space=BOX, gradient="central", max_evals=30, seed=1)
    res = gd.minimize(_timed_once(np.random.default_rng(1)), history=str(path), resume=True, **kwargs)
    assert res.history.meta["optimizer"] == "default (L-BFGS, Armijo line search)"
    fresh = gd.minimize(_timed_once(np.random.default_rng(1)), **kwargs)
    assert fresh.history.meta["optimizer"] == "default (Spall's gain)"


def test_a_measurement_that_does_not_say_it_is_noisy_costs_no_extra_start_evaluations():
    space = gd.Space(a=gd.Real(0.0, 2.0))
    res = gd.minimize(lambda p: gd.Measurement(value=(p["a"] - 1.3) ** 2, samples=((p["a"] - 1.3) ** 2,)),
                      space=space, gradient="central", max_evals=20)
    assert [r["x"] for r in res.history.evaluations[:2]] != [[0.5], [0.5]]


def test_failing_probes_that_alternate_with_successes_stop_the_run():
    # Every probe above 50 fails and every one below succeeds: no max_failures failures come in a
    # row, but no gradient can be formed either. The run stops rather than spend its budget at the
    # start, and reports a point it measured, with the value measured there.
    space = gd.Space(x=gd.Real(1.0, 100.0))

    def crashes_above_50(p):
        if p["x"] > 50:
            raise RuntimeError("crash above 50")
        return p["x"]

    res = gd.minimize(crashes_above_50, {"x": 49.0}, space=space, gradient="spsa", max_evals=60)
    assert not res.success and res.status == "failed"
    assert "in a row had a failed probe" in res.message and "crash above 50" in res.message
    assert res.nfev < 20
    assert res.fun == crashes_above_50(res.x)


def test_a_start_that_fails_every_time_is_an_error_and_one_that_fails_once_is_measured_again():
    def always(x):
        raise RuntimeError("no licence")

    with pytest.raises(gd.InputError, match="x0, the start point: it failed 3 times.*no licence"):
        gd.minimize(always, np.ones(2), gradient="spsa", max_evals=20)
    calls = []

    def unlucky_once(x):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("transient")
        return sphere(x)

    res = gd.minimize(unlucky_once, np.ones(2), gradient="spsa", max_evals=20)
    assert res.success and res.history.evaluations[1]["value"] == sphere(np.ones(2))


def test_a_run_where_every_evaluation_failed_is_not_a_success():
    def always(x):
        raise RuntimeError("no licence")

    res = gd.minimize(always, np.ones(2), gradient="spsa", max_evals=200, on_failure=1e3)
    assert not res.success and res.status == "failed"
    assert "Every evaluation failed" in res.message and "no licence" in res.message
    assert math.isnan(res.fun)  # never the penalty, which measured nothing
    # the start and the first gradient's probes all failed: the run stops there, not at the budget
    assert res.nfev == 3 and len(res.history.evaluations) == 3


def test_a_run_whose_start_failed_goes_on_once_a_probe_succeeds():
    def edge(x):
        if x[0] >= 1.0:  # the start fails; probes below it do not
            raise RuntimeError("too large")
        return float(np.sum((np.asarray(x) - 0.5) ** 2))

    res = gd.minimize(edge, np.ones(2), gradient="central", max_evals=100, on_failure=10.0)
    assert res.fun < 0.1 and res.nfev > 5


class _CannotSend:
    """An executor whose futures fail as a process pool's do for an objective it cannot pickle."""

    def submit(self, fn, *args):
        from concurrent.futures import Future

        future = Future()
        future.set_exception(pickle.PicklingError("Can't pickle <function <lambda>>: attribute lookup failed"))
        return future


def test_an_objective_the_executor_cannot_send_is_an_error_not_a_failed_measurement():
    with pytest.raises(gd.InputError, match="could not be sent.*module level"):
        gd.minimize(lambda x: sphere(x), np.ones(2), gradient="spsa", max_evals=12,
                    executor=_CannotSend(), on_failure=1e3)


def test_the_best_measured_point_is_tracked():
    ev = Evaluator(lambda x: math.nan if x[0] > 2 else sphere(x), to_arg=lambda x: x, on_failure=7.0)
    ev(np.array([[2.0, 0.0], [1.0, 1.0], [3.0, 0.0]]))
    np.testing.assert_array_equal(ev.best_x, [1.0, 1.0])
    assert ev.best_value == 2.0 and ev.successes == 2  # the penalty stood for a failure: not a value


def test_the_best_point_of_the_batch_that_ends_the_run_is_kept():
    ev = Evaluator(lambda x: math.nan if x[0] > 2 else sphere(x), to_arg=lambda x: x, max_failures=1)
    with pytest.raises(gd.EvaluationFailed):
        ev(np.array([[1.0, 1.0], [3.0, 0.0]]))
    np.testing.assert_array_equal(ev.best_x, [1.0, 1.0])


def test_budget_bounds_the_start_measured_again_and_a_penalty_is_never_the_value():
    calls = []

    def fails_four_times(x):
        calls.append(1)
        if len(calls) <= 4:
            raise RuntimeError("not yet")
        return sphere(x)

    with pytest.raises(gd.InputError, match="finite value at x0"):
        gd.minimize(fails_four_times, np.ones(2), gradient="spsa", max_evals=4, max_failures=5)
    assert len(calls) == 4  # the budget, not one more

    def always(x):
        raise RuntimeError("no licence")

    res = gd.minimize(always, np.ones(2), gradient="spsa", max_evals=1, on_failure=1e3)
    assert not res.success and math.isnan(res.fun)


def test_nan_at_a_line_search_trial_step_shortens_the_step_instead_of_failing_the_run():
    # nan beyond 0.6 (outside the objective's domain): the trial steps that land there are not
    # failures of the run; the search steps shorter and reaches the domain's edge.
    def fn(x):
        x = np.asarray(x)
        return float(np.sum((x - 1.0) ** 2)) if np.all(x <= 0.6) else math.nan

    res = gd.minimize(fn, np.zeros(2), gradient="central")
    assert res.nit > 3
    np.testing.assert_allclose(res.x, [0.6, 0.6], atol=1e-3)


@pytest.mark.parametrize("x64", [False, True])
def test_prng_key_is_jax_key_without_compiling(x64, monkeypatch):
    from gdtools.evaluation import prng_key

    with jax.enable_x64(x64):
        for seed in (0, 1, 7, 2**31 - 1, 2**31, 3_000_000_000, 2**32 - 1, 2**32, 2**40, -1, -5):
            with jax.enable_x64(True):  # (x64 JAX's key whatever the setting: all 64 bits of the seed)
                expected = jax.random.PRNGKey(seed)
            key = prng_key(seed)
            assert key.dtype == expected.dtype and key.shape == expected.shape
            np.testing.assert_array_equal(key, expected, err_msg=f"seed {seed}")
        lowered = []
        monkeypatch.setattr(jax.random, "PRNGKey", lambda seed: lowered.append(seed))
        prng_key(12345)
        prng_key(2**32 - 1)
        prng_key(2**32)
        prng_key(-1)
        assert lowered == []  # made from the seed's words, not by JAX's compiled seeding


def test_a_nan_or_infinite_value_is_recorded_as_a_failed_evaluation():
    calls = iter(range(1000))

    def sometimes_nan(x):
        k = next(calls)
        return {1: math.nan, 3: math.inf}.get(k % 4, float(np.sum((np.asarray(x) - 0.5) ** 2) + 1))

    res = gd.minimize(sometimes_nan, np.zeros(2), gradient="spsa", max_evals=20, on_failure=100.0)
    records = res.history.evaluations
    bad = [r for r in records if not np.isfinite(r["value"])]
    assert bad and all(r["status"] == "failed" for r in bad)
    assert {r["error"] for r in bad} == {"non-finite value nan", "non-finite value inf"}
    assert all(r["status"] == "ok" and r["error"] is None for r in records if np.isfinite(r["value"]))


def test_the_size_of_a_large_penalty_does_not_change_the_search():
    """A penalty of 1e6 beside values under 100 made the first SPSA estimate so large that the
    steps kept its direction and walked away from the optimum (ending 'worse'); any penalty above
    the values' own range now searches as a moderate one does."""
    space = gd.Space(a=gd.Real(1, 100))
    fun = lambda p: math.inf if p["a"] > 50 else (p["a"] - 40) ** 2  # noqa: E731
    runs = [gd.minimize(fun, {"a": 48.0}, space=space, gradient="spsa", max_evals=12, on_failure=penalty, seed=0)
            for penalty in (300.0, 1e6, 1e12)]
    assert [r.x["a"] for r in runs[1:]] == [runs[0].x["a"]] * 2
    assert all(r.status == "max_evals" and abs(r.x["a"] - 40) < 5 for r in runs)
    small = gd.minimize(fun, {"a": 48.0}, space=space, gradient="spsa", max_evals=12, on_failure=70.0, seed=0)
    assert small.x["a"] != runs[0].x["a"]  # a penalty inside the bound is used as given


def _dies_above_half(x):
    if x[0] > 0.5:
        os._exit(1)  # the worker process dies: the pool is broken
    return float(np.sum(x ** 2))


def _a_new_time(x):
    import random

    return gd.Measurement(value=1.0 + random.random(), samples=(1.0,), noisy=True)


def test_a_dask_executor_runs_a_point_measured_again_again():
    # client.get_executor() submits with dask's pure=True: equal calls were one task, so the start
    # measured again for its noise (--repeats 1, central differences) was run once and recorded
    # three times, the same time each
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp://",
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            ev = Evaluator(_a_new_time, to_arg=lambda x: x, executor=client.get_executor())
            values = ev(np.zeros((3, 2)))
    assert len(set(values)) == 3, values


def test_a_broken_process_pool_ends_the_run_with_one_message():
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=ctx) as pool:
        with pytest.raises(gd.EvaluationFailed, match=r"at x0, the start point: the executor could not start an "
                                                      r"evaluation \(BrokenProcessPool"):
            gd.minimize(_dies_above_half, np.ones(2), gradient="central", executor=pool)


def _interrupted_batch_of_6(monkeypatch, fun, as_completed):
    """The history of a batch of 6 points on a 1-thread pool, measured with ``as_completed`` standing
    in for the engine's (it raises the KeyboardInterrupt)."""
    from gdtools import evaluation

    monkeypatch.setattr(evaluation, "as_completed", as_completed)
    history = gd.History()
    with ThreadPoolExecutor(1) as pool:
        ev = Evaluator(fun, to_arg=lambda x: x, history=history, executor=pool)
        with pytest.raises(KeyboardInterrupt):
            ev(np.arange(12.0).reshape(6, 2))
    return history


def test_an_interrupt_records_what_finished_and_cancels_what_has_not_started(monkeypatch):
    import threading

    from gdtools import evaluation

    started = []

    def fun(x):
        started.append(1)
        threading.Event().wait(0.3 if len(started) == 3 else 0.0)  # the third runs when Ctrl-C comes
        return sphere(x)

    def interrupted_after_two(futures, real=evaluation.as_completed):
        finished = real(futures)
        yield next(finished)  # the first result, recorded as usual
        second = next(future for future, i in futures.items() if i == 1)
        second.result()  # the second has finished too, but the engine has not taken it yet...
        raise KeyboardInterrupt  # ... when Ctrl-C comes (the third is running)

    history = _interrupted_batch_of_6(monkeypatch, fun, interrupted_after_two)
    # what finished is recorded (the second too); the runs queued behind the third never started
    # (all ran before, unrecorded)
    assert sorted(r["index"] for r in history.evaluations) == [0, 1]
    assert len(started) <= 3


class _RefusesAfter:
    """An executor whose submit raises once it has taken ``n`` evaluations (a cluster gone away)."""

    def __init__(self, pool, n):
        self.pool, self.n = pool, n

    def submit(self, fn, *args):
        if self.n == 0:
            raise RuntimeError("the cluster went away")
        self.n -= 1
        return self.pool.submit(fn, *args)


def test_points_an_executor_refused_are_not_counted_as_evaluations():
    # SPSA: the start, then a pair whose first probe the executor refused: nfev was 3, the
    # evaluations made 1 (and the summary counted 2 evaluations never run)
    with ThreadPoolExecutor(2) as pool:
        res = gd.minimize(sphere, np.ones(2), gradient="spsa", max_evals=20, executor=_RefusesAfter(pool, 1))
    assert res.status == "failed" and "the cluster went away" in res.message, res
    assert res.nfev == len(res.history.evaluations) == 1, res


def test_a_run_stopped_by_max_failures_1_says_an_evaluation_failed_not_1_consecutive_evaluations():
    # the message read '1 consecutive evaluations failed (max_failures=1)'
    import gdtools as gd

    calls = []

    def fails_after_the_start(x):
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("boom")
        return float(np.sum(np.asarray(x) ** 2))

    res = gd.minimize(fails_after_the_start, np.ones(2), gradient="spsa", max_failures=1, max_evals=20)
    assert "an evaluation failed (max_failures=1)" in res.message and "1 consecutive" not in res.message


def test_seeds_that_differ_only_beyond_32_bits_give_other_keys():
    # without jax_enable_x64, JAX keeps a seed's low 32 bits: seed=2**32 ran the very run of seed=0
    # (and -1 that of 2**32 - 1, 2**63 - 1 that of -1), and a seed gave another run with x64 enabled;
    # every seed minimize takes, [-2**63, 2**63), now gives x64 JAX's key whatever the setting
    from gdtools.evaluation import prng_key

    seeds = [0, 5, 2**32 - 1, 2**32, 2**32 + 5, -1, -2**63, 2**63 - 1]
    for seed in seeds:
        with jax.enable_x64(True):
            expected = np.asarray(jax.random.PRNGKey(seed))
        assert np.array_equal(np.asarray(prng_key(seed)), expected), seed
    assert len({tuple(np.asarray(prng_key(seed)).tolist()) for seed in seeds}) == len(seeds)

    def noisy(x, key):
        return float(np.sum((np.asarray(x) - 1.0) ** 2) + 0.1 * float(jax.random.normal(key)))

    runs = [gd.minimize(noisy, np.zeros(2), gradient="spsa", max_evals=12, seed=seed).x for seed in (0, 2**32)]
    assert not np.array_equal(*runs)


def test_max_failures_may_be_a_numpy_integer():
    # np.int64(3) (a sweep's np.arange) was refused as 'max_failures must be a positive integer,
    # got np.int64(3)', though max_evals and n_perturbations take NumPy integers
    res = gd.minimize(lambda x: float(np.sum((np.asarray(x) - 1.0) ** 2)), np.zeros(2), gradient="spsa",
                      max_evals=10, max_failures=np.int64(3))
    assert res.nfev <= 10
    with pytest.raises(gd.InputError, match="max_failures must be a positive integer"):
        gd.minimize(lambda x: 0.0, np.zeros(2), gradient="spsa", max_evals=10, max_failures=np.float64(3.0))


def test_an_evaluation_interrupted_in_a_worker_leaves_the_others_recorded_and_cancelled(monkeypatch):
    # Ctrl-C reaches a process pool's workers too: a future that ended in KeyboardInterrupt (or an
    # objective's sys.exit in a thread) raised again while the engine recorded what had finished, so
    # a finished evaluation was lost and the queued ones were not cancelled (all ran, unrecorded)
    import threading

    started = []

    def fun(x):
        started.append(1)
        if len(started) == 1:
            raise KeyboardInterrupt  # the first run, interrupted in its worker
        threading.Event().wait(0.1)
        return sphere(x)

    def interrupted_first(futures):
        first, second = (next(future for future, i in futures.items() if i == k) for k in (0, 1))
        second.result()  # the second has finished, but the engine has not taken it yet...
        yield first  # ... when it takes the interrupted one
        raise AssertionError("not reached")

    history = _interrupted_batch_of_6(monkeypatch, fun, interrupted_first)
    assert sorted(r["index"] for r in history.evaluations) == [1]
    assert len(started) <= 3


class _HoldsALock:
    """An objective that cannot pickle (it holds a lock), as one holding a client or an open file."""

    def __init__(self):
        import threading

        self.lock = threading.Lock()

    def __call__(self, x):
        return sphere(x)


def test_an_objective_a_dask_cluster_cannot_send_is_an_error_that_says_so():
    # a dask executor serializes the call when it is submitted (a process pool does it later, in
    # its future): the run failed as 'the executor could not start an evaluation (TypeError: Could
    # not serialize object ...); a process pool breaks when a worker dies', not naming pickling
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp://",
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            with pytest.raises(gd.InputError, match="could not be sent.*must pickle"):
                gd.minimize(_HoldsALock(), np.ones(2), gradient="spsa", max_evals=12,
                            executor=client.get_executor())
