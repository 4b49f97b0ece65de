"""`gdtools plot`: history files in, a figure out; unreadable input is one line and exit code 2."""

import pytest
from PIL import Image

from gdtools.cli import main
from gdtools.history import History


def write_history(path, *, estimator="spsa", n=8):
    h = History(path, meta={"estimator": estimator, "optimizer": "adam"})
    for i in range(n):
        h.record_iteration(iteration=i, nfev=2 * (i + 1), time=0.1 * i, loss=1.0 / (i + 1),
                           grad_norm=1.0 / (i + 1), x=[float(i), 1.0])
    h.close()
    return str(path)


def test_plot_writes_a_png(tmp_path, capsys):
    a = write_history(tmp_path / "a.jsonl")
    b = write_history(tmp_path / "b.jsonl", estimator="central")
    out = tmp_path / "loss.png"
    rc = main(["plot", a, b, "-o", str(out), "--x", "evals", "--log", "--params", "--grad-norm",
               "--labels", "SPSA, central"])
    assert rc == 0
    with Image.open(out) as image:
        assert image.format == "PNG"
    assert str(out) in capsys.readouterr().err


def test_plot_writes_svg_by_extension(tmp_path):
    out = tmp_path / "loss.svg"
    assert main(["plot", write_history(tmp_path / "a.jsonl"), "-o", str(out)]) == 0
    assert out.read_text().lstrip().startswith("<?xml")


@pytest.mark.parametrize("content, message", [
    ('{"kind": "meta"}\nnot json\n{"kind": "iteration"}\n', "line 2: not a JSON record"),
    ('{"kind": "iteration", "iteration": 0}\n', "not a gdtools history file"),
    ('{"kind": "meta"}\n{"kind": "iteration", "iteration": 0, "loss": "abc"}\n', "cannot be plotted"),
    ('{"kind": "meta"}\n{"kind": "iteration", "iteration": 0, "loss": [1, 2]}\n',
     "cannot be plotted (ValueError: 'loss' of iteration record 1 is [1, 2], not a number)"),
    ('{"kind": "meta"}\n', "no iteration records"),
])
def test_unreadable_history_is_one_line_and_exit_2(tmp_path, capsys, content, message):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content)
    out = tmp_path / "x.png"
    assert main(["plot", str(bad), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gdtools plot: error: ") and message in err
    assert not out.exists()


@pytest.mark.parametrize("extra, message", [
    (["--labels", "a,b"], "--labels has 2 labels for 1 history files"),
    (["--label", "a", "--label", "b"], "--label has 2 labels for 1 history files"),
    (["--label", "a", "--labels", "b"], "with --labels or with --label, not both"),
    (["--y", "nope"], "--y must be one of"),
])
def test_bad_options_exit_2(tmp_path, capsys, extra, message):
    rc = main(["plot", write_history(tmp_path / "a.jsonl"), "-o", str(tmp_path / "x.png"), *extra])
    assert rc == 2
    assert message in capsys.readouterr().err


def test_missing_file_and_bad_output(tmp_path, capsys):
    assert main(["plot", str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "x.png")]) == 2
    assert "cannot read history file" in capsys.readouterr().err
    good = write_history(tmp_path / "a.jsonl")
    assert main(["plot", good, "-o", str(tmp_path / "no" / "dir" / "x.png")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["plot", good, "-o", str(tmp_path / "x.unknownformat")]) == 2
    assert "unknown image format 'unknownformat'" in capsys.readouterr().err
    assert main(["plot", good, "-o", str(tmp_path) + "/"]) == 2
    assert "names a directory" in capsys.readouterr().err


def test_an_output_without_extension_is_a_png_and_the_message_names_it(tmp_path, capsys):
    assert main(["plot", write_history(tmp_path / "a.jsonl"), "-o", str(tmp_path / "curve")]) == 0
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {tmp_path / 'curve.png'}" in capsys.readouterr().err


def test_unknown_x_is_an_argparse_error_of_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["plot", write_history(tmp_path / "a.jsonl"), "-o", "x.png", "--x", "nfev"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "argument --x: invalid choice: 'nfev'" in err  # not the usage block first
    assert "gdtools plot --help lists the options" in err


def test_messages_name_the_options_and_the_file(tmp_path, capsys):
    path = tmp_path / "neg.jsonl"
    h = History(path, meta={"estimator": "spsa"})
    for i in range(3):
        h.record_iteration(iteration=i, nfev=i + 1, time=0.0, loss=-1.0 + i, grad_norm=None, x=["z", 1.0])
    h.close()
    out = str(tmp_path / "x.png")
    assert main(["plot", str(path), "-o", out, "--log"]) == 2
    err = capsys.readouterr().err
    assert "--log needs values that are positive (or exactly 0)" in err and "(neg.jsonl)" in err and "drop --log" in err
    assert "log=" not in err
    zero = tmp_path / "zero.jsonl"  # a loss of exactly 0 beside positive ones: drawn, 0 marked (found by h72)
    h = History(zero, meta={"estimator": "spsa"})
    for i in range(3):
        h.record_iteration(iteration=i, nfev=i + 1, time=0.0, loss=2.0 - i, grad_norm=None, x=[1.0])
    h.close()
    assert main(["plot", str(zero), "-o", out, "--log"]) == 0
    assert main(["plot", str(path), "-o", out, "--y", "value"]) == 2
    assert "--y value: history 'spsa' (neg.jsonl) has no evaluation records" in capsys.readouterr().err
    assert main(["plot", str(path), "-o", out, "--params"]) == 2  # x is not numbers: no traceback
    err = capsys.readouterr().err
    assert err.startswith("gdtools plot: error:") and err.count("\n") == 1


def test_a_dpi_too_large_for_the_figure_is_refused(tmp_path, capsys):
    out = tmp_path / "x.png"
    assert main(["plot", write_history(tmp_path / "a.jsonl"), "-o", str(out), "--dpi", "100000"]) == 2
    assert "--dpi 100000 makes a 800,000 px wide image" in capsys.readouterr().err and not out.exists()


def test_a_file_of_one_line_that_is_not_json_is_called_so(tmp_path, capsys):
    bad = tmp_path / "hello.jsonl"
    bad.write_text("hello\n")
    assert main(["plot", str(bad), "-o", str(tmp_path / "x.png")]) == 2
    assert "line 1: not a JSON record" in capsys.readouterr().err


def test_a_format_whose_writer_needs_latex_that_is_not_installed_is_one_line_and_exit_2(tmp_path, capsys,
                                                                                         monkeypatch):
    # -o loss.pgf without xelatex: Matplotlib's RuntimeError ended gdtools plot in a traceback, and
    # gdtools tune --plot loss.pgf in one after the whole search
    import shutil

    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if "latex" in name else real_which(name, *a, **k))
    out = tmp_path / "loss.pgf"
    assert main(["plot", write_history(tmp_path / "a.jsonl"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "xelatex" in err and "not installed" in err
    assert not out.exists()


def test_a_label_may_hold_a_comma_with_label(tmp_path, monkeypatch):
    # --labels "lr 1e-3, seed 0,central" was three labels for two files
    seen = {}
    import gdtools.plotting

    real = gdtools.plotting.plot_history
    monkeypatch.setattr(gdtools.plotting, "plot_history",
                        lambda *a, **k: seen.setdefault("labels", k["labels"]) and real(*a, **k))
    a, b = write_history(tmp_path / "a.jsonl"), write_history(tmp_path / "b.jsonl")
    assert main(["plot", a, b, "-o", str(tmp_path / "x.png"), "--label", "lr 1e-3, seed 0",
                 "--label", "central"]) == 0
    assert seen["labels"] == ["lr 1e-3, seed 0", "central"]
