import os

import pytest

from gdtools.errors import InputError
from gdtools.output_path import check_output_file, figure_file

needs_proc = pytest.mark.skipif(not os.path.isdir("/proc"), reason="no /proc here")


@needs_proc
@pytest.mark.parametrize("check", [check_output_file, figure_file])
def test_a_file_in_a_folder_that_takes_no_new_file_is_refused_before_the_run(check):
    # the folder exists, so it passed; the run found out at its end: a traceback from savefig after
    # the whole search (--plot), or from the history's open (--history, history=)
    with pytest.raises(InputError, match=r"--plot '/proc/loss.png': cannot write into '/proc'"):
        check("--plot", "/proc/loss.png")


def test_a_file_in_a_writable_folder_passes_and_nothing_is_left_there(tmp_path):
    check_output_file("--history", str(tmp_path / "run.jsonl"))
    assert figure_file("--plot", str(tmp_path / "loss")) == str(tmp_path / "loss.png")
    assert list(tmp_path.iterdir()) == []


def test_an_existing_file_is_written_where_its_folder_takes_no_new_file(tmp_path, monkeypatch):
    # a history resumed (--resume, resume=True) is appended to: refused since the folder check, where
    # the folder took no new file (found by h75)
    import tempfile

    def no_new_file(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", no_new_file)
    existing = tmp_path / "run.jsonl"
    existing.write_text("")
    check_output_file("--history", str(existing))
    with pytest.raises(InputError, match="cannot write into"):
        check_output_file("--history", str(tmp_path / "new.jsonl"))


def test_a_file_written_whole_keeps_the_mode_of_the_file_it_replaces(tmp_path):
    # os.replace put a new file there, with the default mode: a 0640 history became 0644 (found by h75)
    from gdtools.output_path import written_whole

    path = tmp_path / "run.jsonl"
    path.write_text("old\n")
    os.chmod(path, 0o640)
    with written_whole(path) as partial, open(partial, "w") as f:
        f.write("new\n")
    assert path.read_text() == "new\n"
    assert os.stat(path).st_mode & 0o777 == 0o640


def test_a_fifo_is_written_in_place_not_replaced(tmp_path):
    # /dev/stdout, a FIFO: the partial file went beside it (in /dev, or replacing the FIFO by a file)
    # (found by h75)
    import threading

    from gdtools.output_path import written_whole

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    read = []
    reader = threading.Thread(target=lambda: read.append(open(fifo).read()), daemon=True)
    reader.start()
    with written_whole(fifo) as partial, open(partial, "w") as f:
        f.write("record\n")
    reader.join(timeout=30)
    assert read == ["record\n"]
    assert not os.path.isfile(fifo) and os.path.exists(fifo)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]
