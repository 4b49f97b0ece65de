"""Progress bars for long-running commands (``tune``, ``dream``), sane in terminals and in CI logs.

``progress_bar(total, desc=..., quiet=..., unit=...)`` returns a ``tqdm`` bar on stderr, used as usual
(``with progress_bar(n, desc="tune") as bar: ... bar.update()``, ``bar.set_postfix(loss=...)``):

* ``quiet=True``: a disabled bar (every method still works and prints nothing); wire it to ``--quiet``.
* stderr is a terminal: the usual redrawn bar, refreshed at most every 0.1 s.
* stderr is not a terminal (a CI log, ``2> log.txt``): no carriage returns; one plain ASCII line per
  refresh, at most one every :data:`LOG_INTERVAL` seconds, plus the final line (unless the last line
  already showed it), so a log shows the progress of a long run without thousands of redraws.

The library itself never prints or draws bars; only the command line does.
"""

from __future__ import annotations

import sys

from tqdm import tqdm

#: Seconds between two progress lines when stderr is not a terminal.
LOG_INTERVAL = 30.0


class _LineWriter:
    """A file-like wrapper that turns tqdm's ``\\r``-redraws into whole lines."""

    def __init__(self, stream):
        self._stream = stream
        self._last = None

    def write(self, text: str) -> int:
        line = text.replace("\r", "").rstrip()
        if line and line != self._last:
            self._stream.write(line + "\n")
            self._last = line
        return len(text)

    def flush(self) -> None:
        self._stream.flush()


class _LogBar(tqdm):
    """tqdm for a log: closing prints the final line only when it shows something the last line
    did not (an update that printed the final count, then the close, made two 100% lines)."""

    _shown = None

    def display(self, msg=None, pos=None):
        shown = (self.n, self.postfix, self.desc)
        if msg is None and self.disable and shown == self._shown:  # close() disables, then displays
            return True
        self._shown = shown
        return super().display(msg, pos)


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress_bar(total: int | None, *, desc: str | None = None, quiet: bool = False,
                 unit: str = "it", file=None) -> tqdm:
    """A tqdm progress bar for a CLI command.

    Args:
      total: expected number of steps (``None`` when unknown: a counter without percentage).
      desc: short label shown before the bar (``"tune"``, ``"octave 2/4"``).
      quiet: return a disabled bar that prints nothing.
      unit: what one step is (``"it"``, ``"eval"``, ``"step"``).
      file: stream to write to (default ``sys.stderr``); tests pass a ``StringIO``.

    Returns:
      a ``tqdm`` instance; close it (or use it as a context manager) when done.
    """
    stream = sys.stderr if file is None else file
    if quiet:
        return tqdm(total=total, desc=desc, unit=unit, disable=True)
    if _is_terminal(stream):
        return tqdm(total=total, desc=desc, unit=unit, file=stream, dynamic_ncols=True,
                    mininterval=0.1, leave=True)
    # miniters=1: every update checks the clock itself, so tqdm's monitor thread (which prints a
    # stale line for a bar that skips updates, and the next update printed another at once) stays out
    return _LogBar(total=total, desc=desc, unit=unit, file=_LineWriter(stream), ncols=80, ascii=True,
                mininterval=LOG_INTERVAL, maxinterval=LOG_INTERVAL, miniters=1, leave=True)
