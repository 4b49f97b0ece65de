"""Tuning through the engine: executors, a dask cluster on loopback, failure policy, kill and resume."""

import math
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pytest

import gdtools as gd
from gdtools.timing import time_callable, time_command

PY = sys.executable
# Deterministic, so that runs through different executors must agree exactly.
QUADRATIC = ("import sys; x = float(sys.argv[1]); k = int(sys.argv[2]); "
             "print((x - 3) ** 2 + (k - 20) ** 2 / 100 + 1)")


def space():
    return gd.Space(x=gd.Real(0.0, 10.0), k=gd.Int(1, 100, log=True))


def quadratic_objective():
    return time_command([PY, "-c", QUADRATIC, "{x}", "{k}"], space(), repeats=1, warmup=0,
                        objective="stdout")


def busy(n):
    """Work proportional to n (a module-level function, so a process pool can run it)."""
    total = 0
    for i in range(n * 2000):
        total += i
    return total


def evaluations(history):
    """Evaluations in the order they were asked for (an executor records them as they finish)."""
    records = sorted(history.evaluations, key=lambda r: r.get("index", r["eval"]))
    return [(r["x"], r["value"], r["status"]) for r in records]


@pytest.fixture(scope="module")
def inline_run():
    return gd.minimize(quadratic_objective(), space=space(), gradient="spsa", seed=0, max_evals=12)


@pytest.mark.parametrize("make_executor", [
    lambda: ThreadPoolExecutor(max_workers=2),
    lambda: ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")),
], ids=["threads", "processes"])
def test_executor_gives_the_inline_result(inline_run, make_executor):
    with make_executor() as executor:
        res = gd.minimize(quadratic_objective(), space=space(), gradient="spsa", seed=0,
                          max_evals=12, executor=executor)
    assert res.x == inline_run.x
    assert evaluations(res.history) == evaluations(inline_run.history)
    assert all(r["params"] is not None for r in res.history.evaluations)


def test_time_callable_through_a_process_pool_records_repeats():
    s = gd.Space(n=gd.Int(1, 200, log=True))
    objective = time_callable(busy, s, repeats=3, warmup=1)
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        res = gd.minimize(objective, space=s, gradient="central", seed=0, max_evals=8, executor=pool)
    assert res.history.evaluations
    for record in res.history.evaluations:
        assert record["status"] == "ok" and len(record["samples"]) == 3
        assert record["statistic"] == "median" and record["spread"] >= 0
        assert record["t_start"] <= record["t_end"]
    assert res.x["n"] < 20  # time grows with n; the tuner moves down from the centre (14)


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_dask_local_cluster_gives_the_inline_result(inline_run, processes):
    distributed = pytest.importorskip("dask.distributed")
    extra = {} if processes else {"protocol": "tcp://"}
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=processes,
                                  host="127.0.0.1", dashboard_address=None, **extra) as cluster, \
            distributed.Client(cluster) as client:
        res = gd.minimize(quadratic_objective(), space=space(), gradient="spsa", seed=0,
                          max_evals=12, executor=client.get_executor())
    assert res.x == inline_run.x
    assert evaluations(res.history) == evaluations(inline_run.history)


# -- failure policy ----------------------------------------------------------------------------------

FAILS_ABOVE = ("import sys; x = float(sys.argv[1]); k = int(sys.argv[2]); "
               "sys.stderr.write('overrun\\n') or sys.exit(5) if x > 6 else "
               "print((x - 8) ** 2 + k / 100)")


def test_penalty_policy_records_failures_and_carries_on():
    objective = time_command([PY, "-c", FAILS_ABOVE, "{x}", "{k}"], space(), repeats=1, warmup=0,
                             objective="stdout")
    res = gd.minimize(objective, {"x": 5.0, "k": 10}, space=space(), gradient="central", seed=0,
                      max_evals=30, on_failure=100.0)
    failed = [r for r in res.history.evaluations if r["status"] == "failed"]
    assert failed, "the probes above x = 6 should fail"
    assert all(r["error"] == "exit code 5: overrun" and r["value"] is None or math.isnan(r["value"])
               for r in failed)
    assert res.x["x"] <= 6.0 + 1e-9  # the penalty keeps the run on the side that works


def test_stop_policy_ends_the_run_and_keeps_what_was_measured(tmp_path):
    counter = tmp_path / "count"
    # Works for the first 5 runs, then the program breaks for good.
    code = ("import os, sys; p = sys.argv[1]; n = int(open(p).read()) if os.path.exists(p) else 0; "
            "open(p, 'w').write(str(n + 1)); x = float(sys.argv[2]); "
            "sys.exit('disk full') if n >= 5 else print((x - 1) ** 2 + int(sys.argv[3]))")
    objective = time_command([PY, "-c", code, str(counter), "{x}", "{k}"], space(), repeats=1,
                             warmup=0, objective="stdout")
    history = tmp_path / "run.jsonl"
    res = gd.minimize(objective, space=space(), gradient="spsa", seed=0, max_evals=40,
                      max_failures=3, history=str(history))
    assert not res.success and res.status == "failed"
    assert "3 consecutive" in res.message and "disk full" in res.message
    saved = gd.History.load(history)
    statuses = [r["status"] for r in saved.evaluations]
    assert statuses[:5] == ["ok"] * 5 and statuses[5:8] == ["failed"] * 3
    assert len(statuses) < 12
    assert math.isfinite(res.fun)  # the best point measured before the failures


# -- kill -9 and resume ------------------------------------------------------------------------------

SLOW_QUADRATIC = ("import sys, time; time.sleep(0.05); x = float(sys.argv[1]); k = int(sys.argv[2]); "
                  "print((x - 3) ** 2 + (k - 20) ** 2 / 100 + 1)")


def tune_argv(history, *extra):
    return [PY, "-m", "gdtools", "tune", "--param", "x=0:10", "--param", "k=1:100:log:int",
            "--budget", "24", "--repeats", "1", "--objective", "stdout", "--seed", "3", "--quiet",
            "--final-rounds", "1", "--history", str(history), *extra,
            "--", PY, "-c", SLOW_QUADRATIC, "{x}", "{k}"]


def count_evaluations(path):
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return sum('"kind": "evaluation"' in line for line in f)


def result_lines(stdout):
    """The table and best command (the history path differs between the runs)."""
    return [line for line in stdout.splitlines() if not line.startswith("history:")]


def test_kill_and_resume_reaches_the_uninterrupted_result(tmp_path):
    full, part = tmp_path / "full.jsonl", tmp_path / "part.jsonl"
    uninterrupted = subprocess.run(tune_argv(full), capture_output=True, text=True, timeout=300)
    assert uninterrupted.returncode == 0, uninterrupted.stderr

    proc = subprocess.Popen(tune_argv(part), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while count_evaluations(part) < 8 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = count_evaluations(part)
    assert 8 <= done < 24, f"killed after {done} evaluations; the test needs a run cut mid-way"

    resumed = subprocess.run(tune_argv(part, "--resume"), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert result_lines(resumed.stdout) == result_lines(uninterrupted.stdout)

    def records(path):
        return evaluations(gd.History.load(path))

    assert records(part) == records(full)
    assert len(records(part)) >= 24
