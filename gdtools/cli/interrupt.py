"""Ctrl-C as "stop and keep what is done" for long commands (``dream``), and SIGTERM or SIGHUP as
Ctrl-C (:func:`terminate_as_interrupt`, for every command).

Inside ``with stop_on_interrupt("dream") as stop:`` the first Ctrl-C (or SIGTERM, or SIGHUP) only
sets ``stop.requested`` and says so on stderr: the command's step callback returns ``stop.now()``,
so the command finishes the step it is in, saves what it has and exits 130 (143 for SIGTERM:
``stop.exit_code``; ``stop.honoured``). A second one raises ``KeyboardInterrupt`` at once (or
:class:`Terminated`). Outside the main thread (where Python cannot take signals) the block does
nothing and Ctrl-C behaves as usual.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import Iterator


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (``timeout``, a scheduler cancelling a job, a closed ssh session) taken as
    Ctrl-C is: the same clean-up (the programs being timed stop, what is measured is kept), then
    the exit code of the signal, 128 + its number."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Inside the block SIGTERM and SIGHUP raise :class:`Terminated` (in the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum, frame):
        raise Terminated(signum)

    names = [name for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]
    previous = {name: signal.signal(getattr(signal, name), on_signal) for name in names}
    try:
        yield
    finally:
        for name, handler in previous.items():
            signal.signal(getattr(signal, name), handler if handler is not None else signal.SIG_DFL)


class StopRequest:
    """Whether the user asked to stop (``requested``, set by the first Ctrl-C), and whether the work
    stopped for it (``honoured``: :meth:`now` said so to it; a request after the work ended is not)."""

    def __init__(self):
        self.requested = False
        self.honoured = False
        self.signum = signal.SIGINT  # the signal that asked (SIGTERM and SIGHUP ask as Ctrl-C does)

    @property
    def exit_code(self) -> int:
        """128 + the number of the signal that asked: 130 for Ctrl-C, 143 for SIGTERM."""
        return 128 + int(self.signum)

    def now(self) -> bool:
        """True when the work should stop now (a step's callback returns this)."""
        self.honoured = self.honoured or self.requested
        return self.requested


@contextlib.contextmanager
def stop_on_interrupt(command: str, *, saving: str = "what is done", file=None) -> Iterator[StopRequest]:
    """Turn the first SIGINT into a :class:`StopRequest`; ``saving`` says what is kept."""
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    stream = sys.stderr if file is None else file

    def on_interrupt(signum, frame):
        if stop.requested:  # the second Ctrl-C (or signal): abort now
            restore()
            raise KeyboardInterrupt if signum == signal.SIGINT else Terminated(signum)
        stop.requested, stop.signum = True, signum
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        again = "Ctrl-C again" if signum == signal.SIGINT else "a second signal"
        print(f"\ngdtools {command}: {name}: stopping after this step and saving {saving} "
              f"({again} aborts without saving)", file=stream, flush=True)

    # SIGTERM and SIGHUP (a scheduler's cancel, a closed session) ask as Ctrl-C does: a scheduler
    # usually waits a while before it kills, time enough to finish the step and save
    names = [name for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)]
    previous = {name: signal.signal(getattr(signal, name), on_interrupt) for name in names}

    def restore():
        for name, handler in previous.items():
            if handler is None:  # a handler installed from C: Python's own is the closest
                handler = signal.default_int_handler if name == "SIGINT" else signal.SIG_DFL
            signal.signal(getattr(signal, name), handler)

    try:
        yield stop
    finally:
        restore()
