"""Timing objectives: the measured cost of a real run, as a function of named parameters.

:func:`time_callable` times a Python function; :func:`time_command` times a program. Both return a
picklable callable ``objective(params) -> Measurement`` that an executor (a process pool, a dask
cluster) can ship to a worker, and that :func:`gdtools.minimize` accepts with ``space=``::

    space = gd.Space(rate=gd.Int(10, 1000, log=True), batch=gd.Int(1, 512, log=True))
    objective = gd.timing.time_command(["./prog", "--rate", "{rate}", "--batch={batch}"], space)
    res = gd.minimize(objective, space=space, gradient="spsa", max_evals=100)

One evaluation runs ``warmup`` discarded runs, then ``repeats`` timed runs, and returns every
repeat's time (``samples``), the ``statistic`` of them used as the value (median by default: robust
to the occasional run disturbed by something else on the machine) and their standard deviation
(``spread``), from which the engine estimates the noise level that sets finite-difference steps and
SPSA's perturbation size.

Commands are argv lists, never a shell string. ``{name}`` placeholders are replaced inside each
element by the parameter's value (``{{`` and ``}}`` are literal braces), so whatever a value holds
(spaces, ``;``, ``$(...)``, quotes) it stays inside the one argument it was written in and no shell
ever reads it. Placeholders also work in ``env`` values (``env={"OMP_NUM_THREADS": "{threads}"}``).

A run that raises (callable), exits with a non-zero code or exceeds ``timeout`` (command) makes the
evaluation ``status="failed"`` with ``value=nan`` and an ``error`` such as
``"exit code 3: <the tail of its stderr>"``; the timed repeats that finished before it are kept in
``samples``. What happens next is the engine's failure policy (``on_failure``, ``max_failures``).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from typing import Callable, Mapping, Sequence

import numpy as np

from gdtools.errors import InputError
from gdtools.evaluation import Measurement
from gdtools.space import Space

STATISTICS = ("median", "mean", "min")
OBJECTIVES = ("time", "stdout")
#: Characters of a failed run's stderr kept in its error message.
STDERR_TAIL = 400

#: A number as a program prints it: the whole of a word, or of what follows ``=`` in one (``loss=0.5``)
#: or a name's ``:`` (``loss:0.5``),
#: with a unit after it (``0.52s``, ``12ms``, ``50%``) and a sentence's full stop (``0.52.``); NaN
#: and infinities by name; thousands separated by commas (``5,202,500``).
_NUMBER = re.compile(r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?:[a-zA-Zµ%]+)?|([-+]?(?:inf(?:inity)?|nan))",
                     re.IGNORECASE)
_THOUSANDS = re.compile(r"[-+]?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?")
#: A number printed with a decimal comma (``0,93``, ``1,5s``; not thousands, ``5,202,500``).
_DECIMAL_COMMA = re.compile(r"[-+]?\d+,\d+(?:[eE][-+]?\d+)?(?:[a-zA-Zµ%]+)?")
#: What may surround a number in a word: brackets, quotes, and the punctuation after it.
_AROUND = "()[]{}<>'\",;:"


def last_number(text: str) -> str | None:
    """The last number in a program's output, as printed (None if it printed none). Only whole
    words count: ``run-3``, ``model-v2``, ``buchanan`` and ``setup.inf`` hold no number, so
    ``score 0.93 (run-3)`` gives ``0.93``.

    Raises:
      ValueError: the last number-like word has a decimal comma (``loss 0,93``, ``0,930``): read
        as a word that is no number, the run would minimise an earlier number (``epoch 5``)."""
    for word in reversed(text.split()):
        word = word.strip(_AROUND)
        if "=" in word:
            word = word.rsplit("=", 1)[1].strip(_AROUND)
        elif ":" in word:
            name, _, after = word.rpartition(":")
            if name[-1:].isalpha() or name[-1:] == "_":  # "loss:0.04" as "loss=0.04"; not "12:30"
                word = after.strip(_AROUND)
        word = word.rstrip(_AROUND + ".")  # the full stop of a sentence ("Done in 0.52.", "(loss 0.52).")
        if _THOUSANDS.fullmatch(word):
            word = word.replace(",", "")
        elif _DECIMAL_COMMA.fullmatch(word):
            raise ValueError(f"the last number the program printed, {word!r}, has a decimal comma (or is "
                             f"two numbers); print it with a decimal point (LC_NUMERIC=C for a C program)")
        match = _NUMBER.fullmatch(word)
        if match:
            return match.group(1) or match.group(2)
    return None


def printed_precision(number: str) -> float | None:
    """The relative resolution of a number as printed: its last digit's place over its size
    (``"0.52"``: 0.01 / 0.52, ``"1.5e-3"``: 0.1e-3 / 1.5e-3, ``"120"``: 1 / 120); None for zero, a
    number that is not finite, or one printed to float64's full precision. Finite differences of
    printed numbers need steps that change them in the digits printed."""
    mantissa, _, exponent = number.lower().lstrip("+-").partition("e")
    try:
        value = abs(float(number))
        place = 10.0 ** ((int(exponent) if exponent else 0) - len(mantissa.partition(".")[2]))
    except (ValueError, OverflowError):
        return None
    if not math.isfinite(value) or value == 0:
        return None
    relative = place / value
    return relative if relative > np.finfo(np.float64).eps else None


# -- argv templates ------------------------------------------------------------------------------

def _parse_template(text: str, where: str) -> list[tuple[str, str]]:
    """Split ``text`` into ("text", s) and ("param", name) pieces; ``{{``/``}}`` are literal."""
    pieces: list[tuple[str, str]] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c in "{}" and text[i + 1:i + 2] == c:
            literal.append(c)
            i += 2
        elif c == "{":
            end = text.find("}", i + 1)
            if end < 0:
                raise InputError(f"{where}: unclosed '{{' in {text!r}; write '{{{{' for a literal brace")
            name = text[i + 1:end]
            if not name:
                raise InputError(f"{where}: empty placeholder '{{}}' in {text!r}; "
                                 f"write '{{name}}' with a parameter name")
            if literal:
                pieces.append(("text", "".join(literal)))
                literal = []
            pieces.append(("param", name))
            i = end + 1
        elif c == "}":
            raise InputError(f"{where}: unmatched '}}' in {text!r}; write '}}}}' for a literal brace")
        else:
            literal.append(c)
            i += 1
    if literal or not pieces:
        pieces.append(("text", "".join(literal)))
    return pieces


def format_value(value) -> str:
    """How a parameter value is written into a command: ints plainly, floats round-trip exactly."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):  # a Choice([False, True]): the word, not 1.0
        return str(bool(value))
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    return repr(float(value))


def _fill(pieces: list[tuple[str, str]], params: Mapping) -> str:
    return "".join(text if kind == "text" else format_value(params[text]) for kind, text in pieces)


def _check_space(space) -> Space:
    if not isinstance(space, Space):
        raise InputError(f"space must be a gdtools Space, got {type(space).__name__}")
    return space


def _check_options(repeats, warmup, statistic) -> None:
    if not isinstance(repeats, (int, np.integer)) or isinstance(repeats, bool) or repeats < 1:
        raise InputError(f"repeats must be an integer >= 1, got {repeats!r}")
    if not isinstance(warmup, (int, np.integer)) or isinstance(warmup, bool) or warmup < 0:
        raise InputError(f"warmup must be an integer >= 0, got {warmup!r}")
    if statistic not in STATISTICS:
        raise InputError(f"statistic must be one of {list(STATISTICS)}, got {statistic!r}")


def _summarise(samples: list[float], statistic: str, params: dict, t_start: float, *,
               timed: bool, eps: float | None = None) -> Measurement:
    """``timed``: the samples are wall times, noisy whether or not there are enough to show it;
    ``eps``: the values' relative resolution, when coarser than float64's (printed numbers)."""
    arr = np.asarray(samples, dtype=float)
    value = {"median": np.median, "mean": np.mean, "min": np.min}[statistic](arr)
    spread = float(np.std(arr, ddof=1)) if len(arr) >= 2 else math.nan
    return Measurement(value=float(value), samples=tuple(float(s) for s in samples),
                       statistic=statistic, spread=spread, params=dict(params),
                       t_start=t_start, t_end=time.time(), noisy=timed, eps=eps)


def _failed(samples: list[float], statistic: str, params: dict, t_start: float,
            error: str) -> Measurement:
    return Measurement(value=math.nan, samples=tuple(float(s) for s in samples), statistic=statistic,
                       status="failed", error=error, params=dict(params), t_start=t_start,
                       t_end=time.time())


# -- Python callables ----------------------------------------------------------------------------

class TimedCallable:
    """``objective(params) -> Measurement``: the wall time of ``fn(**params)``; see :func:`time_callable`."""

    def __init__(self, fn: Callable, space: Space, *, repeats: int, warmup: int, statistic: str):
        self.fn = fn
        self.space = space
        self.repeats = int(repeats)
        self.warmup = int(warmup)
        self.statistic = statistic

    def __repr__(self) -> str:
        name = getattr(self.fn, "__qualname__", repr(self.fn))
        return f"time_callable({name}, repeats={self.repeats}, warmup={self.warmup})"

    @property
    def measured(self) -> dict:
        """What the values are (``gd.minimize`` keeps it in the history's meta, and plots label
        their axis with it): wall times, their statistic and repeats."""
        return {"objective": "time", "statistic": self.statistic, "repeats": self.repeats}

    def __call__(self, params: Mapping) -> Measurement:
        self.space.check(params)
        t_start = time.time()
        samples: list[float] = []
        for run in range(self.warmup + self.repeats):
            t0 = time.perf_counter()
            try:
                self.fn(**params)
            except Exception as exc:  # a failing run is a measurement, the engine decides
                return _failed(samples, self.statistic, params, t_start,
                               f"{type(exc).__name__}: {exc}")
            if run >= self.warmup:
                samples.append(time.perf_counter() - t0)
        return _summarise(samples, self.statistic, params, t_start, timed=True)


def time_callable(fn: Callable, space: Space, *, repeats: int = 5, warmup: int = 1,
                  statistic: str = "median") -> TimedCallable:
    """The wall-clock time of ``fn(**params)`` as an objective over ``space``.

    Args:
      fn: called with the parameters as keyword arguments (user units, integers as ``int``). Use a
        module-level function when the objective is sent to a process pool or a dask cluster.
      space: the :class:`~gdtools.space.Space` of the parameters.
      repeats: timed calls per evaluation.
      warmup: untimed calls before them (caches, JIT compilation, lazy imports).
      statistic: ``"median"``, ``"mean"`` or ``"min"`` of the repeats, the value minimised.

    Returns:
      a picklable ``objective(params) -> Measurement``; an exception raised by ``fn`` gives a
      failed measurement (``error="ValueError: ..."``).
    """
    if not callable(fn):
        raise InputError(f"fn must be callable, got {type(fn).__name__}")
    _check_options(repeats, warmup, statistic)
    return TimedCallable(fn, _check_space(space), repeats=repeats, warmup=warmup, statistic=statistic)


# -- programs --------------------------------------------------------------------------------------

def _head(path: str) -> bytes | None:
    """The first 256 bytes of the file at ``path`` (where a ``#!`` line is read), or None if it
    cannot be read."""
    try:
        with open(path, "rb") as file:
            return file.read(256)
    except OSError:
        return None


def _interpreter(path: str) -> str:
    """The interpreter a script's ``#!`` line names (``#!/usr/bin/env -S bash -e`` names bash), for
    the advice to run it through it; 'python3' where there is none to read."""
    first = (_head(path) or b"").split(b"\n")[0].decode("utf-8", "replace")
    words = first[2:].split() if first.startswith("#!") else []
    if words and os.path.basename(words[0]) == "env":
        words = [w for w in words[1:] if not w.startswith("-")]
    return os.path.basename(words[0]) if words else "python3"


def _check_start_line(program: str, path: str) -> None:
    """InputError where the system cannot start the executable file at ``path``: a script without a
    ``#!`` line (the exec fails with "Exec format error"; a shell would have run it as sh), or one
    whose ``#!`` line names an interpreter that does not exist (the exec fails with "No such file or
    directory", about a program that exists), or one with Windows line endings (the carriage return
    ends the interpreter's name or its last argument: ``env: 'bash\\r': No such file``)."""
    head = _head(path)
    if head is None:
        return  # unreadable: the run's own error says why
    if head.startswith(b"#!"):
        line = head[2:].split(b"\n")[0]
        if line.endswith(b"\r"):
            raise InputError(f"program {program!r} cannot start: its #! line ends in a carriage return "
                             f"(Windows line endings); convert the file to Unix line endings (dos2unix)")
        interpreter = re.split(b"[ \t]", line.lstrip(b" \t"))[0].decode("utf-8", "replace")
        if os.path.isabs(interpreter) and not os.path.isfile(interpreter):
            raise InputError(f"program {program!r} cannot start: the interpreter its #! line names, "
                             f"{interpreter!r}, does not exist")
        return
    if head.startswith(b"\xef\xbb\xbf#!"):  # an editor's UTF-8 byte-order mark hides the #! from the system
        raise InputError(f"program {program!r} cannot start: its #! line follows a byte-order mark (an "
                         f"editor's UTF-8 with BOM); save the file as UTF-8 without a BOM")
    if b"\0" not in head:  # text, not a binary: the system runs no script without a #! line
        shell = "python3" if path.endswith(".py") else "sh"
        raise InputError(f"program {program!r} is a script with no #! line, so the system cannot start it: "
                         f"add one naming its interpreter (#!/bin/sh, #!/usr/bin/env python3), or run it "
                         f"through its interpreter: [{shell!r}, {program!r}, ...]")


def _check_program(program: str, *, cwd: str | None, env: Mapping | None) -> None:
    """InputError unless ``program`` can be started (a path, or a name found on PATH)."""
    if os.sep in program or (os.altsep and os.altsep in program):
        path = program if os.path.isabs(program) or cwd is None else os.path.join(cwd, program)
        if os.path.isdir(path):
            raise InputError(f"program {program!r} is a directory, not a program")
        if not os.path.isfile(path):
            raise InputError(f"program {program!r} does not exist"
                             + (f" (looked in cwd {cwd!r})" if cwd and not os.path.isabs(program) else ""))
        if not os.access(path, os.X_OK):
            raise InputError(f"program {program!r} is not executable (chmod +x it, or run it "
                             f"through its interpreter: [{_interpreter(path)!r}, {program!r}, ...])")
        _check_start_line(program, path)
        return
    search = (env or {}).get("PATH", os.environ.get("PATH", os.defpath))
    found = shutil.which(program, path=search)
    if found is None:
        here = os.path.abspath(cwd or os.curdir)
        nearby = (f"; to run the {program} in {here!r}, give {os.path.join(os.curdir, program)!r}"
                  if os.path.isfile(os.path.join(here, program)) else "")
        raise InputError(f"program {program!r} was not found on PATH{nearby}")
    _check_start_line(program, found)


#: The programs this process's timed commands are running now (several with a thread pool).
_RUNNING: set = set()
_RUNNING_LOCK = threading.Lock()


def stop_running_programs() -> None:
    """Kill every program a timed command of this process is running, with all it started (the
    CLI calls this on Ctrl-C, so that no run is left behind to disturb the next timings)."""
    with _RUNNING_LOCK:
        running = list(_RUNNING)
    for proc in running:
        _kill(proc)


def _read_all(file) -> bytes:
    file.seek(0)
    return file.read()


def _exit_description(code: int) -> str:
    """``exit code 3``, or for a run killed by a signal (a negative code) ``killed by signal 11
    (SIGSEGV)``."""
    if code >= 0:
        return f"exit code {code}"
    try:
        name = f" ({signal.Signals(-code).name})"
    except ValueError:
        name = ""
    return f"killed by signal {-code}{name}"


def _kill(proc: subprocess.Popen) -> None:
    """Kill a timed-out run and everything it started (its own process group)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, AttributeError):
        proc.kill()


def _kill_on_timeout(proc: subprocess.Popen, timed_out: threading.Event) -> None:
    """A run's timer went off: kill it (and what it started), unless it has just ended."""
    if proc.returncode is None:
        timed_out.set()
        _kill(proc)


class TimedCommand:
    """``objective(params) -> Measurement`` for a program; see :func:`time_command`."""

    def __init__(self, argv, space, *, repeats, warmup, timeout, env, cwd, objective, statistic):
        self.argv_template = list(argv)
        self.space = space
        self.repeats = int(repeats)
        self.warmup = int(warmup)
        self.timeout = timeout
        self.env = None if env is None else dict(env)
        self.cwd = cwd
        self.objective = objective
        self.statistic = statistic
        self._argv = [_parse_template(a, f"argv[{i}]") for i, a in enumerate(self.argv_template)]
        self._env = {k: _parse_template(v, f"env[{k!r}]") for k, v in (self.env or {}).items()}
        used = {name for pieces in [*self._argv, *self._env.values()]
                for kind, name in pieces if kind == "param"}
        unknown = sorted(used - set(space.names))
        if unknown:
            raise InputError(f"placeholder {{{unknown[0]}}} names no parameter; the space has "
                             f"{list(space.names)}")
        unused = [name for name in space.names if name not in used]
        if unused:
            raise InputError(f"parameter {unused[0]!r} appears in no placeholder of the command, so "
                             f"it cannot change the run; add '{{{unused[0]}}}' to the command")
        if all(kind == "text" for kind, _ in self._argv[0]):
            _check_program(self.argv_template[0], cwd=cwd, env=self.env)

    @property
    def measured(self) -> dict:
        """What the values are (``gd.minimize`` keeps it in the history's meta, and plots label
        their axis with it): wall times or a printed number, their statistic and repeats."""
        return {"objective": self.objective, "statistic": self.statistic, "repeats": self.repeats}

    def __repr__(self) -> str:
        return f"time_command({self.argv_template!r}, repeats={self.repeats}, objective={self.objective!r})"

    def command(self, params: Mapping) -> list[str]:
        """The argv this objective runs for ``params`` (one element per template element)."""
        return [_fill(pieces, params) for pieces in self._argv]

    def environment(self, params: Mapping) -> dict | None:
        """The environment of a run: this process's, updated with ``env`` (placeholders filled)."""
        if not self._env:
            return None
        return {**os.environ, **{k: _fill(p, params) for k, p in self._env.items()}}

    def _run_once(self, argv, env) -> tuple[float, str | None, str | None]:
        """One run: (seconds or number, error or None, stdout).

        Its output goes to temporary files, not pipes: the run ends when the program exits, not
        when the last process holding its output closes it (a child left running in the
        background, ``server &``, kept a pipe open and was timed, or hung the run)."""
        with tempfile.TemporaryFile() as out_file, tempfile.TemporaryFile() as err_file:
            t0 = time.perf_counter()
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                        stdout=out_file if self.objective == "stdout" else subprocess.DEVNULL,
                                        stderr=err_file, env=env, cwd=self.cwd, start_new_session=True)
            except OSError as exc:
                return math.nan, f"cannot start {argv[0]!r}: {exc.strerror or exc}", None
            with _RUNNING_LOCK:
                _RUNNING.add(proc)
            # The timeout is a timer that kills the run, and the run is waited for in one blocking
            # wait: Popen.wait(timeout=...) polls, sleeping up to 50 ms between looks, so every time
            # over a tenth of a second came out rounded up to the next of those looks (0.165, 0.215,
            # 0.265 s for runs of 0.14 to 0.19 s: the IMU demo's 1.3x was partly that rounding)
            timed_out = threading.Event()
            timer = None
            if self.timeout is not None:
                timer = threading.Timer(self.timeout, _kill_on_timeout, args=(proc, timed_out))
                timer.daemon = True
                timer.start()
            try:
                proc.wait()
            except BaseException:  # Ctrl-C while it runs: the program (in its own session) stops too
                _kill(proc)
                proc.wait()
                raise
            finally:
                if timer is not None:
                    timer.cancel()
                with _RUNNING_LOCK:
                    _RUNNING.discard(proc)
            elapsed = time.perf_counter() - t0
            if timed_out.is_set():
                return math.nan, f"timed out after {self.timeout:g} s", None
            out, err = _read_all(out_file), _read_all(err_file)
        if proc.returncode != 0:
            tail = (err or b"").decode("utf-8", "replace").strip()[-STDERR_TAIL:]
            return math.nan, _exit_description(proc.returncode) + (f": {tail}" if tail else ""), None
        if self.objective == "time":
            return elapsed, None, None
        text = (out or b"").decode("utf-8", "replace")
        try:
            number = last_number(text)
        except ValueError as exc:
            return math.nan, str(exc), None
        if number is None:
            return math.nan, f"no number in the program's output: {text.strip()[-STDERR_TAIL:]!r}", None
        value = float(number)
        if not math.isfinite(value):
            return math.nan, f"the last number the program printed is {number!r}", None
        return value, None, text

    def __call__(self, params: Mapping) -> Measurement:
        self.space.check(params)
        argv, env = self.command(params), self.environment(params)
        t_start = time.time()
        samples: list[float] = []
        previous = None
        precision = None  # the coarsest relative resolution of the numbers printed
        for run in range(self.warmup + self.repeats):
            value, error, text = self._run_once(argv, env)
            if error is not None:
                return _failed(samples, self.statistic, params, t_start, error)
            if self.objective == "stdout":
                printed = printed_precision(last_number(text))
                if printed is not None and (precision is None or printed > precision):
                    precision = printed
            if run >= self.warmup:
                samples.append(value)
            if self.objective == "stdout" and value == previous and run + 1 < self.warmup + self.repeats:
                # the same number printed twice in a row (a warm-up's included): most likely an
                # exact result, which more runs cannot change. Its samples are those two (never
                # more than repeats), its spread unknown (nan, not 0): a noisy number printed to
                # two decimals also repeats now and then, and must not make the run's noise 0.
                samples = [value] * min(2, self.repeats)
                return dataclasses.replace(_summarise(samples, self.statistic, params, t_start, timed=False,
                                                      eps=precision), spread=math.nan)
            previous = value
        return _summarise(samples, self.statistic, params, t_start, timed=self.objective == "time", eps=precision)


def time_command(argv: Sequence[str], space: Space, *, repeats: int = 5, warmup: int = 1,
                 timeout: float | None = None, env: Mapping[str, str] | None = None,
                 cwd: str | os.PathLike | None = None, objective: str = "time",
                 statistic: str = "median") -> TimedCommand:
    """The wall-clock time of a program run (or the last number it prints) as an objective.

    Args:
      argv: the command as a list, e.g. ``["./prog", "--rate", "{rate}"]``; each ``{name}`` is
        replaced by the value of parameter ``name`` within its own element (never through a
        shell). Every placeholder must name a parameter of ``space`` and every parameter must
        appear in some placeholder (of ``argv`` or ``env``).
      space: the :class:`~gdtools.space.Space` of the parameters.
      repeats: timed runs per evaluation. With ``objective="stdout"`` the runs stop when the
        program prints the same number twice in a row (the warm-up's counts): an exact result.
      warmup: untimed runs before them (file cache, CPU frequency).
      timeout: seconds after which a run is killed (with everything it started) and the
        evaluation fails; None for no limit.
      env: variables added to (or replacing in) this process's environment for the runs; values
        may hold placeholders.
      cwd: working directory of the runs (a relative program path is looked up from it).
      objective: ``"time"``, the wall time of each run; or ``"stdout"``, the last number the
        program prints on stdout (for objectives that are not timings).
      statistic: ``"median"``, ``"mean"`` or ``"min"`` of the repeats, the value minimised.

    Returns:
      a picklable ``objective(params) -> Measurement``. A run that exits non-zero or times out
      gives a failed measurement with ``error="exit code N: <stderr tail>"`` or ``"timed out ..."``.

    Raises:
      InputError: a malformed template, a placeholder naming no parameter, a parameter no
        placeholder uses, or a program that does not exist.
    """
    if isinstance(argv, (str, bytes)) or not isinstance(argv, Sequence) or not argv:
        raise InputError(f"argv must be a non-empty list of strings such as ['./prog', '--rate', "
                         f"'{{rate}}'] (never a shell string), got {argv!r}")
    if not all(isinstance(a, str) for a in argv):
        raise InputError(f"every element of argv must be a string, got {argv!r}")
    _check_options(repeats, warmup, statistic)
    if timeout is not None and (not isinstance(timeout, (int, float)) or isinstance(timeout, bool)
                                or not timeout > 0 or not math.isfinite(timeout)):
        raise InputError(f"timeout must be a positive number of seconds or None, got {timeout!r}")
    if env is not None and (not isinstance(env, Mapping)
                            or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())):
        raise InputError(f"env must be a dict of str -> str, got {env!r}")
    if cwd is not None:
        cwd = os.fspath(cwd)
        if not os.path.isdir(cwd):
            raise InputError(f"cwd {cwd!r} is not a directory")
    if objective not in OBJECTIVES:
        raise InputError(f"objective must be one of {list(OBJECTIVES)}, got {objective!r}")
    return TimedCommand(argv, _check_space(space), repeats=repeats, warmup=warmup, timeout=timeout,
                        env=env, cwd=cwd, objective=objective, statistic=statistic)


# -- comparing settings fairly ----------------------------------------------------------------------

def _run_elsewhere(run_on, run, params) -> Measurement:
    """One measurement through ``run_on``; its failure (a worker lost) is a failed run."""
    try:
        return run_on(run, params)
    except Exception as exc:  # noqa: BLE001 - whatever went wrong there, nothing was measured
        return Measurement(value=math.nan, status="failed", error=f"{type(exc).__name__}: {exc}")


class Remeasured(list):
    """:func:`remeasure`'s measurements, one per candidate, with ``rounds``: the rounds it ran
    (fewer than asked where exact values repeated; a candidate's samples leave out its failed
    runs, so they may be fewer still)."""

    rounds: int = 0


def remeasure(objective: Callable, candidates: Sequence[Mapping], *, rounds: int = 5,
              warmup: int = 1, run_on: Callable | None = None) -> "Remeasured":
    """Measure several settings again, interleaved, so that drift on the machine hits all alike.

    The tuner's own measurements of its best point are biased low (of many noisy values, the
    smallest is partly luck) and were taken at different times; comparing the start and the best
    point fairly means running them again side by side. Each round runs every candidate once (in
    an order that rotates from round to round), after ``warmup`` untimed runs of each.

    Args:
      objective: a :func:`time_command` or :func:`time_callable` objective (each round then runs
        one repeat of it), or any ``objective(params) -> float | Measurement``.
      candidates: the settings to compare, dicts in user units.
      rounds: samples per candidate.
      warmup: untimed runs of each candidate before the first round.
      run_on: ``run_on(run, params) -> Measurement`` runs one measurement somewhere else (``run``
        is picklable): e.g. on one worker of the dask cluster the search ran on, so that the
        comparison times the same hardware; None runs them here.

    A value that is not a time (``Measurement.noisy`` false, e.g. a number a program prints) and
    that came out exactly the same in two rounds, for every candidate, is exact: no further round
    runs (they could not change the comparison).

    Returns:
      a :class:`Remeasured` list (``.rounds``: the rounds run) of one :class:`Measurement` per
      candidate, in order: the statistic of the objective over the
      rounds that succeeded and their spread. A failed run does not end a candidate's rounds (a
      program that fails now and then is measured on): when some of its runs failed, ``error``
      says how many and the last error (the status stays "ok"). A candidate whose first two runs
      (warm-up included) both failed is not run again: a failed measurement.
    """
    from gdtools.evaluation import _Call

    if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 1:
        raise InputError(f"rounds must be an integer >= 1, got {rounds!r}")
    if not isinstance(warmup, int) or isinstance(warmup, bool) or warmup < 0:
        raise InputError(f"warmup must be an integer >= 0, got {warmup!r}")
    statistic = getattr(objective, "statistic", "median")
    single = objective
    if isinstance(objective, (TimedCommand, TimedCallable)):
        single = copy.copy(objective)
        single.repeats, single.warmup = 1, 0
    run = _Call(single, stochastic=False)
    candidates = [dict(c) for c in candidates]
    samples: list[list[float]] = [[] for _ in candidates]
    errors: list[str | None] = [None] * len(candidates)
    failures = [0] * len(candidates)     # timed runs that failed
    failed_runs = [0] * len(candidates)  # runs that failed, warm-up runs included
    timed = False  # whether the runs measure something noisy by nature (Measurement.noisy)
    t_start = time.time()

    def given_up(i) -> bool:  # its first two runs failed
        return not samples[i] and failed_runs[i] >= 2

    for r in range(warmup + rounds):
        shift = r % max(1, len(candidates))
        for i in [*range(shift, len(candidates)), *range(shift)]:
            if given_up(i):
                continue  # failed every run, twice: a setting that hangs costs no more timeouts
            # a plain objective's exception: a failed run, as in minimize
            m = run(candidates[i]) if run_on is None else _run_elsewhere(run_on, run, candidates[i])
            timed = timed or m.noisy
            if m.status != "ok" or not math.isfinite(m.value):
                errors[i] = m.error or f"non-finite value {m.value!r}"
                failures[i] += r >= warmup
                failed_runs[i] += 1
            elif r >= warmup:
                samples[i].append(m.value)
        if not timed and r - warmup >= 1 and all(given_up(i) or (len(s) >= 2 and min(s) == max(s))
                                                 for i, s in enumerate(samples)):
            break  # every candidate's value repeated exactly: more rounds cannot change anything
    done = r + 1 - warmup  # the rounds run (fewer than asked when the values were exact)
    out = Remeasured()
    out.rounds = done
    for c, s, e, k in zip(candidates, samples, errors, failures):
        if not s:
            out.append(_failed(s, statistic, c, t_start, e or "no run succeeded"))
            continue
        m = _summarise(s, statistic, c, t_start, timed=timed)
        out.append(dataclasses.replace(m, error=f"{k} of {done} runs failed; the last: {e}") if k else m)
    return out


def pick_best(measured: Sequence[Measurement]) -> int | None:
    """The index of the best of :func:`remeasure`'s measurements: the smallest value among those
    that never failed, else among those that failed now and then; None if every one failed."""
    ok = [i for i, m in enumerate(measured) if m.status == "ok"]
    if not ok:
        return None
    return min(ok, key=lambda i: (measured[i].error is not None, measured[i].value))


def best_measured(history) -> dict | None:
    """The params (user units) of the successful evaluation with the smallest value, or None.

    With noisy measurements this point is flattered by luck; compare it with the run's final point
    through :func:`remeasure` before believing its time.
    """
    best, best_value = None, math.inf
    for record in history.evaluations:
        value = record.get("value")
        if (record.get("status", "ok") == "ok" and record.get("params") and value is not None
                and math.isfinite(value) and value < best_value):
            best, best_value = dict(record["params"]), value
    return best


def last_iterate(history, space: Space) -> dict | None:
    """The params (user units) of the search's last iterate: the optimiser's own answer, also where
    the result (``res.x``) is the best measured point standing in for it (the last iterate was
    measured worse than the start, or could not be measured). None without a recorded iterate.

    A noisy objective's best measured point is flattered by luck (a run that measured its start at
    a quiet moment keeps the start); compare both through :func:`remeasure`.
    """
    for record in reversed(history.iterations):
        if record.get("final") == "best measured":
            if record.get("last_x") is None:
                continue  # the stand-in, not an iterate (a history without last_x: the last record's)
            x = record["last_x"]  # the iterate after the last iteration record's step
            return space.from_unit(x) if len(x) == len(space) else None
        x = record.get("x")
        if x is None or len(x) != len(space):
            return None
        return space.from_unit(x)
    return None
