import math
import threading

import numpy as np
import pytest

import gdtools as gd
from gdtools.ask_tell import AskTell, Trial

SPACE = gd.Space(rate=gd.Int(10, 1000, log=True), alpha=gd.Real(0.0, 1.0))


def job(params):
    return math.log(params["rate"] / 200) ** 2 + (params["alpha"] - 0.3) ** 2


def _drive(search, measure):
    asked = 0
    while (trial := search.ask(timeout=60)) is not None:
        search.tell(trial, measure(trial.params))
        asked += 1
    return asked


def test_ask_and_tell_is_the_same_search_as_minimize():
    search = AskTell(space=SPACE, gradient="central", max_evals=60)
    asked = _drive(search, job)
    res = search.result
    same = gd.minimize(job, space=SPACE, gradient="central", max_evals=60)
    assert res.x == same.x and res.fun == same.fun and res.nfev == same.nfev == asked
    assert res.success and res.x["rate"] == 200 and abs(res.x["alpha"] - 0.3) < 1e-4
    assert search.done and search.ask() is None
    told = [(r["params"], r["value"]) for r in res.history.evaluations]
    assert search.best == min(told, key=lambda pair: pair[1])
    assert [r["params"] for r in res.history.evaluations] == [r["params"] for r in same.history.evaluations]


def test_a_flat_start_gets_arrays_and_the_default_is_spsa():
    search = AskTell(np.array([1.0, -1.0]), max_evals=40, seed=3)
    first = search.ask()
    assert isinstance(first, Trial) and first.number == 0
    np.testing.assert_array_equal(first.params, [1.0, -1.0])
    search.tell(first, 2.0)
    _drive(search, lambda x: float(np.sum(np.asarray(x) ** 2)))
    res = search.result
    assert res.history.meta["estimator"]["name"] == "spsa" and res.nfev <= 40


def test_workers_in_threads_measure_a_batch_at_once():
    # central differences ask for 2n = 4 probes a gradient: four workers have them out together
    search = AskTell(space=SPACE, gradient="central", max_evals=40)
    out, most, lock = [0], [0], threading.Lock()
    barrier = threading.Barrier(4, timeout=30)

    def worker():
        while (trial := search.ask(timeout=60)) is not None:
            with lock:
                out[0] += 1
                most[0] = max(most[0], out[0])
            if trial.number in (1, 2, 3, 4):  # the first gradient's probes: all four out at once
                barrier.wait()
            with lock:
                out[0] -= 1
            search.tell(trial, job(trial.params))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert most[0] == 4 and search.result.nfev <= 40 and search.result.fun < job(SPACE.center())


def test_a_told_exception_is_a_failed_evaluation_and_failures_end_the_run():
    search = AskTell(space=SPACE, gradient="spsa", max_evals=30, max_failures=2)
    trial = search.ask()
    search.tell(trial, 1.0)
    while (trial := search.ask(timeout=60)) is not None:
        search.tell(trial, RuntimeError("the job was killed"))
    res = search.result
    assert not res.success and "the job was killed" in res.message
    failed = [r for r in res.history.evaluations if r["status"] == "failed"]
    assert search.best == (SPACE.center(), 1.0)  # failures are never the best
    assert failed and failed[0]["error"] == "RuntimeError: the job was killed"


def test_a_measurement_keeps_its_samples():
    search = AskTell(space=SPACE, max_evals=12)
    trial = search.ask()
    search.tell(trial, gd.Measurement(value=2.0, samples=(1.9, 2.0, 2.2), statistic="median", noisy=True))
    record = search.history if search.history is not None else None
    assert record is None  # (the history comes with the end)
    search.close()
    assert search.done and search.history.evaluations[0]["samples"] == [1.9, 2.0, 2.2]


def test_close_ends_the_search_and_keeps_what_was_told(tmp_path):
    path = tmp_path / "run.jsonl"
    with AskTell(space=SPACE, gradient="central", max_evals=100, history=str(path)) as search:
        for _ in range(3):
            trial = search.ask()
            search.tell(trial, job(trial.params))
        search.ask()  # out, never told: dropped
    assert search.done
    assert len(search.history.evaluations) == 3
    assert len(gd.History.load(str(path)).evaluations) == 3
    with pytest.raises(gd.InputError, match="closed before it ended"):
        search.result
    assert search.ask() is None


def test_misuse_gets_one_clear_message():
    with pytest.raises(gd.InputError, match="positive integer"):
        AskTell(space=SPACE, max_evals=0)
    with pytest.raises(gd.InputError, match=r"unknown options \['budget'\]"):
        AskTell(space=SPACE, budget=10)
    with pytest.raises(gd.InputError, match="no executor="):
        AskTell(space=SPACE, executor=None)
    with pytest.raises(gd.InputError, match="autodiff"):
        AskTell(np.zeros(2), gradient="autodiff")
    with pytest.raises(gd.InputError, match="no batch=True.*one AskTell per start"):
        AskTell(np.zeros((3, 2)), batch=True)
    search = AskTell(space=SPACE, max_evals=20)
    trial = search.ask()
    with pytest.raises(gd.InputError, match="expected a real scalar"):
        search.tell(trial, "fast")
    with pytest.raises(gd.InputError, match="takes the Trial"):
        search.tell(trial.params, 1.0)
    with pytest.raises(gd.InputError, match="not ended yet"):
        search.result
    search.tell(trial, 1.0)  # the trial is still out after a bad value: told now
    with pytest.raises(gd.InputError, match="told already"):
        search.tell(trial, 1.0)
    with pytest.raises(TimeoutError, match="waits for the values of trials"):
        search.ask()  # the first probe, out
        search.ask()
        search.ask(timeout=0.5)
    search.close()


def test_an_abandoned_search_ends_its_thread(tmp_path):
    # A search dropped mid-run (a notebook cell run again) left its thread waiting for ever on the
    # trial out, holding the search, its history and the history file
    import gc

    path = tmp_path / "run.jsonl"
    search = AskTell(space=SPACE, gradient="central", max_evals=40, history=str(path))
    trial = search.ask()
    search.tell(trial, job(trial.params))
    search.ask()
    thread = search._state.thread
    del search, trial
    gc.collect()
    thread.join(10)
    assert not thread.is_alive()
    assert len(gd.History.load(str(path)).evaluations) == 1


def test_close_from_the_callback_ends_the_search():
    # the callback runs in the search's thread: close() there tried to join that thread itself
    # (RuntimeError: cannot join current thread, raised by .result and ask())
    searches = []

    def callback(state):
        if state.iteration >= 1:
            searches[0].close()

    search = AskTell(space=SPACE, gradient="central", max_evals=60, callback=callback)
    searches.append(search)
    asked = _drive(search, job)
    assert search.done and 0 < asked < 60 and len(search.history.evaluations) == asked
    with pytest.raises(gd.InputError, match="closed before it ended"):
        search.result


def test_a_timeout_while_the_search_computes_says_so():
    import time

    search = AskTell(space=SPACE, gradient="central", max_evals=30, callback=lambda state: time.sleep(1.0))
    message = None
    for _ in range(30):
        try:
            trial = search.ask(timeout=0.3)
        except TimeoutError as exc:  # the callback sleeps at the end of an iteration, nothing out
            message = str(exc)
            break
        search.tell(trial, job(trial.params))
    search.close()
    assert message is not None and "still computing" in message and "trials []" not in message


def test_trials_are_kept_in_lists_and_dicts_as_handles():
    # Trials compared by value: list.remove(trial) of a search over arrays raised NumPy's "truth
    # value of an array is ambiguous", and a trial was no dict key (its params are unhashable)
    search = AskTell(np.array([1.0, -1.0]), gradient="central", max_evals=20)
    first = search.ask()
    search.tell(first, 2.0)
    out = [search.ask(), search.ask()]
    pending = {trial: "job id" for trial in out}
    out.remove(out[1])
    assert len(out) == 1 and pending[out[0]] == "job id" and out[0] != first and out[0] == out[0]
    search.close()


def test_gradient_none_is_the_default():
    # gradient=None (minimize's "default", passed on from a caller's own option) with a flat x0 chose
    # autodiff and failed with a message about an executor= the user never gave
    search = AskTell(np.array([1.0, -1.0]), gradient=None, max_evals=4)
    _drive(search, lambda x: float(np.sum(np.asarray(x) ** 2)))
    assert search.result.history.meta["estimator"]["name"] == "spsa"


def test_a_trial_of_another_search_is_named_so():
    # it was "told already, or the search that asked for it has ended", of two searches both running
    first, second = AskTell(space=SPACE, max_evals=10), AskTell(space=SPACE, max_evals=10)
    mine, theirs = first.ask(), second.ask()
    with pytest.raises(gd.InputError, match="not asked for by this search"):
        first.tell(theirs, 1.0)
    first.tell(mine, 1.0)
    with pytest.raises(gd.InputError, match="told already"):
        first.tell(mine, 1.0)
    first.close(), second.close()


def test_interpreter_exit_ends_a_search_that_is_computing(tmp_path):
    # A script that ended while the search's (daemon) thread computed its next points left that
    # thread running JAX and NumPy as the interpreter finalised: at times 'terminate called after
    # throwing an instance of ...' / 'FATAL: exception not rethrown' and exit status 134. The search
    # is now ended and joined as the interpreter exits, its computation finished first.
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import threading, time
        import numpy as np
        import gdtools as gd

        computing = threading.Event()

        def callback(state):
            computing.set()
            time.sleep(0.5)
            print("computed", flush=True)

        search = gd.AskTell(np.ones(2), gradient="central", max_evals=100, callback=callback)
        while True:  # until the search computes at the end of an iteration: the script ends there
            trial = search.ask()
            search.tell(trial, float(np.sum((trial.params - 3.0) ** 2)))
            if computing.wait(0.2):
                break
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "computed" in done.stdout


def test_a_bad_value_told_is_named_as_told():
    # "the objective returned str 'fast'": an AskTell has no objective, the caller told the value
    search = AskTell(space=SPACE, max_evals=10)
    trial = search.ask()
    with pytest.raises(gd.InputError, match=r"^trial 0 was told str 'fast', expected a real scalar"):
        search.tell(trial, "fast")
    with pytest.raises(gd.InputError, match=r"^trial 0 was told an array of shape \(2,\)"):
        search.tell(trial, np.zeros(2))
    search.close()


def test_a_bad_timeout_is_refused():
    # timeout=nan waited for ever (the trial out is never told here) and timeout="1" raised a TypeError
    search = AskTell(space=SPACE, max_evals=10)
    search.ask()
    for timeout in ("1", -1.0, math.nan):
        with pytest.raises(gd.InputError, match="timeout"):
            search.ask(timeout=timeout)
    with pytest.raises(TimeoutError):
        search.ask(timeout=np.int64(0))
    search.close()


def test_best_is_a_copy_of_the_point_told():
    search = AskTell(space=SPACE, max_evals=12)
    trial = search.ask()
    search.tell(trial, 1.0)
    trial.params["rate"] = 10**6  # the caller reuses its dict
    assert search.best == (SPACE.center(), 1.0)
    search.close()


def test_a_loop_interrupted_between_ask_and_tell_goes_on_once_its_pending_trials_are_told():
    # Ctrl-C in a notebook between ask and tell, then the cell run again: its ask() waited for ever
    # for the value of the trial left out, and the Trial object was lost (found by h72)
    search = AskTell(space=SPACE, gradient="central", max_evals=30)
    asked = []
    with pytest.raises(KeyboardInterrupt):
        while (trial := search.ask()) is not None:
            asked.append(trial.number)
            if trial.number == 2:
                raise KeyboardInterrupt  # measuring trial 2
            search.tell(trial, job(trial.params))
    left = search.pending
    assert [t.number for t in left] == [2]
    for trial in left:  # as docs/tuning.md says: tell the trials out, then ask again
        search.tell(trial, job(trial.params))
    assert search.pending == []
    while (trial := search.ask()) is not None:
        asked.append(trial.number)
        search.tell(trial, job(trial.params))
    assert asked.count(2) == 1 and search.pending == []
    same = gd.minimize(job, space=SPACE, gradient="central", max_evals=30)
    assert search.result.x == same.x and search.result.nfev == same.nfev


def test_trials_one_thread_asks_for_and_workers_tell_are_never_asked_for_twice():
    from concurrent.futures import ThreadPoolExecutor

    search = AskTell(space=SPACE, gradient="central", max_evals=30)
    asked = []
    with ThreadPoolExecutor(2) as pool:
        while (trial := search.ask()) is not None:
            asked.append(trial.number)
            pool.submit(lambda t=trial: search.tell(t, job(t.params)))
    assert len(asked) == len(set(asked)) == search.result.nfev


def test_ask_says_so_when_it_waits_for_a_trial_its_own_thread_left_untold(monkeypatch):
    # a trial left untold looks like one a worker measures: ask() waits, and says why after a while
    from gdtools import ask_tell

    monkeypatch.setattr(ask_tell, "UNTOLD_WARNING_AFTER", 0.1)
    search = AskTell(space=SPACE, max_evals=10)
    first = search.ask()
    teller = threading.Timer(0.5, lambda: search.tell(search.pending[0], job(first.params)))
    teller.start()
    with pytest.warns(UserWarning, match=r"waiting for the values of trials \[0\].*search.pending"):
        assert search.ask() is not None
    teller.join()
    search.close()
