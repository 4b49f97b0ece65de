"""Ask-and-tell: the search asks for points, the caller measures them however it likes and tells
the values back (Nevergrad's and Optuna's ``ask``/``tell``).

For evaluations that ``minimize`` cannot call itself: a job queue, a run on another machine, a
person reading an instrument::

    search = gd.AskTell(space=gd.Space(rate=gd.Int(10, 1000, log=True)), max_evals=40)
    while (trial := search.ask()) is not None:
        search.tell(trial, run_my_job(trial.params))   # a number, a Measurement, or an exception
    res = search.result                               # as minimize's

The search is :func:`gdtools.minimize` itself, run in a thread of its own with an executor whose
"workers" are the callers of :meth:`AskTell.ask`: it hands out the points of one batch (a gradient's
probes, the start, a line search's trial points) and waits until every one of them is told, as it
waits for an executor's futures. Several threads may ask and tell at once (a pool of workers): a
batch of 2n probes is 2n trials out at the same time. A single thread that alternates ``ask`` and
``tell`` never waits; one that asks again before telling, where the search needs the value it
holds, waits for it (warned after a while) or, with ``ask(timeout=...)``, gets a TimeoutError.
``pending`` lists the trials out: a loop interrupted between ask and tell tells them before asking
again.
"""

from __future__ import annotations

import collections
import copy
import concurrent.futures
import dataclasses
import inspect
import math
import numbers
import threading
import time
import warnings
import weakref
from typing import Any

from gdtools.errors import InputError
from gdtools.evaluation import Measurement, _coarse_eps, as_measurement


@dataclasses.dataclass(frozen=True, eq=False)  # (a handle, as Optuna's trial: equal and hashed as itself)
class Trial:
    """A point the search wants measured: ``params`` in the user's structure (a dict of values for
    a space, else x0's), and ``number``, its place among the points this AskTell asked for (from
    0; a resumed run's replayed evaluations are not asked for again, and its count starts anew).
    A trial equals only itself, so it may be a dict key or found in a list of trials."""

    params: Any
    number: int


#: Seconds ask() waits, without a timeout, for trials its own thread asked for and left untold
#: before it warns that it may wait for ever.
UNTOLD_WARNING_AFTER = 10.0


class _Stopped(KeyboardInterrupt):
    """Raised into the search by :meth:`AskTell.close`, as Ctrl-C is into a run: it ends there, with
    what was measured kept in its history."""


class _Waiting:
    __slots__ = ("trial", "future", "asked_at", "asked_by")

    def __init__(self, trial, future):
        self.trial, self.future, self.asked_at, self.asked_by = trial, future, None, None


class _AskedFor(concurrent.futures.Executor):
    """The executor the search submits its evaluations to: each one waits, as a Trial, for a caller
    of ask() to take it and for its value to be told."""

    def __init__(self, condition: threading.Condition):
        self._condition = condition
        self.queue: collections.deque[_Waiting] = collections.deque()
        self.out: dict[int, _Waiting] = {}  # asked for, not told yet, by trial number
        self.submitted = 0
        self.closed = False

    def submit(self, fn, /, *args, **kwargs):
        future = concurrent.futures.Future()
        with self._condition:
            if self.closed:  # (a batch asked for after close(): the search ends there)
                future.set_exception(_Stopped())
                return future
            trial = Trial(params=args[0], number=self.submitted)
            self.submitted += 1
            self.queue.append(_Waiting(trial, future))
            self._condition.notify_all()
        return future


class _Search:
    """What the search's thread shares with its AskTell: not the AskTell itself, so that a search
    dropped mid-run (a notebook cell run again) is collected, and its thread, waiting for trials
    nobody will tell, is ended (as by close()) instead of holding it, its history and its history
    file for ever."""

    def __init__(self):
        self.condition = threading.Condition()
        self.executor = _AskedFor(self.condition)
        self.result = None
        self.error: BaseException | None = None
        self.finished = False
        self.history = None
        self.thread: threading.Thread | None = None

    def run(self, x0, space, options) -> None:
        from gdtools.minimize import minimize

        try:
            res = minimize(_told, x0, space=space, executor=self.executor, **options)
            error = None
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            res, error = None, exc
        with self.condition:
            self.result, self.error, self.finished = res, error, True
            if res is not None:
                self.history = res.history
            elif getattr(error, "history", None) is not None:
                self.history = error.history
            self.condition.notify_all()

    def stop(self) -> None:
        """Drop the trials out and end the search at its next evaluation (not waiting for it)."""
        with self.condition:
            if self.finished:
                return
            self.executor.closed = True
            for waiting in [*self.executor.queue, *self.executor.out.values()]:
                if not waiting.future.done():
                    waiting.future.set_exception(_Stopped())
            self.executor.queue.clear()
            self.executor.out.clear()


#: the searches whose thread has started, ended as the interpreter exits (weakly: a dropped one goes)
_started: weakref.WeakSet[_Search] = weakref.WeakSet()


def _end_at_exit() -> None:
    """Stop every search and wait for its thread, before threads are joined at interpreter exit:
    a daemon thread left computing (JAX, NumPy) while the interpreter finalised at times aborted
    it ('FATAL: exception not rethrown'), and a worker thread waiting in ask() for a search nobody
    stops would keep the interpreter from exiting."""
    searches = list(_started)
    for state in searches:
        state.stop()
    for state in searches:
        state.thread.join()


threading._register_atexit(_end_at_exit)  # (as concurrent.futures stops its pools' threads)


class AskTell:
    """A search whose points the caller measures: :meth:`ask` for a point, :meth:`tell` its value.

    Args:
      x0: the start (a flat array or a pytree), or None with a ``space`` (its centre).
      space: a :class:`gdtools.Space` of named parameters; trials then carry dicts of user values.
      **options: what :func:`gdtools.minimize` takes besides its objective, ``executor`` and
        ``args`` (``gradient`` is a black-box estimator, ``"spsa"`` by default; ``max_evals``,
        ``max_iters``, ``max_time``, ``bounds``, ``seed``, ``history``, ``resume``, ``on_failure``,
        ``max_failures``, ``noise``, ``callback``, which runs in the search's thread).

    A value told is a real number, a :class:`gdtools.Measurement` (repeats, noise, a failed run) or
    an exception instance (a failed evaluation, as one an objective raises: ``on_failure`` decides).
    Bad options raise :class:`gdtools.InputError` from the constructor.
    """

    def __init__(self, x0=None, *, space=None, **options):
        from gdtools.minimize import minimize

        for name in ("executor", "args", "fun"):
            if name in options:
                raise InputError(f"AskTell takes no {name}=: the caller measures the points it asks for")
        if options.get("batch"):  # (minimize's refusal spoke of an executor and a space the caller never gave)
            raise InputError("AskTell takes no batch=True: it solves many starts of a JAX program at once (autodiff); "
                             "for several starts, run one AskTell per start")
        known = inspect.signature(minimize).parameters
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise InputError(f"AskTell got unknown options {unknown}; it takes minimize's: "
                             f"{', '.join(n for n in known if n not in ('fun', 'x0', 'space', 'executor', 'args'))}")
        if options.get("gradient") is None:  # (minimize's None would be autodiff for an x0)
            options["gradient"] = "spsa"
        gradient = options["gradient"]
        from gdtools import estimators

        if isinstance(gradient, str) and gradient == "autodiff" or isinstance(gradient, estimators.AutoDiff):
            raise InputError("gradient='autodiff' differentiates a JAX program, and AskTell has none (the "
                             "caller measures values): use 'spsa', 'smoothing', 'central' or 'forward'")
        self._state = state = _Search()
        self._best = None  # (params, value) of the lowest value told
        self._asked = weakref.WeakSet()  # every trial this search handed out (another's is not told here)
        # whether values were told by other threads than those that asked for them (one thread
        # asking and handing the trials to workers that tell them), where a wait for trials the
        # asking thread holds is no sign of a loop interrupted between ask and tell
        self._told_elsewhere = False
        self._condition, self._executor = state.condition, state.executor
        state.thread = threading.Thread(target=state.run, args=(x0, space, options), daemon=True,
                                        name="gdtools-ask-tell")
        _started.add(state)
        state.thread.start()
        # dropped mid-run: the thread ends (at interpreter exit, _end_at_exit ends it and waits for it)
        weakref.finalize(self, state.stop).atexit = False
        # Bad options are found before the first point is asked for: raised here, not at ask().
        with self._condition:
            self._condition.wait_for(lambda: state.finished or self._executor.queue)
        if state.finished and state.error is not None and not self._executor.submitted:
            raise state.error

    @property
    def history(self):
        """What the search measured (a :class:`gdtools.History`), once it has ended; None before."""
        return self._state.history

    # -- asking and telling ----------------------------------------------------------------------
    @property
    def done(self) -> bool:
        """Whether the search has ended (its budget spent, converged, failed or closed)."""
        return self._state.finished

    def ask(self, timeout: float | None = None) -> Trial | None:
        """The next point to measure, or None once the search has ended. Waits while the search is
        computing, or while every point it asked for is out being measured (TimeoutError after
        ``timeout`` seconds). An error that ended the search is raised here.

        A trial this thread asked for and never told (a measurement interrupted between ask and
        tell: Ctrl-C in a notebook) is waited for like any other, for the search needs its value:
        tell it first (:attr:`pending` lists the trials out). Without ``timeout``, a wait for such
        trials warns after :data:`UNTOLD_WARNING_AFTER` seconds."""
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, numbers.Real)
                                    or not timeout >= 0):  # (a nan waited for ever, a string raised TypeError)
            raise InputError(f"ask(timeout=) takes a number of seconds >= 0 or None, got {timeout!r}")
        with self._condition:
            askable = lambda: self._state.finished or any(not w.future.cancelled() for w in self._executor.queue)  # noqa: E731
            if timeout is None and not self._condition.wait_for(askable, UNTOLD_WARNING_AFTER):
                self._warn_if_waiting_for_itself()
            ready = self._condition.wait_for(askable, timeout)
            if not ready:
                raise TimeoutError(f"no point to measure within {timeout} s: " + (
                    f"the search waits for the values of trials {sorted(self._executor.out)} to be told"
                    if self._executor.out else "the search is still computing its next points"))
            while self._executor.queue:
                waiting = self._executor.queue.popleft()
                if not waiting.future.cancelled():
                    waiting.asked_at, waiting.asked_by = time.time(), threading.get_ident()
                    self._executor.out[waiting.trial.number] = waiting
                    self._asked.add(waiting.trial)
                    return waiting.trial
            if not isinstance(self._state.error, _Stopped):
                self._raise_error()
            return None

    def _warn_if_waiting_for_itself(self) -> None:
        """Say so where ask() may wait for ever: for trials this thread asked for and has not told
        (unless values were told by other threads than those that asked: then they are measured
        by workers)."""
        me = threading.get_ident()
        mine = sorted(number for number, w in self._executor.out.items() if w.asked_by == me)
        if mine and not self._told_elsewhere:
            warnings.warn(f"ask() is waiting for the values of trials {mine}, which this thread asked for and has "
                          f"not told: the search needs them to go on. If their measurement was interrupted, "
                          f"interrupt this wait and tell them first (search.tell(trial, value); "
                          f"search.pending lists them)", UserWarning, stacklevel=3)

    @property
    def pending(self) -> list[Trial]:
        """The trials out being measured: asked for, not told yet (in the order asked)."""
        with self._condition:
            return [w.trial for _, w in sorted(self._executor.out.items())]

    def tell(self, trial: Trial, value) -> None:
        """Give the value measured at ``trial``'s point: a real number, a Measurement, or an
        exception instance for a failed evaluation."""
        if not isinstance(trial, Trial):
            raise InputError(f"tell() takes the Trial that ask() returned, got {type(trial).__name__}")
        if isinstance(value, BaseException):
            measurement = Measurement(value=math.nan, status="failed", error=f"{type(value).__name__}: {value}")
        else:
            measurement = as_measurement(value, source=f"trial {trial.number} was told")
            eps = _coarse_eps(value)
            if eps is not None and measurement.eps is None:
                measurement = dataclasses.replace(measurement, eps=eps)
        with self._condition:
            waiting = self._executor.out.get(trial.number)
            if waiting is None or waiting.trial is not trial:
                told = trial in self._asked
                raise InputError(f"trial {trial.number} is not out being measured: "
                                 + ("it was told already, or the search that asked for it has ended"
                                    if told else "it was not asked for by this search"))
            del self._executor.out[trial.number]
            self._told_elsewhere |= waiting.asked_by != threading.get_ident()
            if measurement.ok and (self._best is None or measurement.value < self._best[1]):
                self._best = (copy.deepcopy(trial.params), float(measurement.value))  # (not the caller's dict)
            if measurement.t_start is None:
                measurement = dataclasses.replace(measurement, t_start=waiting.asked_at, t_end=time.time())
            if not waiting.future.cancelled():
                waiting.future.set_result(measurement)

    @property
    def best(self) -> tuple | None:
        """``(params, value)`` of the lowest value told so far (never a failed one), or None: an
        answer at any time, as Nevergrad's ``recommend()``. Only values told to this AskTell count:
        a resumed run's recorded evaluations are replayed, not told (they count in :attr:`result`,
        and :func:`gdtools.timing.best_measured` finds them in :attr:`history`). A noisy value
        that low is partly luck: :attr:`result` (the search's own answer) or measuring the
        candidates again side by side (:func:`gdtools.timing.remeasure`) is the better judge."""
        return self._best

    # -- the end -----------------------------------------------------------------------------------
    @property
    def result(self):
        """The search's :class:`gdtools.Result`, as ``minimize`` returns it, once it has ended by
        itself. Raises the error that ended it, or InputError if it was closed first."""
        with self._condition:
            if not self._state.finished:
                raise InputError("the search has not ended yet: ask() returns None when it has (or close() it "
                                 "and read what it measured in .history)")
            self._raise_error()
            return self._state.result

    def close(self) -> None:
        """End the search now (if it has not ended): trials out being measured are dropped, what
        was told stays in :attr:`history` (and the history file, if one was given). Called from
        the ``callback`` (which runs in the search's thread), the search ends at its next evaluation."""
        self._state.stop()
        if threading.current_thread() is not self._state.thread:  # (from the callback: it ends at its next batch)
            self._state.thread.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def _raise_error(self) -> None:
        error = self._state.error
        if error is None:
            return
        if isinstance(error, _Stopped):
            raise InputError("the search was closed before it ended: what it measured is in .history")
        raise error


def _told(params):
    """The objective given to minimize: never called, for every evaluation goes to the executor."""
    raise RuntimeError("AskTell's objective is measured by the caller of ask() and tell()")
