import json
import math
import os
import pickle
import re
import stat
import subprocess
import sys
import time

import numpy as np
import pytest

from gdtools.errors import InputError
from gdtools.evaluation import Measurement
from gdtools.space import Int, Real, Space
from gdtools.timing import (best_measured, format_value, last_iterate, printed_precision, remeasure, time_callable,
                            time_command)

PY = sys.executable

# Writes its arguments (after the output path) as JSON, so a test can see the exact argv it got.
ECHO_ARGV = "import json, sys; open(sys.argv[1], 'w').write(json.dumps(sys.argv[2:]))"


def sleepy(n, t):
    time.sleep(n * t)


def failing(n, t):
    if n > 2:
        raise ValueError(f"n={n} is too large")


@pytest.fixture
def space():
    return Space(n=Int(1, 5), t=Real(0.0, 0.01))


# -- time_callable --------------------------------------------------------------------------------

def test_a_run_of_a_timed_objective_keeps_what_its_values_are_for_its_plots(space, tmp_path):
    # gdtools tune wrote meta.measured; the same run through the API (make demo's) was plotted as "loss"
    import gdtools as gd

    callable_run = gd.minimize(time_callable(sleepy, space, repeats=2, warmup=0), space=space, max_evals=6)
    assert callable_run.history.meta["measured"] == {"objective": "time", "statistic": "median", "repeats": 2}
    assert gd.plot_history(callable_run.history).axes[0].get_ylabel() == "run time (s, median of 2 runs)"
    command = time_command([PY, "-c", "import sys; print(int(sys.argv[1]) * float(sys.argv[2]))", "{n}", "{t}"],
                           space, repeats=1, warmup=0, objective="stdout")
    path = tmp_path / "run.jsonl"
    gd.minimize(command, space=space, max_evals=6, history=path)
    assert gd.History.load(path).meta["measured"] == {"objective": "stdout", "statistic": "median", "repeats": 1}


def test_time_callable_measures_every_repeat(space):
    objective = time_callable(sleepy, space, repeats=3, warmup=1)
    m = objective({"n": 2, "t": 0.01})
    assert isinstance(m, Measurement) and m.status == "ok"
    assert len(m.samples) == 3 and all(s >= 0.02 for s in m.samples)
    assert m.value == pytest.approx(np.median(m.samples))
    assert m.statistic == "median"
    assert m.spread == pytest.approx(np.std(m.samples, ddof=1))
    assert m.params == {"n": 2, "t": 0.01}
    assert m.t_start <= m.t_end


@pytest.mark.parametrize("statistic, reduce", [("mean", np.mean), ("min", np.min)])
def test_time_callable_statistics(space, statistic, reduce):
    m = time_callable(sleepy, space, repeats=4, warmup=0, statistic=statistic)({"n": 1, "t": 0.002})
    assert m.value == pytest.approx(reduce(m.samples)) and m.statistic == statistic


def test_time_callable_single_repeat_has_no_spread(space):
    m = time_callable(sleepy, space, repeats=1, warmup=0)({"n": 1, "t": 0.0})
    assert len(m.samples) == 1 and math.isnan(m.spread)
    assert m.noisy  # a wall time is noisy even where one sample cannot show it


def test_wall_times_are_noisy_and_printed_numbers_are_not_said_to_be(space):
    code = "import sys; print(float(sys.argv[1]) ** 2)"
    xs = Space(x=Real(0.0, 1.0))
    timed = time_command([PY, "-c", code, "{x}"], xs, repeats=1, warmup=0)({"x": 0.5})
    printed = time_command([PY, "-c", code, "{x}"], xs, objective="stdout", repeats=1, warmup=0)({"x": 0.5})
    assert timed.noisy and not printed.noisy  # a printed number may be exact: not assumed noisy
    assert remeasure(time_callable(sleepy, space), [{"n": 1, "t": 0.0}], rounds=2)[0].noisy
    assert not remeasure(lambda p: 1.0, [{"n": 1, "t": 0.0}], rounds=2)[0].noisy


def test_time_callable_exception_is_a_failed_measurement(space):
    objective = time_callable(failing, space, repeats=2, warmup=0)
    assert objective({"n": 1, "t": 0.0}).status == "ok"
    m = objective({"n": 4, "t": 0.0})
    assert m.status == "failed" and math.isnan(m.value)
    assert m.error == "ValueError: n=4 is too large"


def test_time_callable_pickles_and_checks_params(space):
    objective = pickle.loads(pickle.dumps(time_callable(sleepy, space, repeats=1)))
    assert objective({"n": 1, "t": 0.0}).status == "ok"
    with pytest.raises(InputError, match="'n' = 9 is outside"):
        objective({"n": 9, "t": 0.0})


@pytest.mark.parametrize("kwargs, words", [
    ({"repeats": 0}, ["repeats", "0"]),
    ({"warmup": -1}, ["warmup", "-1"]),
    ({"statistic": "mode"}, ["statistic", "'mode'", "median"]),
])
def test_time_callable_validation(space, kwargs, words):
    with pytest.raises(InputError) as info:
        time_callable(sleepy, space, **kwargs)
    assert all(w in str(info.value) for w in words)


# -- argv substitution safety --------------------------------------------------------------------

@pytest.mark.parametrize("value", ["two words", "a;b", "$(touch pwned)", "`id`", "'quoted'",
                                   '"dq"', "x && y", "--flag", "", "{n}", "a\nb"])
def test_values_never_split_or_escape_their_element(value, space):
    objective = time_command([PY, "-c", "pass", "--v={n}",
                              "{t}"], space)
    argv = objective.command({"n": value, "t": value})
    assert argv == [PY, "-c", "pass", f"--v={value}", value]


def test_hostile_names_and_template_text_reach_the_program_verbatim(tmp_path):
    names = {"two words": Int(1, 3), "a;b": Int(1, 3), "$(touch pwned)": Real(0.0, 1.0),
             "'q\"": Int(1, 3)}
    space = Space(**names)
    out = tmp_path / "argv.json"
    argv = [PY, "-c", ECHO_ARGV, str(out), "{two words}", "--x={a;b}", "{$(touch pwned)}",
            "{'q\"}", "; echo hacked", "$(touch pwned2)", "{{literal}}", "|", ">", "x"]
    objective = time_command(argv, space, repeats=1, warmup=0, cwd=tmp_path)
    m = objective({"two words": 2, "a;b": 3, "$(touch pwned)": 0.25, "'q\"": 1})
    assert m.status == "ok", m.error
    got = json.loads(out.read_text())
    assert got == ["2", "--x=3", "0.25", "1", "; echo hacked", "$(touch pwned2)", "{literal}", "|",
                   ">", "x"]
    assert sorted(os.listdir(tmp_path)) == ["argv.json"]  # no shell ran, nothing was created


def test_placeholders_in_env(tmp_path):
    space = Space(threads=Int(1, 8))
    out = tmp_path / "env.txt"
    code = "import os, sys; open(sys.argv[1], 'w').write(os.environ['THREADS'] + '|' + os.environ['PATH'])"
    objective = time_command([PY, "-c", code, str(out)], space, repeats=1, warmup=0,
                             env={"THREADS": "{threads}"})
    assert objective({"threads": 3}).status == "ok"
    threads, path = out.read_text().split("|", 1)
    assert threads == "3" and path == os.environ["PATH"]  # env adds to the environment


def test_format_value():
    assert format_value(3) == "3" and format_value(np.int64(7)) == "7"
    assert format_value(0.1) == "0.1" and float(format_value(1 / 3)) == 1 / 3
    # a Choice([False, True]) or of words: the word, never "1.0"
    assert format_value(True) == "True" and format_value(np.bool_(False)) == "False"
    assert format_value("zstd") == "zstd"


@pytest.mark.parametrize("argv, words", [
    ([PY, "--rate", "{rate}"], ["{rate}", "no parameter", "'n'"]),
    ([PY, "--n={n", "{t}"], ["argv[1]", "unclosed", "--n={n"]),
    ([PY, "--n=n}", "{n}", "{t}"], ["argv[1]", "unmatched"]),
    ([PY, "--n={}", "{n}", "{t}"], ["argv[1]", "empty placeholder"]),
    ([PY, "{n}"], ["'t'", "no placeholder"]),
    (["./definitely-not-here", "{n}", "{t}"], ["'./definitely-not-here'", "does not exist"]),
    (["no-such-program-gdtools", "{n}", "{t}"], ["'no-such-program-gdtools'", "not found on PATH"]),
    ("prog {n} {t}", ["list", "never a shell string"]),
    ([], ["non-empty"]),
    ([PY, 3], ["string"]),
])
def test_time_command_construction_errors(space, argv, words):
    with pytest.raises(InputError) as info:
        time_command(argv, space)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("script, interpreter", [
    ("#!/bin/sh\nexit 0\n", "'sh'"),
    ("#!/usr/bin/env python3\nprint(1)\n", "'python3'"),
    ("#!/usr/bin/env -S bash -e\nexit 0\n", "'bash'"),
])
def test_a_program_that_is_not_executable_is_told_the_interpreter_its_first_line_names(
        tmp_path, space, script, interpreter):
    # a shell script was told to run itself as ['python3', './prog.sh', ...]
    path = tmp_path / "prog"
    path.write_text(script)
    with pytest.raises(InputError) as info:
        time_command([str(path), "{n}", "{t}"], space)
    assert "not executable" in str(info.value) and f"[{interpreter}, {str(path)!r}" in str(info.value)


def test_a_program_named_without_a_folder_that_is_in_the_folder_of_the_run_is_told_to_take_one(tmp_path, space):
    # "not found on PATH" said nothing of the prog.sh right there, which needs ./ to be run
    (tmp_path / "prog.sh").write_text("#!/bin/sh\nexit 0\n")
    with pytest.raises(InputError, match=r"'prog.sh' was not found on PATH; to run the prog.sh in .*, give "
                                         r"'\./prog.sh'"):
        time_command(["prog.sh", "{n}", "{t}"], space, cwd=tmp_path)


def test_a_directory_given_as_the_program_is_said_to_be_one(tmp_path, space):
    # it was said not to exist
    with pytest.raises(InputError, match="is a directory, not a program"):
        time_command([str(tmp_path) + "/", "{n}", "{t}"], space)


def test_program_not_executable(tmp_path, space):
    script = tmp_path / "prog.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    with pytest.raises(InputError, match="not executable"):
        time_command([str(script), "{n}", "{t}"], space)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    assert time_command(["./prog.sh", "{n}", "{t}"], space, cwd=tmp_path, repeats=1,
                        warmup=0)({"n": 1, "t": 0.0}).status == "ok"


@pytest.mark.parametrize("script, words", [
    ("echo hi\n", ["no #! line", "#!/bin/sh", "['sh', "]),
    ("", ["no #! line"]),
    ("#!/no/such/interpreter\nexit 0\n", ["'/no/such/interpreter'", "does not exist"]),
    ("#!/bin/sh\r\nexit 0\r\n", ["carriage return", "Windows line endings"]),
    # the interpreter exists; env looked for 'bash\r'
    ("#!/usr/bin/env bash\r\nexit 0\r\n", ["carriage return", "Windows line endings"]),
    ("\ufeff#!/bin/sh\nexit 0\n", ["byte-order mark", "without a BOM"]),
])
def test_an_executable_script_the_system_cannot_start_is_refused_with_the_reason(tmp_path, space, script, words):
    # it failed its first runs with "cannot start ...: Exec format error", or "No such file or
    # directory" for a file that exists
    path = tmp_path / "prog.sh"
    path.write_text(script, newline="")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    with pytest.raises(InputError) as info:
        time_command([str(path), "{n}", "{t}"], space)
    assert repr(str(path)) in str(info.value)
    for word in words:
        assert word in str(info.value)


def test_an_executable_binary_or_a_script_with_a_working_interpreter_is_accepted(tmp_path, space):
    script = tmp_path / "prog.sh"
    script.write_text("#! /bin/sh -e\nexit 0\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    time_command([str(script), "{n}", "{t}"], space)
    time_command([PY, "-c", "pass", "{n}", "{t}"], space)


@pytest.mark.parametrize("kwargs, words", [
    ({"timeout": 0}, ["timeout", "0"]),
    ({"objective": "memory"}, ["objective", "'memory'", "stdout"]),
    ({"env": {"A": 1}}, ["env", "str"]),
    ({"cwd": "/no/such/dir"}, ["cwd", "/no/such/dir"]),
])
def test_time_command_option_errors(space, kwargs, words):
    with pytest.raises(InputError) as info:
        time_command([PY, "{n}", "{t}"], space, **kwargs)
    assert all(w in str(info.value) for w in words)


# -- running programs ----------------------------------------------------------------------------

def test_time_command_times_each_repeat_and_warmup_is_not_timed(tmp_path):
    space = Space(ms=Int(0, 1000))
    log = tmp_path / "runs.txt"
    code = ("import sys, time; open(sys.argv[1], 'a').write('x'); "
            "time.sleep(int(sys.argv[2]) / 1000)")
    objective = time_command([PY, "-c", code, str(log), "{ms}"], space, repeats=3, warmup=2)
    m = objective({"ms": 300})
    assert m.status == "ok" and len(m.samples) == 3
    assert log.read_text() == "x" * 5
    assert all(s >= 0.3 for s in m.samples)
    assert m.value == pytest.approx(np.median(m.samples))
    fast = objective({"ms": 0})
    assert fast.value < m.value


def test_nonzero_exit_is_failed_with_code_and_stderr_tail():
    space = Space(code=Int(0, 5))
    code = ("import sys; c = int(sys.argv[1]); "
            "sys.stderr.write('x' * 1000 + 'disk full\\n') if c else None; sys.exit(c)")
    objective = time_command([PY, "-c", code, "{code}"], space, repeats=3, warmup=0)
    m = objective({"code": 3})
    assert m.status == "failed" and math.isnan(m.value)
    assert m.error.startswith("exit code 3: ") and m.error.endswith("disk full")
    assert len(m.error) < 500
    assert objective({"code": 0}).status == "ok"


def test_failure_after_some_repeats_keeps_the_samples(tmp_path):
    space = Space(k=Int(1, 5))
    counter = tmp_path / "count"
    code = ("import sys, os; p = sys.argv[1]; n = int(open(p).read()) if os.path.exists(p) else 0; "
            "open(p, 'w').write(str(n + 1)); sys.exit(1 if n >= 2 else 0)")
    m = time_command([PY, "-c", code, str(counter), "{k}"], space, repeats=4, warmup=0)({"k": 1})
    assert m.status == "failed" and len(m.samples) == 2 and m.error.startswith("exit code 1")


def test_timeout_kills_the_run_and_its_children(tmp_path):
    space = Space(s=Int(1, 100))
    started, finished = tmp_path / "grandchild-started", tmp_path / "grandchild-finished"
    # The run starts a grandchild that would write `finished` after the timeout.
    grandchild = ("import sys, time; open(sys.argv[1], 'w').write('x'); time.sleep(3); "
                  "open(sys.argv[2], 'w').write('x')")
    code = ("import subprocess, sys, time; "
            "subprocess.Popen([sys.executable, '-c', sys.argv[2], sys.argv[3], sys.argv[4]]); "
            "time.sleep(int(sys.argv[1]))")
    objective = time_command([PY, "-c", code, "{s}", grandchild, str(started), str(finished)],
                             space, repeats=1, warmup=0, timeout=2.0)
    t0 = time.perf_counter()
    m = objective({"s": 30})
    assert time.perf_counter() - t0 < 10
    assert m.status == "failed" and m.error == "timed out after 2 s"
    assert started.exists(), "the grandchild did not start within the timeout; nothing was tested"
    time.sleep(3.5)
    assert not finished.exists()


def test_stdout_objective_takes_the_last_number():
    space = Space(x=Real(-5.0, 5.0))
    code = "import sys; x = float(sys.argv[1]); print('iteration 12 of 40'); print('loss: %.6e (done)' % ((x - 1) ** 2))"
    objective = time_command([PY, "-c", code, "{x}"], space, objective="stdout", repeats=2, warmup=0)
    m = objective({"x": 3.0})
    assert m.status == "ok" and m.value == pytest.approx(4.0) and m.samples == (4.0, 4.0)
    assert m.spread == 0.0


@pytest.mark.parametrize("printed", ["epoch 5 loss 0,93", "loss=0,93", "loss: 0,930", "took 1,5s", "x -3,25e-2."])
def test_a_last_number_with_a_decimal_comma_is_an_error_not_an_earlier_number(printed):
    # "epoch 5 loss 0,93" gave 5 (and "0,930" 930, read as thousands): the tuning minimised another number
    from gdtools.timing import last_number

    word = printed.split()[-1].rstrip(".").partition("=")[2] or printed.split()[-1].rstrip(".")
    with pytest.raises(ValueError, match=re.escape(repr(word)) + ".*decimal comma"):
        last_number(printed)


@pytest.mark.parametrize("printed, number", [("cycles: 5,202,500", "5202500"), ("total 1,234.5", "1234.5"),
                                             ("a 0,93 then 0.93", "0.93"), ("items 1,2,3", None)])
def test_thousands_and_a_decimal_comma_before_the_last_number_are_read_as_before(printed, number):
    from gdtools.timing import last_number

    assert last_number(printed) == number


def test_a_run_that_prints_a_decimal_comma_fails_naming_it():
    space = Space(x=Real(-5.0, 5.0))
    objective = time_command([PY, "-c", "print('epoch 5 loss 0,93')", "{x}"], space, objective="stdout",
                             repeats=1, warmup=0)
    m = objective({"x": 3.0})
    assert m.status == "failed" and "'0,93'" in m.error and "decimal comma" in m.error


@pytest.mark.parametrize("number, precision", [("0.52", 0.01 / 0.52), ("1.5e-3", 0.1e-3 / 1.5e-3), ("120", 1 / 120),
                                               ("-0.140000", 1e-6 / 0.14), (".5", 0.2), ("1E+05", 1.0),
                                               ("0", None), ("0.000", None), ("inf", None),
                                               ("0.30000000000000004", None)])
def test_a_printed_numbers_precision_is_its_last_digits_place_over_its_size(number, precision):
    assert printed_precision(number) == (None if precision is None else pytest.approx(precision))


def test_finite_differences_of_printed_numbers_take_steps_the_digits_show():
    # steps of 1.5e-8 (float64's rule) changed nothing in 6 printed decimals: x's gradient was 0,
    # and x never left its start (0.5, the optimum at 0.3)
    import gdtools as gd

    space = Space(n=Int(1, 100, log=True), x=Real(0.0, 1.0))
    code = "import sys; n, x = int(sys.argv[1]), float(sys.argv[2]); print('%.6f' % (1 / n + (x - 0.3) ** 2))"
    objective = time_command([PY, "-c", code, "{n}", "{x}"], space, objective="stdout", repeats=1, warmup=0)
    m = objective({"n": 10, "x": 0.5})
    assert m.eps == pytest.approx(1e-6 / 0.14)
    res = gd.minimize(objective, space=space, gradient="forward", max_evals=30)
    assert abs(res.x["x"] - 0.3) < 0.05, res


def test_a_printed_number_that_repeats_exactly_is_not_run_again(tmp_path):
    runs = tmp_path / "runs"
    space = Space(x=Real(-5.0, 5.0))
    exact = ("import sys; open(sys.argv[2], 'a').write('.'); print((float(sys.argv[1]) - 1) ** 2)")
    objective = time_command([PY, "-c", exact, "{x}", str(runs)], space, objective="stdout", repeats=5, warmup=1)
    m = objective({"x": 3.0})
    # the warm-up and the first timed run printed 4.0: two runs, not six; the spread is left
    # unknown (a noisy number printed to two decimals repeats now and then too)
    assert runs.read_text() == ".." and m.samples == (4.0, 4.0) and math.isnan(m.spread) and math.isnan(m.noise)
    varying = ("import sys; f = open(sys.argv[2], 'a'); f.write('.'); f.close(); "
               "print(len(open(sys.argv[2]).read()))")  # prints 1, 2, 3, ...: never repeats
    runs.unlink()
    counting = time_command([PY, "-c", varying, "{x}", str(runs)], space, objective="stdout", repeats=5, warmup=1)
    assert counting({"x": 3.0}).samples == (2.0, 3.0, 4.0, 5.0, 6.0)
    runs.unlink()
    once = time_command([PY, "-c", exact, "{x}", str(runs)], space, objective="stdout", repeats=1, warmup=1)
    assert once({"x": 3.0}).samples == (4.0,)  # never more samples than repeats


@pytest.mark.parametrize("printed, error", [("no numbers here", "no number"),
                                            ("value nan", "'nan'")])
def test_stdout_objective_without_a_usable_number_fails(printed, error):
    space = Space(x=Real(0.0, 1.0))
    objective = time_command([PY, "-c", f"print({printed!r})", "{x}"], space, objective="stdout",
                             repeats=1, warmup=0)
    m = objective({"x": 0.5})
    assert m.status == "failed" and error in m.error


def test_time_command_pickles(space):
    objective = time_command([PY, "-c", "pass", "{n}", "{t}"], space, repeats=1, warmup=0)
    clone = pickle.loads(pickle.dumps(objective))
    assert clone.command({"n": 2, "t": 0.005}) == [PY, "-c", "pass", "2", "0.005"]
    assert clone({"n": 2, "t": 0.005}).status == "ok"


# -- remeasure, best_measured -------------------------------------------------------------------

CALLS = []


def logged(n, t):
    CALLS.append(n)
    if n == 5:
        raise RuntimeError("n=5 crashes")
    time.sleep(n * t)


def test_remeasure_interleaves_rounds_and_ranks_candidates(space):
    CALLS.clear()
    objective = time_callable(logged, space, repeats=4, warmup=2)
    candidates = [{"n": 1, "t": 0.005}, {"n": 4, "t": 0.005}, {"n": 5, "t": 0.0}]
    a, b, c = remeasure(objective, candidates, rounds=3, warmup=1)
    # one warm-up round, then rounds that rotate the order; a candidate that failed its first two
    # runs is not run again
    assert CALLS == [1, 4, 5, 4, 5, 1, 1, 4, 1, 4]
    assert len(a.samples) == len(b.samples) == 3 and a.statistic == "median"
    assert a.value < b.value and a.params == candidates[0] and a.error is None
    assert c.status == "failed" and c.error == "RuntimeError: n=5 crashes"


def test_remeasure_measures_on_after_a_failed_run(space):
    calls = iter(range(100))

    def sometimes(params):  # the second candidate's first timed run fails, its others do not
        if next(calls) == 1:
            raise RuntimeError("flaky")
        return float(params["n"])

    a, b = remeasure(sometimes, [{"n": 1, "t": 0.0}, {"n": 2, "t": 0.0}], rounds=3, warmup=0)
    assert a.status == "ok" and a.samples == (1.0, 1.0, 1.0) and a.error is None
    assert b.status == "ok" and b.samples == (2.0, 2.0) and b.value == 2.0
    assert b.error == "1 of 3 runs failed; the last: RuntimeError: flaky"


def test_remeasure_accepts_plain_objectives(space):
    values = iter([3.0, 1.0, 5.0, 1.0])
    ms = remeasure(lambda p: next(values), [{"n": 1, "t": 0.0}, {"n": 2, "t": 0.0}], rounds=2,
                   warmup=0)
    assert [m.samples for m in ms] == [(3.0, 1.0), (1.0, 5.0)]  # round 2 runs them in turned order
    with pytest.raises(InputError, match="rounds"):
        remeasure(lambda p: 1.0, [{"n": 1, "t": 0.0}], rounds=0)


def test_best_measured_skips_failures():
    from gdtools.history import History

    h = History()
    h.record_evaluation(params={"n": 1}, value=2.0, status="ok")
    h.record_evaluation(params={"n": 2}, value=None, status="failed")
    h.record_evaluation(params={"n": 3}, value=1.5, status="ok")
    h.record_evaluation(params={"n": 4}, value=0.1, status="failed")
    assert best_measured(h) == {"n": 3}
    assert best_measured(History()) is None


def test_stop_running_programs_kills_the_runs_in_progress(tmp_path):
    import threading

    from gdtools.timing import stop_running_programs

    space = Space(s=Int(1, 100))
    objective = time_command([PY, "-c", "import sys, time; time.sleep(int(sys.argv[1]))", "{s}"], space,
                             repeats=1, warmup=0)
    out = {}
    worker = threading.Thread(target=lambda: out.update(m=objective({"s": 60})))
    t0 = time.perf_counter()
    worker.start()
    time.sleep(1.0)  # the program is running
    stop_running_programs()  # what Ctrl-C in `gdtools tune` does
    worker.join(timeout=20)
    assert not worker.is_alive() and time.perf_counter() - t0 < 20
    assert out["m"].status == "failed" and out["m"].error == "killed by signal 9 (SIGKILL)"


def test_remeasure_stops_once_every_value_repeated_exactly(space):
    calls = []

    def printed(params):  # an exact number, as a program prints it (--objective stdout)
        calls.append(params["n"])
        if params["n"] == 3:
            raise RuntimeError("always fails")
        return float(params["n"])

    ms = remeasure(printed, [{"n": 1, "t": 0.0}, {"n": 2, "t": 0.0}, {"n": 3, "t": 0.0}], rounds=5, warmup=1)
    assert [m.samples for m in ms[:2]] == [(1.0, 1.0), (2.0, 2.0)] and ms[2].status == "failed"
    assert len(calls) == 3 + 3 + 2  # warm-up, two rounds; the failing one is given up after two runs
    noisy = iter([1.0, 2.0, 1.5, 1.0, 1.0, 1.0])
    m, = remeasure(lambda p: next(noisy), [{"n": 1, "t": 0.0}], rounds=5, warmup=0)
    assert m.samples == (1.0, 2.0, 1.5, 1.0, 1.0)  # values that moved are measured every round
    # a time is measured every round, however exact it looks
    assert len(remeasure(time_callable(lambda n, t: None, space), [{"n": 1, "t": 0.0}], rounds=4,
                         warmup=0)[0].samples) == 4


def test_remeasure_counts_the_rounds_it_ran_when_it_stopped_early(space):
    calls = iter(range(100))

    def flaky_exact(params):
        if next(calls) == 2:
            raise RuntimeError("flaky")
        return float(params["n"])

    a, b = remeasure(flaky_exact, [{"n": 1, "t": 0.0}, {"n": 2, "t": 0.0}], rounds=10, warmup=0)
    assert len(a.samples) == 3 and b.error == "1 of 3 runs failed; the last: RuntimeError: flaky"  # not "of 10"


@pytest.mark.parametrize("printed, number", [
    ("score 0.93 (run-3)", "0.93"), ("loss 0.5 [model-v2]", "0.5"), ("cycles: 5,202,500", "5202500"),
    ("score 3 (run by buchanan)", "3"), ("took 0.52s", "0.52"), ("loss=1.5e-3,", "1.5e-3"), ("50%", "50"),
    ("value nan", "nan"), ("best -inf", "-inf"), ("x setup.inf", None), ("on 2023-01-01", None),
    ("Done in 0.52.", "0.52"), ("took 0.52s.", "0.52"), ("total 5,202,500.", "5202500"), ("at .5", ".5"),
    ("Done (loss 0.52).", "0.52"), ("loss=(0.5).", "0.5"), ("(run-3).", None),
])
def test_the_last_number_is_a_whole_word_not_a_piece_of_one(printed, number):
    from gdtools.timing import last_number

    assert last_number(printed) == number


def test_remeasure_runs_each_measurement_through_run_on_where_given():
    space = Space(x=Real(0.0, 10.0))
    calls = []

    def run_on(run, params):
        calls.append(dict(params))
        return pickle.loads(pickle.dumps(run))(params)  # as a worker would: the run travels

    objective = time_command([PY, "-c", "import sys; print(float(sys.argv[1]) ** 2)", "{x}"], space,
                             objective="stdout", repeats=3, warmup=1)
    measured = remeasure(objective, [{"x": 1.0}, {"x": 2.0}], rounds=3, warmup=1, run_on=run_on)
    assert [m.value for m in measured] == [1.0, 4.0]
    assert len(calls) == 6 and {c["x"] for c in calls} == {1.0, 2.0}  # warm-up + 2 rounds (exact), each

    def lost(run, params):
        raise RuntimeError("worker lost")

    failed = remeasure(objective, [{"x": 1.0}], rounds=2, warmup=0, run_on=lost)
    assert failed[0].status == "failed" and "worker lost" in failed[0].error


def test_a_child_left_running_in_the_background_is_not_timed():
    # its inherited stderr (and stdout) kept the pipes open: the run was timed until the child
    # ended (2 s for a program that returns at once), or hung without --timeout
    space = Space(a=Int(1, 10))
    printed = time_command(["bash", "-c", "sleep 3 & echo {a}"], space, objective="stdout", repeats=1, warmup=0)
    timed = time_command(["bash", "-c", "sleep 3 & true {a}"], space, repeats=1, warmup=0)
    t0 = time.perf_counter()
    assert printed({"a": 4}).value == 4.0 and timed({"a": 4}).value < 1.0
    assert time.perf_counter() - t0 < 2.0


def test_last_iterate_is_the_search_answer_where_the_result_is_the_lucky_start():
    # A wall time measured its start at a quiet moment (0.1) and every later run of it slower (2.0);
    # the run "ended worse than it started", so res.x is the best measured point: the start. `make demo` and `gdtools tune` compared only that with itself ("1.00x") and never
    # measured the point the search had moved to.
    space = Space(rate=Int(1, 1000, log=True))
    runs = {"start": 0}

    def objective(params):
        if params["rate"] == 32:
            runs["start"] += 1
            value = 0.1 if runs["start"] == 1 else 2.0
        else:
            value = 1.0 + abs(math.log(params["rate"] / 300.0))
        return Measurement(value, samples=(0.99 * value, value, 1.01 * value), statistic="median",
                           params=params, noisy=True)

    import gdtools as gd

    res = gd.minimize(objective, space=space, gradient="spsa", max_evals=24, seed=0)
    assert res.history.iterations[-1]["final"] == "best measured" and res.x == {"rate": 32}
    final = last_iterate(res.history, space)
    # the point the run measured at its end and found worse ('f = 2.77 at the last iterate'): the
    # step after the last iteration record, not that record's own point (rate 51, not 49)
    measured_at_the_end = res.history.evaluations[-1]["params"]
    assert final == measured_at_the_end != space.from_unit(res.history.iterations[-2]["x"])
    assert final != {"rate": 32}
    assert last_iterate(gd.History(), space) is None


@pytest.mark.parametrize("printed, number", [
    ("epoch 3 loss:0.04", "0.04"), ("[loss:0.04]", "0.04"), ("step 7 val_loss:1.5e-3,", "1.5e-3"),
    ("epoch 3 time:12:30", "3"),  # a clock time is no number after its name
])
def test_a_number_after_its_name_and_a_colon_is_read_as_after_an_equals_sign(printed, number):
    from gdtools.timing import last_number

    assert last_number(printed) == number


def test_remeasure_says_how_many_rounds_it_ran_whatever_failed():
    # the CLI counted a candidate's samples, which leave out its failed runs: 'side by side (2 runs
    # each): ... (1 of 3 runs failed)'
    calls = {"a": 0}

    def objective(params):
        if params["x"] == 1:
            calls["a"] += 1
            if calls["a"] == 2:
                raise RuntimeError("flaky")
        return Measurement(float(params["x"]), samples=(float(params["x"]),), noisy=True)

    measured = remeasure(objective, [{"x": 1}, {"x": 2}], rounds=3, warmup=0)
    assert measured.rounds == 3 and len(measured[0].samples) == 2 and "1 of 3 runs failed" in measured[0].error
    exact = remeasure(lambda p: float(p["x"]), [{"x": 1}, {"x": 2}], rounds=5, warmup=0)
    assert exact.rounds == 2  # printed numbers that repeated exactly: no further round


def test_a_run_with_a_timeout_is_waited_for_without_polling(monkeypatch):
    # Popen.wait(timeout=...) polls, sleeping up to 50 ms between looks: every time over a tenth of
    # a second came out rounded up to the next look (0.165, 0.215, 0.265 s for runs of 0.14 to 0.19 s
    # in the IMU demo, whose objective has timeout=60); the timeout is now a timer that kills the run
    waits = []
    real_wait = subprocess.Popen.wait

    def wait(self, timeout=None):
        waits.append(timeout)
        return real_wait(self, timeout)

    monkeypatch.setattr(subprocess.Popen, "wait", wait)
    objective = time_command([PY, "-c", "pass", "{s}"], Space(s=Int(1, 9)), repeats=2, warmup=0, timeout=60.0)
    m = objective({"s": 3})
    assert m.status == "ok" and len(m.samples) == 2
    assert waits == [None, None]
