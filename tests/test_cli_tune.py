import json
import math
import os
import re
import sys

import numpy as np
import pytest

from gdtools.cli import main
from gdtools.cli.tune import parse_param, parse_space, parse_start
from gdtools.errors import InputError
from gdtools.space import Choice, Int, Real

PY = sys.executable
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A deterministic objective a program prints: minimum at x = 3, k = 20.
QUADRATIC = ("import sys; x = float(sys.argv[1]); k = int(sys.argv[2]); "
             "print('result', (x - 3) ** 2 + (k - 20) ** 2 / 100 + 1)")


@pytest.mark.parametrize("spec, name, param", [
    ("rate=10:1000:log:int", "rate", Int(10, 1000, log=True)),
    ("alpha=0:1", "alpha", Real(0.0, 1.0)),
    ("gain=1e-3:10:log", "gain", Real(1e-3, 10.0, log=True)),
    ("n=1:64:INT", "n", Int(1, 64)),
    ("two words = 0 : 2", "two words", Real(0.0, 2.0)),
    ("codec=lz4,zstd,gzip", "codec", Choice(["lz4", "zstd", "gzip"])),
    ("opt = -O2, -march=native", "opt", Choice(["-O2", "-march=native"])),  # (an '=' in a value)
    ("size=32,64,128", "size", Choice(["32", "64", "128"])),  # text, as the command gets it
    ("start=12:30,13:00", "start", Choice(["12:30", "13:00"])),  # (a ':' in a value, no range)
])
def test_parse_param(spec, name, param):
    assert parse_param(spec) == (name, param)


@pytest.mark.parametrize("spec, words", [
    ("rate", ["'rate'", "NAME=LOW:HIGH"]),
    ("=1:2", ["'=1:2'", "NAME=LOW:HIGH"]),
    ("rate=10", ["both bounds"]),
    ("rate=a:10", ["LOW", "'a'", "not a number"]),
    ("rate=1:nan", ["HIGH", "finite"]),
    ("rate=10:1:int", ["low", "high", "10", "1"]),
    ("rate=0:10:log", ["log", "low"]),
    ("rate=1:10:lin", ["unknown flag", "'lin'"]),
    ("rate=1.5:10:int", ["whole", "1.5"]),
    ("codec=lz4,", ["empty value", "NAME=A,B,C"]),
    ("codec=lz4,lz4", ["listed twice", "'lz4'"]),
    # a range written with decimal commas was 'LOW '0,5' is not a number' before lists of values; it
    # became the list ['0', '5:10'], searched without a word (found by h75)
    ("x=0,5:10", ["decimal comma", "x=0.5:10"]),
    ("lr=1e-3:0,1:log", ["decimal comma", "lr=1e-3:0.1:log"]),
])
def test_parse_param_errors(spec, words):
    with pytest.raises(InputError) as info:
        parse_param(spec)
    message = str(info.value)
    assert message.startswith(f"--param {spec!r}")
    for word in words:
        assert word in message


def test_parse_start_fills_the_centre_and_checks_bounds():
    space = parse_space(["rate=10:1000:log:int", "alpha=0:1"])
    assert parse_start([], space) == {"rate": 100, "alpha": 0.5}
    start = parse_start(["rate=30"], space)
    assert start == {"rate": 30, "alpha": 0.5} and type(start["rate"]) is int
    with pytest.raises(InputError, match="'speed'"):
        parse_start(["speed=3"], space)
    with pytest.raises(InputError, match="outside"):
        parse_start(["rate=5000"], space)
    with pytest.raises(InputError, match="declared twice"):
        parse_space(["a=0:1", "a=1:2"])


@pytest.mark.parametrize("argv, words", [
    (["--param", "x=0:10", "--", PY, "-c", "pass", "{y}"], ["{y}", "no parameter"]),
    (["--param", "x=0:10", "--param", "k=3", "--", PY, "{x}", "{k}"], ["--param 'k=3'"]),
    (["--param", "x=10:0", "--", PY, "{x}"], ["--param 'x=10:0'", "below"]),
    (["--param", "x=0:10", "--", "./no-such-program", "{x}"], ["'./no-such-program'", "does not exist"]),
    (["--param", "x=0:10", "--", "no-such-program-on-path", "{x}"], ["not found on PATH"]),
    (["--param", "x=0:10", "--", PY, "-c", "pass"], ["'x'", "no placeholder"]),
    (["--param", "x=0:10"], ["after '--'"]),
    (["--", PY, "{x}"], ["at least one --param"]),
    # options after the program are the program's: the --param there never reached gdtools tune
    ([PY, "{x}", "--param", "x=0:10"], ["at least one --param", "before the program"]),
    (["--param", "x=0:10", "--resume", "--", PY, "{x}"], ["--resume needs --history"]),
    (["--param", "x=0:10", "--start", "x=11", "--", PY, "{x}"], ["--start: ", "'x' = 11", "[0.0, 10.0]"]),
    (["--param", "x=0:10", "--repeats", "0", "--", PY, "{x}"], ["--repeats must be at least 1"]),
    (["--param", "x=0:10", "--warmup", "-1", "--", PY, "{x}"], ["--warmup must be at least 0"]),
    (["--param", "x=0:10", "--timeout", "0", "--", PY, "{x}"], ["--timeout must be a positive number"]),
    (["--param", "x=0:10", "--timeout", "nan", "--", PY, "{x}"], ["--timeout must be a positive number"]),
    # a start that fails --max-failures times: the message names the option, not max_failures=
    (["--param", "x=0:10", "--max-failures", "2", "--quiet", "--", PY, "-c", "import sys; sys.exit(3)", "{x}"],
     ["failed 2 times in a row (--max-failures 2)"]),
    (["--param", "x=0:10", "--budget", "0", "--", PY, "{x}"], ["--budget", "at least 1"]),
    (["--param", "x=0:10", "--history", "/no/such/dir/run.jsonl", "--", PY, "{x}"],
     ["--history", "'/no/such/dir' does not exist"]),
    (["--param", "x=0:10", "--plot", "/no/such/dir/loss.png", "--", PY, "{x}"],
     ["--plot", "'/no/such/dir' does not exist"]),
    (["--param", "x=0:10", "--plot", "loss.jpeg2000", "--", PY, "{x}"], ["unknown image format"]),
    (["--param", "x=0:10", "--history", PY + "/run.jsonl", "--", PY, "{x}"], ["is a file, not a folder"]),
    # SPSA's one step costs the start, two probes and the final measurement
    (["--param", "x=0:10", "--budget", "3", "--", PY, "{x}"], ["--budget 3 is too small", "needs 4"]),
    (["--param", "x=0:10", "--param", "y=0:1", "--gradient", "central", "--budget", "5", "--", PY, "{x}",
      "{y}"], ["--budget 5", "needs 6"]),
    (["--param", "x=1:9:int", "--start", "x=nan", "--", PY, "{x}"], ["--start 'x=nan'", "finite"]),
    (["--param", "x=1:9:int", "--start", "x=inf", "--", PY, "{x}"], ["--start 'x=inf'", "finite"]),
    (["--param", "x=0:10", "--penalty", "nan", "--", PY, "{x}"], ["--penalty", "finite"]),
    # the engine's own words were "seed must be ...", not the option the user gave
    (["--param", "x=0:10", "--seed", str(2 ** 70), "--quiet", "--", PY, "{x}"], ["error: --seed must be an integer"]),
    (["--param", "x=1:10:int:int", "--", PY, "{x}"], ["'int' is given twice"]),
    (["--param", "x=0:10", "--start", "x=1", "--start", "x=2", "--", PY, "{x}"], ["'x' is given twice"]),
    (["--param", "x=0:10", "--dask", "notanaddress", "--", PY, "{x}"],
     ["--dask 'notanaddress'", "cannot connect"]),
])
def test_cli_errors_are_one_line_and_exit_2(capsys, argv, words):
    assert main(["tune", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gdtools tune: error: ")
    for word in words:
        assert word in lines[0]


def test_cli_error_exit_code_in_a_real_process():
    import subprocess

    proc = subprocess.run([PY, "-m", "gdtools", "tune", "--param", "rate=10:oops", "--", "prog",
                           "{rate}"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "'rate=10:oops'" in proc.stderr


def test_tune_finds_the_minimum_and_writes_history_and_plot(tmp_path, capsys):
    history, plot = tmp_path / "run.jsonl", tmp_path / "loss.png"
    code = main(["tune", "--param", "x=0:10", "--param", "k=1:100:log:int", "--budget", "24",
                 "--repeats", "1", "--objective", "stdout", "--seed", "1", "--history",
                 str(history), "--plot", str(plot), "--final-rounds", "1",
                 "--", PY, "-c", QUADRATIC, "{x}", "{k}"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = captured.out.splitlines()
    table = lines[lines.index(next(l for l in lines if l.startswith("parameter"))):]
    assert table[0].split() == ["parameter", "start", "best"]
    x_row = next(l for l in table if l.startswith("x "))
    k_row = next(l for l in table if l.startswith("k "))
    assert x_row.split()[1] == "5" and k_row.split()[1] == "10"  # the centre of each scale
    best_x, best_k = float(x_row.split()[2]), int(k_row.split()[2])
    start_value = 4 + 1 + 1.0
    best_value = (best_x - 3) ** 2 + (best_k - 20) ** 2 / 100 + 1
    assert best_value < 0.5 * start_value
    assert any(l.startswith("improvement (start / best): ") for l in lines)
    side = next(l for l in lines if l.startswith("side by side (1 run each): start 6.000, "))
    assert "final point" in side and side.split("best: the ")[1] in ("final point",
                                                                     "best-measured point")
    assert any(l.startswith("best command: ") and "-c" in l for l in lines)
    records = [json.loads(l) for l in history.read_text().splitlines()]
    assert records[0]["kind"] == "meta" and records[0]["space"]["k"]["log"] is True
    evaluations = [r for r in records if r["kind"] == "evaluation"]
    assert 20 <= len(evaluations) <= 24 + 2
    assert all(r["params"] and r["samples"] and r["statistic"] == "median" for r in evaluations)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "tune" in captured.err  # the progress bar
    bar = [l for l in captured.err.splitlines() if l.startswith("tune:")][-1]
    assert f" {len(evaluations)}/24 " in bar  # the finished bar counts every evaluation, the last one too


def test_program_options_after_double_dash_are_not_tune_options(tmp_path, capsys):
    out = tmp_path / "argv.json"
    echo = ("import json, sys; open(sys.argv[1], 'w').write(json.dumps(sys.argv[2:])); "
            "print(float(sys.argv[-1]))")
    code = main(["tune", "--param", "x=1:2", "--budget", "4", "--repeats", "1", "--quiet",
                 "--objective", "stdout", "--final-rounds", "1",
                 "--", PY, "-c", echo, str(out), "--budget", "999", "--quiet", "{x}"])
    assert code == 0, capsys.readouterr().err
    got = json.loads(out.read_text())
    assert got[:3] == ["--budget", "999", "--quiet"]
    assert capsys.readouterr().err == ""  # --quiet: no progress


def test_failing_program_stops_with_a_message_and_exit_1(tmp_path, capsys):
    code = main(["tune", "--param", "x=0:1", "--budget", "20", "--repeats", "1", "--quiet",
                 "--max-failures", "2", "--history", str(tmp_path / "h.jsonl"),
                 "--", PY, "-c", "import sys; sys.stderr.write('boom\\n'); sys.exit(4)", "{x}"])
    captured = capsys.readouterr()
    # The start point itself fails: nothing to optimise from, said in one line.
    assert code == 2
    assert "exit code 4: boom" in captured.err



def test_a_start_that_fails_is_named_by_its_settings(capsys):
    # the message spoke Python ("at x0, the start point ... Nothing to optimise") and did not say
    # which setting the start was (found by h73)
    program = ["--", PY, "-c", "import sys; sys.exit('no ' + sys.argv[1]) if sys.argv[1] == 'gzip' else print(1)",
               "{codec}"]
    base = ["tune", "--param", "codec=lz4,gzip,zstd", "--objective", "stdout", "--quiet", "--max-failures", "2"]
    assert main(base + program) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "at the start, codec=gzip (the default start; set another with --start NAME=VALUE)" in err
    assert "no gzip" in err and "x0" not in err and "optimise" not in err
    assert main(base + ["--start", "codec=gzip"] + program) == 2
    assert "at the start, codec=gzip (--start codec=gzip)" in capsys.readouterr().err

@pytest.mark.parametrize("gradient, field", [("spsa", "c"), ("central", "step")])
def test_perturbation_sets_the_probe_size(tmp_path, capsys, gradient, field):
    history = tmp_path / "h.jsonl"
    code = main(["tune", "--param", "x=0:10", "--param", "k=1:100:log:int", "--budget", "14",
                 "--repeats", "1", "--objective", "stdout", "--quiet", "--final-rounds", "1",
                 "--gradient", gradient, "--perturbation", "0.05", "--history", str(history),
                 "--", PY, "-c", QUADRATIC, "{x}", "{k}"])
    assert code == 0, capsys.readouterr().err
    meta = json.loads(history.read_text().splitlines()[0])
    assert meta["estimator"]["name"] == gradient and meta["estimator"][field] == 0.05
    xs = [json.loads(l)["x"] for l in history.read_text().splitlines()[1:4]]
    assert xs[0] == [0.5, 0.5]
    # the first probes sit 0.05 of the range (or one integer unit, if larger) from the start
    assert abs(abs(xs[1][0] - 0.5) - 0.05) < 1e-9


def test_perturbation_out_of_range_is_an_error(capsys):
    assert main(["tune", "--param", "x=0:1", "--perturbation", "0.9", "--", PY, "{x}"]) == 2
    assert "--perturbation" in capsys.readouterr().err


def _tune_output(capsys, *extra):
    code = main(["tune", "--param", "x=0:10", "--param", "k=1:100:log:int", "--budget", "14",
                 "--repeats", "1", "--objective", "stdout", "--quiet", "--final-rounds", "1",
                 "--seed", "2", *extra, "--", PY, "-c", QUADRATIC, "{x}", "{k}"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def test_workers_and_dask_give_the_serial_result(capsys):
    distributed = pytest.importorskip("dask.distributed")
    serial = _tune_output(capsys)
    assert _tune_output(capsys, "--workers", "2") == serial
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  protocol="tcp://", host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        assert _tune_output(capsys, "--dask", cluster.scheduler_address) == serial


def test_a_run_stopped_early_keeps_what_its_values_are(tmp_path, capsys, monkeypatch):
    # meta.measured was written after the search only: a run interrupted in it was plotted as "loss"
    from gdtools import timing
    from gdtools.history import History

    real = timing.TimedCommand.__call__
    calls = []

    def stops_at_the_sixth_call(self, params):  # the timed program itself, Ctrl-C at its sixth run
        calls.append(1)
        if len(calls) == 6:
            raise KeyboardInterrupt
        return real(self, params)

    monkeypatch.setattr(timing.TimedCommand, "__call__", stops_at_the_sixth_call)
    history = tmp_path / "h.jsonl"
    code = main(["tune", "--param", "x=0:10", "--param", "k=1:100:log:int", "--budget", "20", "--quiet",
                 "--repeats", "2", "--warmup", "0", "--history", str(history), "--", PY, "-c", QUADRATIC,
                 "{x}", "{k}"])
    assert code == 130
    assert History.load(history).meta["measured"] == {"objective": "time", "statistic": "median", "repeats": 2}


def _ctrl_c_at_call(monkeypatch, n: int) -> None:
    """Make the n-th measurement of a timed command raise KeyboardInterrupt, as Ctrl-C would."""
    from gdtools import timing

    real = timing.TimedCommand.__call__
    calls = []

    def stops_at_the_nth_call(self, params):
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt
        return real(self, params)

    monkeypatch.setattr(timing.TimedCommand, "__call__", stops_at_the_nth_call)


def test_ctrl_c_without_a_history_prints_the_best_setting_measured_so_far(capsys, monkeypatch):
    # with no --history, 'interrupted' was all that remained of five measured runs
    _ctrl_c_at_call(monkeypatch, 6)
    code = main(["tune", "--param", "x=0:10", "--param", "k=1:100:log:int", "--budget", "20", "--quiet",
                 "--repeats", "1", "--warmup", "0", "--", PY, "-c", QUADRATIC, "{x}", "{k}"])
    out = capsys.readouterr().out
    assert code == 130
    assert "interrupted after 5 evaluations; the best setting measured so far: {'x': " in out
    assert "one noisy measurement" in out and "its command: " in out and "-c" in out


def test_ctrl_c_calls_a_printed_number_one_measurement_not_a_noisy_one(capsys, monkeypatch):
    # an exact number the program printed is no noisy measurement, as a wall time is
    _ctrl_c_at_call(monkeypatch, 4)
    code = main(["tune", "--param", "x=0:10", "--param", "k=1:100:log:int", "--budget", "20", "--quiet",
                 "--objective", "stdout", "--", PY, "-c", QUADRATIC, "{x}", "{k}"])
    out = capsys.readouterr().out
    assert code == 130
    assert "(one measurement, not compared side by side)" in out and "noisy" not in out


def test_ctrl_c_before_anything_was_measured_leaves_no_history_to_refuse_the_next_run(tmp_path, capsys, monkeypatch):
    # stopped in its first evaluation (a wrong option seen at once), the new file held only its meta
    # line: the corrected command was refused ("already exists: add --resume"), though nothing in it
    # could be lost, and the message said "what was measured is in" a file of no measurement
    from gdtools import timing

    history = tmp_path / "run.jsonl"
    real = timing.TimedCommand.__call__

    def interrupted(self, params):
        raise KeyboardInterrupt

    monkeypatch.setattr(timing.TimedCommand, "__call__", interrupted)
    command = ["tune", "--param", "x=0:10", "--param", "k=1:100:log:int", "--budget", "4", "--quiet",
               "--objective", "stdout", "--history", str(history), "--", PY, "-c", QUADRATIC, "{x}", "{k}"]
    assert main(command) == 130
    err = capsys.readouterr().err
    assert not history.exists() and "what was measured is in" not in err
    monkeypatch.setattr(timing.TimedCommand, "__call__", real)
    assert main(command) == 0 and history.exists()


def test_workers_and_dask_together_is_an_error(capsys):
    assert main(["tune", "--param", "x=0:1", "--workers", "2", "--dask", "tcp://127.0.0.1:1",
                 "--", PY, "{x}"]) == 2
    assert "either --workers or --dask" in capsys.readouterr().err


def test_ctrl_c_exits_130_and_tells_how_to_continue(tmp_path, capsys, monkeypatch):
    import gdtools
    from gdtools.history import History

    history = tmp_path / "h.jsonl"

    def interrupted(*args, **kwargs):  # after one evaluation was recorded
        History(history, meta={"n": 1}).record_evaluation(x=[0.5], value=1.0, samples=[1.0])
        raise KeyboardInterrupt

    monkeypatch.setattr(gdtools, "minimize", interrupted)
    code = main(["tune", "--param", "x=0:10", "--budget", "10", "--quiet", "--history", str(history),
                 "--", PY, "-c", "pass", "{x}"])
    err = capsys.readouterr().err
    assert code == 130 and "interrupted" in err and "--resume" in err and str(history) in err


def test_the_summary_names_the_budget_as_the_cli_user_set_it(capsys):
    out = _tune_output(capsys)
    assert "(--budget 14)" in out and "max_evals" not in out


def test_resume_with_other_repeats_or_statistic_is_refused(tmp_path, capsys):
    """A resumed run that measured each point another number of times (or by another statistic)
    would mix two precisions in one history: refused in one line, the file untouched."""
    history = tmp_path / "run.jsonl"
    base = ["tune", "--param", "x=0:10", "--param", "k=1:100:log:int", "--budget", "6", "--seed", "0",
            "--objective", "stdout", "--warmup", "0", "--quiet", "--history", str(history)]
    # a noisy printed number (an exact one repeats and stops its runs early, whatever --repeats)
    noisy = QUADRATIC.replace("+ 1)", "+ 1 + __import__('random').gauss(0, 1e-3))")
    program = ["--", PY, "-c", noisy, "{x}", "{k}"]
    assert main(base + ["--repeats", "2"] + program) == 0
    before = history.read_text()
    capsys.readouterr()
    for extra, words in ((["--repeats", "3"], ["--repeats 2", "this command has --repeats 3"]),
                         (["--repeats", "2", "--statistic", "min"], ["--statistic median", "--statistic min"])):
        assert main(base + ["--resume", "--budget", "12", *extra] + program) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and all(word in err for word in words), err
        assert history.read_text() == before
    assert main(base + ["--resume", "--budget", "12", "--repeats", "2"] + program) == 0
    # a history of wall times (their records say noisy, as time_command's do) resumed as printed numbers
    timed = tmp_path / "timed.jsonl"
    records = [json.loads(line) for line in before.splitlines()]
    timed.write_text("".join(json.dumps({**r, "noisy": True} if r["kind"] == "evaluation" else r) + "\n"
                             for r in records))
    capsys.readouterr()
    resumed = [a if a != str(history) else str(timed) for a in base]
    assert main(resumed + ["--resume", "--budget", "12", "--repeats", "2"] + program) == 2
    assert "was measured with --objective time" in capsys.readouterr().err


def test_a_side_by_side_difference_under_two_standard_errors_is_called_within_the_noise():
    from gdtools.cli.tune import _within_noise
    from gdtools.evaluation import Measurement

    def timed(*samples):
        return Measurement(value=float(np.mean(samples)), samples=samples, statistic="mean",
                           spread=float(np.std(samples, ddof=1)))

    start, final = timed(0.030, 0.022, 0.026), timed(0.0275, 0.0278, 0.0276)  # the tune review's case
    assert _within_noise(start, final) and _within_noise(final, start)
    assert not _within_noise(timed(0.030, 0.0301, 0.0299), timed(0.020, 0.0201, 0.0199))
    assert not _within_noise(Measurement(value=0.02), Measurement(value=0.021))  # one sample: cannot tell
    assert not _within_noise(Measurement(value=float("nan"), status="failed"), start)


def test_a_refused_resume_names_the_option_and_both_values(tmp_path, capsys):
    history = tmp_path / "run.jsonl"
    base = ["tune", "--param", "x=0:10", "--param", "k=1:100:log:int", "--budget", "4", "--seed", "0",
            "--objective", "stdout", "--warmup", "0", "--repeats", "1", "--quiet", "--history", str(history)]
    program = ["--", PY, "-c", QUADRATIC, "{x}", "{k}"]
    assert main(base + ["--start", "k=10"] + program) == 0
    capsys.readouterr()
    for extra, words in ((["--start", "k=20"], "another start point (k: 10 recorded, 20 given)"),
                         (["--start", "k=10", "--perturbation", "0.2"],
                          "another --perturbation (the default recorded, 0.2 given)")):
        assert main(base + ["--resume", "--budget", "8", *extra] + program) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and words in err and "digest" not in err, err


def test_an_existing_history_is_never_replaced_without_resume(tmp_path, capsys):
    history = tmp_path / "run.jsonl"
    base = ["tune", "--param", "x=0:10", "--budget", "4", "--objective", "stdout", "--warmup", "0", "--repeats", "1",
            "--quiet", "--history", str(history), "--", PY, "-c", "import sys; print((float(sys.argv[1]) - 3) ** 2)", "{x}"]
    assert main(base) == 0
    before = history.read_text()
    capsys.readouterr()
    assert main(base) == 2
    err = capsys.readouterr().err
    assert "already exists: add --resume" in err and err.count("\n") == 1
    assert history.read_text() == before
    mine = tmp_path / "notes.txt"  # not a history at all: refused the same way, untouched
    mine.write_text("my notes")
    assert main([a if a != str(history) else str(mine) for a in base]) == 2 and mine.read_text() == "my notes"


def test_more_refused_resumes_name_the_option(tmp_path, capsys):
    history = tmp_path / "run.jsonl"
    params = ["--param", "x=0:10", "--param", "k=1:100:log:int"]
    rest = ["--budget", "4", "--seed", "0", "--objective", "stdout", "--warmup", "0", "--repeats", "1", "--quiet",
            "--history", str(history), "--", PY, "-c", QUADRATIC, "{x}", "{k}"]
    assert main(["tune", *params, *rest]) == 0
    capsys.readouterr()
    swapped = ["--param", "k=1:100:log:int", "--param", "x=0:10"]
    assert main(["tune", *swapped, "--resume", *rest]) == 2
    assert "recorded its --param options in another order (x, k recorded, k, x given)" in capsys.readouterr().err
    central = ["tune", *params, "--gradient", "central", "--resume", "--budget", "8", *rest[2:]]
    assert main(central) == 2
    assert "another --gradient (spsa recorded, central given)" in capsys.readouterr().err


def test_the_search_is_printed_when_ctrl_c_stops_the_side_by_side_rounds(tmp_path, capsys, monkeypatch):
    from gdtools import timing

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(timing, "remeasure", interrupted)
    history = tmp_path / "run.jsonl"
    assert main(["tune", "--param", "x=0:10", "--param", "k=1:100:log:int", "--budget", "4", "--objective", "stdout",
                 "--warmup", "0", "--repeats", "1", "--quiet", "--history", str(history),
                 "--", PY, "-c", QUADRATIC, "{x}", "{k}"]) == 130
    out = capsys.readouterr()
    assert "4 evaluations" in out.out and "interrupted while measuring the settings again side by side" in out.out
    assert "best command:" in out.out and f"history: {history}" in out.out and "--resume" in out.err


def test_exact_printed_numbers_report_the_rounds_run_and_a_failed_run_without_history_says_so(capsys):
    args = ["tune", "--param", "x=0:10", "--param", "k=1:100:log:int", "--budget", "6", "--objective", "stdout",
            "--warmup", "0", "--repeats", "1", "--final-rounds", "5", "--", PY, "-c", QUADRATIC, "{x}", "{k}"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "up to 5 runs each" in captured.err and "side by side (2 runs each)" in captured.out
    only_the_start = "import sys; x = float(sys.argv[1]); sys.exit(0 if abs(x - 5) < 1e-9 else 1)"
    assert main(["tune", "--param", "x=0:10", "--start", "x=5", "--budget", "12", "--warmup", "0", "--repeats", "1",
                 "--quiet", "--", PY, "-c", only_the_start, "{x}"]) == 1
    out = capsys.readouterr().out
    assert "Add --history FILE to keep what is measured" in out and "is in the history" not in out


def test_probes_come_closer_after_one_fails_so_a_limit_that_fails_beyond_is_approached(capsys):
    """Faster with a larger batch, failing above 100 (out of memory): the same far probe failed
    three times in a row and the run stopped at exit 1; halving the probes after a failure reaches
    the limit."""
    program = "import sys; b = int(sys.argv[1]); sys.exit(1) if b > 100 else print(1000.0 / b)"
    assert main(["tune", "--param", "batch=1:1024:log:int", "--budget", "12", "--repeats", "1", "--warmup", "0",
                 "--objective", "stdout", "--quiet", "--", PY, "-c", program, "{batch}"]) == 0
    out = capsys.readouterr().out
    best = int(re.search(r"best command: .* (\d+)$", out, re.MULTILINE).group(1))
    assert 80 <= best <= 100, out


def test_sigterm_stops_the_programs_being_timed_and_exits_143(tmp_path):
    """`timeout`, a scheduler cancelling the job or a closed ssh session send SIGTERM or SIGHUP: the
    program being timed (in its own session) must stop with gdtools, as on Ctrl-C."""
    import signal
    import subprocess
    import time

    marker = tmp_path / "started"
    program = tmp_path / "long.py"
    program.write_text("import os, sys, time\n"
                       f"open({str(marker)!r}, 'w').write(str(os.getpid()))\n"
                       "time.sleep(60)\n")
    proc = subprocess.Popen([PY, "-m", "gdtools", "tune", "--quiet", "--param", "a=1:100", "--repeats", "1",
                             "--budget", "8", "--history", str(tmp_path / "h.jsonl"), "--", PY, str(program), "{a}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": ROOT})
    deadline = time.time() + 120
    while not (marker.exists() and marker.read_text()) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert marker.exists(), proc.communicate()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    # stopped in the start's first run: nothing measured, no file for --resume to continue
    assert "terminated (SIGTERM)" in err and "--resume" not in err and not (tmp_path / "h.jsonl").exists()
    pid = int(marker.read_text())
    time.sleep(0.2)
    try:  # the timed program is gone (killed with its process group), or a zombie awaiting its reaper
        with open(f"/proc/{pid}/stat") as stat:
            assert stat.read().split(") ")[1][0] in "ZX"
    except FileNotFoundError:
        pass


def test_an_exact_printed_number_resumes_with_any_repeats(tmp_path, capsys):
    history = tmp_path / "run.jsonl"
    base = ["tune", "--param", "x=0:10", "--param", "k=1:100:log:int", "--seed", "0", "--objective", "stdout",
            "--warmup", "0", "--quiet", "--history", str(history), "--", PY, "-c", QUADRATIC, "{x}", "{k}"]
    assert main(base[:1] + ["--budget", "6", "--repeats", "3"] + base[1:]) == 0
    assert {len(r["samples"]) for r in gd_history(history).evaluations} == {2}  # stopped at the repeat
    assert main(base[:1] + ["--budget", "12", "--repeats", "5", "--resume"] + base[1:]) == 0, capsys.readouterr().err
    assert main(base[:1] + ["--budget", "16", "--repeats", "1", "--resume"] + base[1:]) == 0, capsys.readouterr().err


def test_a_noisy_printed_number_that_repeats_by_chance_leaves_the_noise_measured(tmp_path):
    # printed to one decimal, a noisy number repeats now and then: that evaluation stops early but
    # must not report a spread of 0 (the run's noise, a median, would drop to 0: an exact objective)
    import gdtools as gd
    from gdtools.timing import time_command

    counter = tmp_path / "count"
    counter.write_text("0")
    sequence = "[1.0, 1.0, 1.1, 1.0, 0.9, 1.1, 1.0, 0.9]"
    noisy = (f"import sys; p = sys.argv[2]; c = int(open(p).read()); open(p, 'w').write(str(c + 1)); "
             f"print({sequence}[c % 8])")
    objective = time_command([PY, "-c", noisy, "{x}", str(counter)], gd.Space(x=gd.Real(0, 10)),
                             objective="stdout", repeats=5, warmup=1)
    by_chance, varied = objective({"x": 3.0}), objective({"x": 3.0})
    assert by_chance.samples == (1.0, 1.0) and math.isnan(by_chance.spread) and math.isnan(by_chance.noise)
    assert varied.samples == (1.0, 0.9, 1.1, 1.0, 0.9) and varied.noise > 0


def gd_history(path):
    from gdtools.history import History

    return History.load(path)


@pytest.mark.parametrize("faster, rounds, code", [(True, [], 0), (False, [], 1),
                                                  (True, ["--final-rounds", "1"], 1)])  # no noise shown: no verdict
def test_a_search_that_ended_worse_exits_0_when_side_by_side_its_best_beats_the_start(monkeypatch, capsys,
                                                                                      faster, rounds, code):
    """'worse' comes from one measurement at each end; the side-by-side rounds decide the exit status
    when they show the returned setting faster than the start beyond their noise."""
    import dataclasses

    import gdtools

    real = gdtools.minimize

    def ended_worse(*args, **kwargs):
        res = real(*args, **kwargs)
        x = {"x": 3.0, "k": 20} if faster else dict(res.x)
        return dataclasses.replace(res, status="worse", success=False, x=x)

    monkeypatch.setattr(gdtools, "minimize", ended_worse)
    start = [] if faster else ["--start", "x=3", "--start", "k=20"]  # not faster: the start is the optimum
    assert main(["tune", "--param", "x=0:10", "--param", "k=1:100:log:int", "--budget", "6", "--quiet",
                 "--objective", "stdout", *start, *rounds, "--", PY, "-c", QUADRATIC, "{x}", "{k}"]) == code
    out = capsys.readouterr().out
    assert ("beats the start beyond the noise: exit status 0" in out) == (code == 0), out


def test_plot_and_history_naming_one_file_is_refused(tmp_path, capsys):
    same = str(tmp_path / "same.png")
    assert main(["tune", "--param", "x=0:10", "--param", "k=1:100:log:int", "--history", same, "--plot", same,
                 "--", PY, "-c", QUADRATIC, "{x}", "{k}"]) == 2
    assert "--plot and --history name the same file" in capsys.readouterr().err
    assert not os.path.exists(same)


def test_an_objective_that_never_changes_gets_a_warning(capsys):
    constant = "import sys; print('elapsed 0.52s (run-3)')"
    main(["tune", "--param", "x=0:10", "--budget", "8", "--quiet", "--objective", "stdout",
          "--", PY, "-c", constant, "{x}"])
    err = capsys.readouterr().err
    assert "warning: all" in err and "measured the same value, 0.52" in err
    main(["tune", "--param", "x=0:10", "--param", "k=1:100:log:int", "--budget", "8", "--quiet",
          "--objective", "stdout", "--", PY, "-c", QUADRATIC, "{x}", "{k}"])
    assert "warning" not in capsys.readouterr().err


def test_the_side_by_side_measurements_are_kept_in_the_history_and_plotted(tmp_path, capsys, monkeypatch):
    from gdtools import plotting
    from gdtools.history import History
    from gdtools.plotting import measured_again

    history = tmp_path / "run.jsonl"
    argv = ["tune", "--param", "x=0:10", "--param", "k=1:100:log:int", "--budget", "10", "--quiet",
            "--objective", "stdout", "--history", str(history), "--", PY, "-c", QUADRATIC, "{x}", "{k}"]
    assert main(argv) == 0
    side = History.load(history).meta["side_by_side"]
    assert side["best"] != "start" and set(side["settings"]) >= {"start", side["best"]}
    start = side["settings"]["start"]
    assert start["params"] == {"x": 5.0, "k": 10} and start["value"] == pytest.approx(1 + 4 + 1)  # (5-3)²+(10-20)²/100+1
    again = measured_again(History.load(history).meta)
    assert list(again) == ["start, measured again", f"best ({side['best']}), measured again"]
    figure = tmp_path / "plot.png"
    marked = []
    monkeypatch.setattr(plotting, "mark_values", lambda fig, values: marked.append(values))
    assert main(["plot", str(history), "-o", str(figure)]) == 0 and marked == [again]
    monkeypatch.undo()
    # a finished run resumed: the first end's side-by-side is dropped (None), the new end's recorded
    program = argv.index("--")
    assert main(argv[:6] + ["20"] + argv[7:program] + ["--resume"] + argv[program:]) == 0
    lines = [json.loads(line) for line in history.read_text().splitlines()]
    sides = [line["side_by_side"] for line in lines if line["kind"] == "meta" and "side_by_side" in line]
    assert len(sides) == 3 and sides[1] is None and sides[2]["settings"]["start"]["value"] == pytest.approx(6.0)


def test_with_dask_the_side_by_side_rounds_run_on_the_cluster(capsys, monkeypatch):
    distributed = pytest.importorskip("dask.distributed")
    from gdtools import timing

    real, through_cluster = timing.remeasure, []

    def spy(objective, candidates, **kwargs):
        run_on = kwargs["run_on"]
        assert run_on is not None  # without --dask: None (measured here)

        def counted(run, params):
            through_cluster.append(params)
            return run_on(run, params)

        return real(objective, candidates, **{**kwargs, "run_on": counted})

    monkeypatch.setattr(timing, "remeasure", spy)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp://",
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        out = _tune_output(capsys, "--dask", cluster.scheduler_address)
    assert through_cluster and "best command" in out


def test_with_dask_the_side_by_side_rounds_outlive_a_worker_lost_in_the_search(capsys, monkeypatch):
    # The rounds were bound, strictly, to the worker listed first when the search started: once it
    # had died (killed, or restarted by its nanny under another address) they waited for ever
    import threading

    distributed = pytest.importorskip("dask.distributed")
    from gdtools import timing

    real, hung = timing.remeasure, []

    def first_worker_lost(objective, candidates, **kwargs):
        with distributed.Client(cluster.scheduler_address) as client:
            client.retire_workers(workers=sorted(client.scheduler_info()["workers"])[:1], close_workers=True)
        run_on = kwargs["run_on"]

        def bounded(run, params):  # a round that hangs fails the test, not the test run
            if hung:
                raise AssertionError("a round hung")
            out = []
            thread = threading.Thread(target=lambda: out.append(run_on(run, params)), daemon=True)
            thread.start()
            thread.join(60)
            if not out:
                hung.append(params)
                raise AssertionError("a round hung")
            return out[0]

        return real(objective, candidates, **{**kwargs, "run_on": bounded})

    monkeypatch.setattr(timing, "remeasure", first_worker_lost)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp://",
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        out = _tune_output(capsys, "--dask", cluster.scheduler_address)
    assert not hung and "best command" in out


@pytest.mark.parametrize("objective, label", [("time", "run time (s, median of 2 runs)"),
                                              ("stdout", "the number the program printed")])
def test_gdtools_plot_labels_a_tuning_history_as_tune_plot_does(tmp_path, monkeypatch, objective, label):
    # `gdtools plot tune.jsonl` once said "loss" where `gdtools tune --plot` said "run time (s, ...)"
    from gdtools import plotting

    history, plot = tmp_path / "run.jsonl", tmp_path / "tune.png"
    labels = []
    real = plotting.mark_values
    monkeypatch.setattr(plotting, "mark_values",
                        lambda fig, values: labels.append(fig.axes[0].get_ylabel()) or real(fig, values))
    assert main(["tune", "--param", "x=0:10", "--param", "k=1:100:log:int", "--budget", "6", "--quiet",
                 "--repeats", "2", "--warmup", "0", "--final-rounds", "1", "--objective", objective,
                 "--history", str(history), "--plot", str(plot), "--", PY, "-c", QUADRATIC, "{x}", "{k}"]) in (0, 1)
    assert main(["plot", str(history), "-o", str(tmp_path / "plot.png")]) == 0
    assert labels == [label, label]


def test_a_printed_number_history_resumed_as_wall_times_is_refused(tmp_path, capsys):
    """The history's meta records what its values are (measured.objective): a run of printed
    numbers resumed with --objective time would compare wall times with those numbers."""
    history = tmp_path / "run.jsonl"
    base = ["tune", "--param", "x=0:10", "--param", "k=1:100:log:int", "--budget", "4", "--seed", "0",
            "--warmup", "0", "--repeats", "1", "--quiet", "--final-rounds", "1", "--history", str(history)]
    program = ["--", PY, "-c", QUADRATIC, "{x}", "{k}"]
    assert main(base + ["--objective", "stdout"] + program) == 0
    before = history.read_text()
    capsys.readouterr()
    assert main(base + ["--resume", "--objective", "time"] + program) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--objective stdout" in err and "--objective time" in err, err
    assert history.read_text() == before


def test_side_by_side_counts_the_rounds_run_when_runs_failed(tmp_path, capsys):
    """Every candidate failed one of its 3 timed rounds (runs 5 to 7: the search spent 4): the
    line said '2 runs each' beside '(1 of 3 runs failed)'."""
    runs = tmp_path / "runs"
    program = ("import sys; f = open(sys.argv[2], 'a'); f.write('.'); f.close(); "
               "sys.exit(1 if len(open(sys.argv[2]).read()) in (5, 6, 7) else 0)")
    assert main(["tune", "--param", "x=0:10", "--budget", "4", "--repeats", "1", "--warmup", "0",
                 "--final-rounds", "3", "--quiet", "--", PY, "-c", program, "{x}", str(runs)]) in (0, 1)
    out = capsys.readouterr().out
    assert "side by side (3 runs each)" in out and "of 3 runs failed" in out, out


def test_the_loss_curve_is_drawn_when_no_setting_could_be_measured_again(tmp_path, capsys):
    """The search ran (4 runs), then every side-by-side run failed: the command exits 1, and the
    --plot asked for is still written (it was skipped)."""
    runs, plot = tmp_path / "runs", tmp_path / "loss.png"
    program = ("import sys; f = open(sys.argv[2], 'a'); f.write('.'); f.close(); "
               "sys.exit(1 if len(open(sys.argv[2]).read()) > 4 else 0)")
    assert main(["tune", "--param", "x=0:10", "--budget", "4", "--repeats", "1", "--warmup", "0", "--quiet",
                 "--plot", str(plot), "--", PY, "-c", program, "{x}", str(runs)]) == 1
    out = capsys.readouterr().out
    assert "could be measured again" in out and f"loss curve: {plot}" in out and plot.stat().st_size > 0, out


def test_a_history_holding_only_a_failed_start_does_not_block_the_next_run(tmp_path, capsys):
    """A start that fails (a setup mistake) ends the command with exit 2 before anything was
    measured; its history held only those failures, so the same command, once the program was
    fixed, was refused ('already exists'), and with --resume replayed the failures and stopped
    with the stale error without running the program."""
    history, broken = tmp_path / "run.jsonl", tmp_path / "broken"
    broken.write_text("")
    program = "import os, sys; os.path.exists(sys.argv[2]) and sys.exit(4); print(sys.argv[1])"
    argv = ["tune", "--param", "x=0:10", "--budget", "4", "--repeats", "1", "--warmup", "0", "--quiet",
            "--objective", "stdout", "--history", str(history), "--", PY, "-c", program, "{x}", str(broken)]
    assert main(argv) == 2
    assert "exit code 4" in capsys.readouterr().err
    broken.unlink()
    assert main(argv) == 0
    assert history.exists()


def test_with_a_penalty_a_run_in_which_every_evaluation_failed_ends_as_a_failed_start_does(tmp_path, capsys):
    """With --penalty, a program that failed every run (a setup mistake) ran the side-by-side
    rounds for nothing, exited 1 and kept a history of nothing but failures, which refused the same
    command once the program was fixed; without --penalty the same mistake exits 2 and removes it."""
    history, broken = tmp_path / "run.jsonl", tmp_path / "broken"
    broken.write_text("")
    program = "import os, sys; os.path.exists(sys.argv[2]) and sys.exit(4); print(sys.argv[1])"
    argv = ["tune", "--param", "x=0:10", "--budget", "4", "--repeats", "1", "--warmup", "0", "--quiet",
            "--objective", "stdout", "--penalty", "100", "--history", str(history),
            "--", PY, "-c", program, "{x}", str(broken)]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "Every evaluation failed" in captured.err and "exit code 4" in captured.err
    assert "which held only the failed runs, was removed" in captured.err and captured.out == ""
    assert not history.exists()
    broken.unlink()
    assert main(argv) == 0


@pytest.mark.parametrize("penalty, said", [
    # with --penalty the search goes on through failures, and the run ended with exit 0 and no word
    # of the 11 failed evaluations out of 16 behind its answer
    ("0", r"16 evaluations \(\d+ failed, each counted as --penalty 0\)"),
    # a penalty far beyond the values measured counts as at most as far beyond the worst as that is
    # from the best (docs/tuning.md): the summary said "each counted as --penalty 1e+06"
    ("1e6", r"16 evaluations \(\d+ failed, each counted as --penalty 1e\+06 or less"),
])
def test_the_summary_says_how_many_evaluations_failed_and_what_stood_for_them(capsys, penalty, said):
    program = "import sys; n = int(sys.argv[1]); n > 60 and sys.exit(3); print(1 / n)"
    argv = ["tune", "--param", "n=1:100:log:int", "--start", "n=30", "--budget", "16", "--objective", "stdout",
            "--penalty", penalty, "--quiet", "--", PY, "-c", program, "{n}"]
    assert main(argv) == 0
    summary = capsys.readouterr().out.splitlines()[0]
    assert re.search(said, summary), summary


def test_a_progress_line_shows_the_loss_of_the_iteration_it_counts(tmp_path, capsys, monkeypatch):
    # the bar was counted on before its text was set: each line in a log showed the evaluations of
    # one iteration beside the loss of the one before
    from gdtools.cli import progress

    monkeypatch.setattr(progress, "LOG_INTERVAL", 0.0)
    history = tmp_path / "run.jsonl"
    code = main(["tune", "--param", "x=0:10", "--budget", "12", "--repeats", "1", "--objective", "stdout",
                 "--final-rounds", "1", "--history", str(history), "--", PY, "-c", QUADRATIC, "{x}", "20"])
    err = capsys.readouterr().err
    assert code == 0, err
    loss_at = {r["nfev"]: r["loss"] for r in map(json.loads, history.read_text().splitlines())
               if r["kind"] == "iteration" and not r.get("final")}  # (the final measurement's lines
    shown = [(int(n), float(c)) for n, c in re.findall(r" (\d+)/12 \[.*current (\S+) ", err)
             if int(n) in loss_at]                                  # keep the last iteration's loss)
    assert len(shown) >= 3
    for nfev, current in shown:
        assert current == pytest.approx(loss_at[nfev], rel=1e-3), (nfev, err)


def test_side_by_side_measures_the_last_iterate_where_the_result_is_a_best_measured_stand_in(tmp_path, capsys):
    # Where the result is the best setting measured standing in for the search's last iterate, the
    # side by side compared the start with that result only and never ran the last iterate, the
    # point the search had moved to (`make demo` printed "1.00x" for a lucky start standing in).
    state = tmp_path / "runs"
    program = ("import os, random, sys; x = float(sys.argv[1]); p = sys.argv[2]; "
               "first = x == 5 and not os.path.exists(p); open(p, 'a').close(); "
               "print(0.1 if first else 1 + (x - 7) ** 2 / 10 + 0.01 * random.random())")
    code = main(["tune", "--param", "x=0:10", "--budget", "12", "--repeats", "1", "--quiet",
                 "--objective", "stdout", "--seed", "0", "--final-rounds", "1",
                 "--", PY, "-c", program, "{x}", str(state)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "The result is the best setting measured" in out, out
    side = next(l for l in out.splitlines() if l.startswith("side by side"))
    assert "start " in side and "final point " in side, side


def test_a_listed_parameter_starts_where_told_and_its_value_reaches_the_command(tmp_path, capsys):
    space = parse_space(["codec=lz4,zstd,gzip", "level=1:9:int"])
    assert parse_start([], space) == {"codec": "zstd", "level": 5}
    assert parse_start(["codec=gzip"], space) == {"codec": "gzip", "level": 5}
    with pytest.raises(InputError, match="'bz2' is not one of codec's values lz4,zstd,gzip"):
        parse_start(["codec=bz2"], space)
    program = ("import sys; c = 3 - ['lz4', 'zstd', 'gzip'].index(sys.argv[1]); k = int(sys.argv[2]); "
               "print(c + (k - 3) ** 2 / 10)")
    history = tmp_path / "run.jsonl"
    code = main(["tune", "--param", "codec=lz4,zstd,gzip", "--param", "level=1:9:int", "--start", "codec=lz4",
                 "--gradient", "central", "--budget", "30", "--repeats", "1", "--objective", "stdout",
                 "--final-rounds", "1", "--quiet", "--history", str(history), "--", PY, "-c", program,
                 "{codec}", "{level}"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    codec_row = next(l for l in captured.out.splitlines() if l.startswith("codec "))
    assert codec_row.split()[1:] == ["lz4", "gzip"]
    assert any(l.startswith("best command: ") and l.endswith("gzip 3") for l in captured.out.splitlines())
    meta = json.loads(history.read_text().splitlines()[0])
    assert meta["space"]["codec"]["choices"] == ["lz4", "zstd", "gzip"]


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="no /proc here")
@pytest.mark.parametrize("option, path", [("--history", "/proc/run.jsonl"), ("--plot", "/proc/loss.png")])
def test_an_output_in_a_folder_that_takes_no_file_is_refused_before_measuring(capsys, option, path):
    # --plot: the search ran to its end, then savefig's traceback; --history: open's traceback
    program = "import sys; print(float(sys.argv[1]) ** 2)"
    assert main(["tune", "--param", "x=0:10", "--budget", "4", "--repeats", "1", "--quiet", "--objective",
                 "stdout", option, path, "--", PY, "-c", program, "{x}"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and f"{option} {path!r}: cannot write into '/proc'" in captured.err
