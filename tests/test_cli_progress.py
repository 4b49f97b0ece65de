"""progress_bar: quiet means silent; a log gets whole lines, a terminal the redrawn bar."""

import io

from gdtools.cli import progress
from gdtools.cli.progress import progress_bar


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_quiet_prints_nothing_and_still_counts():
    out = io.StringIO()
    with progress_bar(5, desc="tune", quiet=True, unit="eval", file=out) as bar:
        for _ in range(5):
            bar.update()
    assert out.getvalue() == ""
    assert bar.disable


def test_log_output_is_whole_lines_without_carriage_returns(monkeypatch):
    monkeypatch.setattr(progress, "LOG_INTERVAL", 0.0)
    out = io.StringIO()
    with progress_bar(4, desc="tune", unit="eval", file=out) as bar:
        for _ in range(4):
            bar.update()
    text = out.getvalue()
    assert "\r" not in text and text.endswith("\n")
    lines = text.splitlines()
    assert all(line.startswith("tune:") for line in lines)
    assert "4/4" in lines[-1] and "100%" in lines[-1] and "eval" in lines[-1]
    assert len(lines) == len(set(lines))


def test_log_output_is_rate_limited():
    out = io.StringIO()
    with progress_bar(1000, desc="dream", file=out) as bar:
        for _ in range(1000):
            bar.update()
    # Default interval: the first line, then only the final ones, not a line per step.
    assert len(out.getvalue().splitlines()) <= 3


def test_terminal_gets_the_redrawn_bar():
    out = Terminal()
    with progress_bar(3, desc="tune", file=out) as bar:
        bar.update(3)
    assert "\r" in out.getvalue() and "3/3" in out.getvalue()


def test_log_gets_no_extra_line_while_nothing_happens(monkeypatch):
    # tqdm's monitor thread used to print a stale line when a slow iteration kept the bar waiting
    # (a tune step of two long runs), and the next update printed another at once: two lines
    # seconds apart in a log promised one every LOG_INTERVAL
    import threading
    import time

    from tqdm import tqdm

    monkeypatch.setattr(progress, "LOG_INTERVAL", 0.3)
    if tqdm.monitor is not None:
        tqdm.monitor.exit()
    monkeypatch.setattr(tqdm, "monitor", None)
    monkeypatch.setattr(tqdm, "monitor_interval", 0.02)
    waiting = threading.Event()
    written_while_waiting = []

    class Log(io.StringIO):
        def write(self, text):
            if waiting.is_set():
                written_while_waiting.append(text)
            return super().write(text)

    with progress_bar(1000, desc="tune", unit="eval", file=Log()) as bar:
        start = time.monotonic()
        while time.monotonic() - start < 0.5:  # fast steps: at least one line, tqdm learns to skip
            time.sleep(0.02)
            bar.update(2)
        waiting.set()  # a slow step: nothing changes, nothing to print
        time.sleep(1.0)
        waiting.clear()
        bar.update(2)
    if tqdm.monitor is not None:
        tqdm.monitor.exit()
    assert written_while_waiting == []


def test_log_ends_with_one_final_line(monkeypatch):
    # closing a bar whose last update had just printed its final count printed that count again
    # (with another rate): two 100% lines at the end of every tune and dream log
    import time

    monkeypatch.setattr(progress, "LOG_INTERVAL", 0.0)
    out = io.StringIO()
    with progress_bar(4, desc="tune", unit="eval", file=out) as bar:
        for _ in range(4):
            time.sleep(0.01)
            bar.set_postfix_str("current 1", refresh=False)
            bar.update()
    lines = out.getvalue().splitlines()
    assert [line for line in lines if " 4/4 " in line] == lines[-1:]


def test_log_closing_line_shows_what_changed_since_the_last(monkeypatch):
    out = io.StringIO()
    with progress_bar(10, desc="tune", unit="eval", file=out) as bar:
        bar.update(3)  # (within LOG_INTERVAL of the first line: not printed)
    assert " 3/10 " in out.getvalue().splitlines()[-1]
