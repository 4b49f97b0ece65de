"""How points get measured: batches, executors, common random numbers, failures, noise, replay.

The engine never calls a black-box objective itself: it hands a batch of flat points to an
:class:`Evaluator`, which converts each to the user's argument, submits them together (to a
``concurrent.futures.Executor`` when one is given: a process pool, or a dask cluster through
``client.get_executor()``), records each result in the history as it arrives, applies the failure
policy and keeps a running estimate of the noise level. On resume it replays recorded evaluations
instead of measuring them again.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from concurrent.futures import as_completed
from typing import Any, Callable

import jax
import numpy as np

from gdtools import compile_time
from gdtools.errors import EvaluationFailed, InputError
from gdtools.program_cache import saved_jit

#: ``jax.random.fold_in`` as one compiled call: eagerly it dispatches several operations, a few
#: milliseconds an iteration of the host loop on a busy 2-core machine. Same keys, bit for bit.
_fold_in_compiled = saved_jit(jax.random.fold_in)


def fold_in(key, data: int):
    """``jax.random.fold_in(key, data)`` in one compiled call (``data`` is taken as a uint32)."""
    return _fold_in_compiled(key, np.uint32(data))


def prng_key(seed: int):
    """``jax.random.PRNGKey(seed)``, the same key, made without compiling anything.

    JAX builds the key with two small compiled programs, which a new process traces and loads
    anew: a dream starts one run per octave. The default (threefry) key of a seed is the pair of
    32-bit words of its 64-bit two's complement, ``[seed >> 32, seed & 0xffffffff]`` (``[0, seed]``
    for a seed in [0, 2**32)); any other key type goes through JAX. Both as JAX makes the key with
    ``jax_enable_x64``: without it JAX keeps the seed's low 32 bits, so seed=2**32 gave the run of
    seed=0, and a seed gave another run with x64 enabled than without."""
    seed = int(seed)
    if (str(jax.config.jax_default_prng_impl) == "threefry2x32"
            and not getattr(jax.config, "jax_enable_custom_prng", False)):
        bits = seed % 2**64
        return jax.device_put(np.array([bits >> 32, bits & 0xFFFFFFFF], dtype=np.uint32))
    with jax.enable_x64(True):
        return jax.random.PRNGKey(seed)


#: How many of the last successful measurements an Evaluator keeps by point (measured_value), from
#: batches of at most RECENT_BATCH points (the start, line-search trials: the points a run may end
#: at; a gradient's 2n probes would push them out).
RECENT_VALUES = 64
RECENT_BATCH = 4


def _real_or_none(value) -> float | None:
    """A sample as a float: a Python, NumPy or JAX real scalar (not a bool); None for anything else."""
    if isinstance(value, (bool, np.bool_)):
        return None
    try:
        array = np.asarray(value)
    except Exception:  # noqa: BLE001 - not a number
        return None
    if array.shape != () or not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        return None
    return float(array)


def is_finite(value) -> bool:
    """``math.isfinite(value)``, False for a whole number no float holds (10**400) rather than
    an OverflowError."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def check_failure_policy(on_failure, max_failures) -> None:
    """InputError unless ``on_failure`` is "stop" or a finite penalty and ``max_failures`` a
    positive integer (see :class:`Evaluator`)."""
    if not (on_failure == "stop" or (isinstance(on_failure, (int, float, np.integer, np.floating))
                                     and not isinstance(on_failure, (bool, np.bool_))
                                     and is_finite(on_failure))):
        raise InputError(f"on_failure must be 'stop' or a finite number (a penalty value), got {on_failure!r}")
    if not isinstance(max_failures, (int, np.integer)) or isinstance(max_failures, bool) or max_failures < 1:
        raise InputError(f"max_failures must be a positive integer, got {max_failures!r}")


@dataclasses.dataclass(frozen=True)
class Measurement:
    """One evaluation of an objective, with what is known about its noise.

    Attributes:
      value: the number the optimizer sees (a statistic of ``samples`` when there are several).
      samples: every repeat's raw value.
      statistic: how ``value`` was made from ``samples`` ("median", "mean", "min", "value").
      spread: standard deviation of the samples; left out, it is computed from ``samples`` (their
        sample standard deviation; nan with fewer than two finite ones). Give ``math.nan`` for
        samples whose spread says nothing of the noise (a value printed to fewer digits than it
        varies by, repeated).
      status: "ok" or "failed".
      error: what went wrong, for a failed evaluation.
      params: the point in the user's units, when the objective knows them.
      t_start, t_end: wall-clock timestamps (``time.time()``) of the evaluation.
      eps: the value's relative resolution when it is coarser than float64's: the machine epsilon
        of its type (float32: 1.2e-7), or the last printed digit's place over the value for a
        number a program printed (``"0.52"``: 0.019); else None. Finite differences need steps the
        value can resolve.
      noisy: the value is noisy by nature (a wall time is), even when a single sample cannot show
        its spread. An objective whose noise is not known then has it measured at x0 by a few
        more evaluations, instead of being taken for an exact function.
    """

    value: float
    samples: tuple = ()
    statistic: str = "value"
    spread: float | None = None
    status: str = "ok"
    error: str | None = None
    params: dict | None = None
    t_start: float | None = None
    t_end: float | None = None
    eps: float | None = None
    noisy: bool = False

    def __post_init__(self):
        # a user builds these: a wrong type or a misspelt status is named here, not found later as a
        # TypeError deep in the engine or a failure read as success
        if self.status not in ("ok", "failed"):
            raise InputError(f"Measurement status must be 'ok' or 'failed', got {self.status!r}")
        value = self.value
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            try:
                value = np.asarray(value)
                ok = value.shape == () and np.issubdtype(value.dtype, np.number) and not np.iscomplexobj(value)
            except Exception:  # noqa: BLE001 - whatever it is, it is not a number
                ok = False
            if not ok:
                raise InputError(f"Measurement value must be a real number, got {type(self.value).__name__} "
                                 f"{self.value!r}"[:300])
        object.__setattr__(self, "value", float(value))
        if self.spread is None:
            finite = [v for v in map(_real_or_none, self.samples) if v is not None and math.isfinite(v)]
            spread = float(np.std(finite, ddof=1)) if len(finite) >= 2 else math.nan
            object.__setattr__(self, "spread", spread)
        else:
            spread = _real_or_none(self.spread)
            if spread is None or spread < 0:
                raise InputError(f"Measurement spread must be the samples' standard deviation: a number >= 0 "
                                 f"(or nan for unknown), got {self.spread!r}"[:300])
            object.__setattr__(self, "spread", spread)

    @property
    def ok(self) -> bool:
        return self.status == "ok" and math.isfinite(self.value)

    @property
    def noise(self) -> float:
        """Estimated standard deviation of ``value`` (nan when the samples cannot tell)."""
        # the samples the statistic could use: a failed repeat (nan) is none of them
        n = sum(1 for v in map(_real_or_none, self.samples) if v is not None and math.isfinite(v))
        if n < 2 or not math.isfinite(self.spread):
            return math.nan
        factor = 1.2533 if self.statistic == "median" else 1.0  # efficiency of the median
        return factor * self.spread / math.sqrt(n) if self.statistic in ("median", "mean") else self.spread


def as_measurement(result: Any, source: str = "the objective returned") -> Measurement:
    """Accept what an objective may return: a Measurement, or a real scalar. ``source`` begins the
    message of an InputError for anything else (AskTell names the trial told)."""
    if isinstance(result, Measurement):
        return result
    if result is None:
        raise InputError(f"{source} None, expected a real scalar (a missing return statement?)")
    try:
        arr = np.asarray(result)
    except Exception:
        raise InputError(f"{source} {type(result).__name__}, expected a real scalar") from None
    if arr.shape != ():
        if arr.size == 1:
            arr = arr.reshape(())
        else:
            raise InputError(f"{source} an array of shape {arr.shape}, expected a scalar")
    if arr.dtype == object or arr.dtype.kind in "USV":
        raise InputError(f"{source} {type(result).__name__} {result!r}, expected a real scalar"[:300])
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise InputError(f"{source} {arr.dtype} values, expected a real scalar")
    return Measurement(value=float(arr))


class _Call:
    """Picklable ``fun(arg, *args)`` or ``fun(arg, key, *args)`` with timing and exception capture."""

    def __init__(self, fun: Callable, stochastic: bool, args: tuple = ()):
        self.fun = fun
        self.stochastic = stochastic
        self.args = tuple(args)

    def __call__(self, arg, key=None):
        t0 = time.time()
        try:
            out = self.fun(arg, key, *self.args) if self.stochastic else self.fun(arg, *self.args)
            m = as_measurement(out)
        except InputError:
            raise
        except Exception as exc:  # a failing evaluation is data, not a crash
            return Measurement(value=math.nan, status="failed", error=f"{type(exc).__name__}: {exc}",
                               t_start=t0, t_end=time.time())
        if m.t_start is None:
            m = dataclasses.replace(m, t_start=t0, t_end=time.time())
        eps = _coarse_eps(out)
        if eps is not None and m.eps is None:
            m = dataclasses.replace(m, eps=eps)
        return m


def _coarse_eps(value) -> float | None:
    """Machine epsilon of ``value``'s floating-point type if coarser than float64, else None."""
    dtype = getattr(value, "dtype", None)
    try:
        if dtype is None or not np.issubdtype(dtype, np.floating):
            return None
        eps = float(np.finfo(dtype).eps)
    except TypeError:  # bfloat16 and other types NumPy does not know
        import jax.numpy as jnp
        eps = float(jnp.finfo(dtype).eps)
    return eps if eps > np.finfo(np.float64).eps else None


def _submit_options(executor) -> dict:
    """What ``executor.submit`` needs besides the call: ``pure=False`` for a dask cluster's executor
    (``client.get_executor()``), which otherwise takes equal calls for one task (dask's default,
    ``pure=True``) and runs them once: the start measured again for its noise gave one time three
    times, and a failed start retried was never run again."""
    cfexecutor = sys.modules.get("distributed.cfexecutor")  # (dask is not imported for this)
    if cfexecutor is not None and isinstance(executor, getattr(cfexecutor, "ClientExecutor", ())):
        return {"pure": False}
    return {}


def _not_sent(exc: BaseException) -> BaseException | None:
    """Whether an executor failed to ship the objective to its workers (a setup error: every
    evaluation would fail alike), rather than the objective failing there: the error that says so
    (the deepest of its causes that does: dask raises its own TypeError from pickle's), else None."""
    import pickle

    found, seen = None, set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        text = str(exc)
        if isinstance(exc, pickle.PicklingError) or (
                isinstance(exc, (AttributeError, TypeError))
                and ("pickle" in text.lower() or "could not serialize" in text.lower()
                     or "Can't get local object" in text)):
            found = exc
        exc = exc.__cause__ or exc.__context__
    return found


def _not_sent_error(exc: BaseException) -> InputError:
    """The InputError for an objective the executor could not ship to its workers (see _not_sent)."""
    why = f"{type(exc).__name__}: {exc}"
    return InputError(f"the objective could not be sent to the executor's workers ({why[:300]}): it and what "
                      f"it holds must pickle, so define it at module level (not a lambda or a nested function) "
                      f"and keep locks, clients and open files out of it, or use a thread pool")


class Evaluator:
    """Measures batches of flat points and records them.

    Args:
      fun: the user's objective, called with ``to_arg(x)`` (and a key when ``stochastic``), then ``args``.
      to_arg: converts a flat NumPy point to the user's argument (a dict of params, a pytree).
      history: where each evaluation is recorded (``None``: not recorded).
      executor: a ``concurrent.futures.Executor`` or ``None`` to evaluate in this process.
      stochastic: whether ``fun`` takes a PRNG key.
      on_failure: "stop" or a float penalty used as the value of a failed evaluation.
      max_failures: consecutive failures after which "stop" ends the run.
      noise: a known noise level (std of one evaluation); None to estimate it from measurements.
      replay: evaluation records from an interrupted run, used instead of measuring again.
      key: PRNG key from which batches evaluated without a key of their own get one.
      record_params: record ``to_arg(x)`` as each evaluation's ``params`` when the objective's
        measurement does not carry them (named parameters of a space, in user units).
      args: extra arguments passed to ``fun`` after the point (and its key).
    """

    def __init__(self, fun, *, to_arg, history=None, executor=None, stochastic=False,
                 on_failure="stop", max_failures=3, noise=None, replay=(), key=None,
                 record_params=False, args=()):
        check_failure_policy(on_failure, max_failures)
        self._call = _Call(fun, stochastic, args)
        self.to_arg = to_arg
        self.history = history
        self.executor = executor
        self.stochastic = stochastic
        self.on_failure = on_failure
        self.max_failures = int(max_failures)
        self.known_noise = noise
        self.nfev = 0
        self.consecutive_failures = 0
        #: evaluations that succeeded, the last error seen, and the best successful measurement
        #: (a point that was measured, with the value measured there: what a run falls back on when
        #: its final point cannot be measured)
        self.successes = 0
        self.last_error: str | None = None
        self.best_x: np.ndarray | None = None
        self.best_value = math.inf
        self.worst_value = -math.inf  # of the successful measurements: bounds a penalty (see _value)
        self._recent: dict[bytes, float] = {}  # the last RECENT_VALUES successful values, by point
        self.iteration = 0
        self._noises: list[float] = []
        #: whether a measurement said it is noisy by nature (Measurement.noisy: a timing)
        self.noisy_by_nature = False
        #: machine epsilon of the objective's values (float64's unless it returned a coarser type)
        self.value_eps = float(np.finfo(np.float64).eps)
        self._replay = {int(r.get("index", r["eval"])): r for r in replay}
        self.last_ok: list[bool] = []  # which of the last batch's evaluations succeeded
        # Keys for batches asked for without one (the start point, line searches, the final check).
        self._key = key
        self.record_params = record_params

    def measured_value(self, x) -> float | None:
        """The value measured at exactly ``x`` by one of the last RECENT_VALUES successful
        evaluations, or None (for an exact objective: what measuring it again would give)."""
        return self._recent.get(np.asarray(x, dtype=float).tobytes())

    @property
    def noise(self) -> float:
        """Noise level: as given, else the median over recent measurements' noise, else 0."""
        if self.known_noise is not None:
            return float(self.known_noise)
        recent = [v for v in self._noises[-20:] if math.isfinite(v)]
        return float(np.median(recent)) if recent else 0.0

    @property
    def noise_measured(self) -> bool:
        """Whether :attr:`noise` rests on something: given, or measured (0 included: a random
        objective that repeated its value exactly at x0 is measured to be deterministic)."""
        return self.known_noise is not None or any(math.isfinite(v) for v in self._noises)

    def observe_noise(self, std: float) -> None:
        """Add a noise measurement (std of one evaluation) to the running estimate."""
        if math.isfinite(std):
            self._noises.append(float(std))

    def _replayed(self, index: int, x: np.ndarray) -> Measurement | None:
        record = self._replay.get(index)
        if record is None or record.get("x") is None:
            return None
        mine = x if self.history is None else self.history.as_recorded(x)
        if not np.allclose(np.asarray(record["x"], dtype=float), mine, rtol=1e-12, atol=1e-12):
            self._replay.clear()  # the run has diverged from the recording: measure from here on
            return None
        value = record.get("value")
        return Measurement(
            value=math.nan if value is None else float(value), samples=tuple(record.get("samples") or ()),
            statistic=record.get("statistic", "value"),
            spread=math.nan if record.get("spread") is None else float(record["spread"]),
            status=record.get("status", "ok"), error=record.get("error"), params=record.get("params"),
            t_start=record.get("t_start"), t_end=record.get("t_end"), eps=record.get("eps"),
            noisy=bool(record.get("noisy", False)))

    def __call__(self, points, key=None, *, trial: bool = False, groups=None) -> np.ndarray:
        """Measure each row of ``points``; returns the values the optimizer should use.

        ``trial``: the points are a line search's trial steps. A failure there (nan outside the
        objective's domain, a crash) is nan, the search's cue to step shorter: it neither counts
        towards ``max_failures`` nor takes the penalty.

        ``groups``: a whole number >= 0 per row, for a stochastic objective: the rows of group 0 get
        the batch's key, those of group g the key ``fold_in(key, g)``; None: every row the batch's key."""
        points = np.atleast_2d(np.asarray(points, dtype=float))
        first = self.nfev
        if self.stochastic and key is None:
            base = self._key if self._key is not None else jax.random.PRNGKey(0)
            key = fold_in(base, first)
        keys = [key] * len(points)
        if self.stochastic and groups is not None:
            of_group = {int(g): key if int(g) == 0 else fold_in(key, int(g)) for g in set(np.asarray(groups).tolist())}
            keys = [of_group[int(g)] for g in np.asarray(groups).tolist()]
        self.nfev += len(points)
        results: dict[int, Measurement] = {}
        pending = {}
        for i, x in enumerate(points):
            replayed = self._replayed(first + i, x)
            if replayed is not None:
                results[i] = replayed
                continue
            arg = self.to_arg(x)
            args = (arg, keys[i]) if self.stochastic else (arg,)
            if self.executor is None:
                with compile_time.not_counted():  # the objective's own compilation is its time
                    measured = self._call(*args)
                results[i] = self._record(first + i, x, measured)
            else:
                try:
                    pending[self.executor.submit(self._call, *args, **_submit_options(self.executor))] = i
                except Exception as exc:  # a pool shut down, or broken by a worker that died
                    self._stop_pending(pending, results, first, points)
                    self.nfev = first + i  # the points from this one on were never evaluated
                    if (unsent := _not_sent(exc)) is not None:  # (dask serializes the call here, a process pool later)
                        raise _not_sent_error(unsent) from None
                    raise EvaluationFailed(f"the executor could not start an evaluation ({type(exc).__name__}: "
                                           f"{exc}); a process pool breaks when a worker dies (a crash, "
                                           f"os._exit or the memory limit in the objective)") from None
        try:
            for future in as_completed(pending):
                i = pending[future]
                results[i] = self._record(first + i, points[i], self._outcome(future))
        except BaseException:
            # Ctrl-C (or an error) while waiting: what finished is recorded, what has not started
            # is cancelled (a run already started in a worker cannot be stopped from here)
            self._stop_pending(pending, results, first, points)
            raise
        # (its values show a failure as nan or as the penalty)
        self.last_ok = [results[i].ok for i in range(len(points))]
        for i in range(len(points)):  # before _value, which may end the run
            m = results[i]
            if m.ok and m.value < self.best_value:
                self.best_x, self.best_value = points[i].copy(), float(m.value)
            if m.ok and len(points) <= RECENT_BATCH:  # the start, line-search trials: not a gradient's probes
                self._recent[points[i].tobytes()] = float(m.value)
                while len(self._recent) > RECENT_VALUES:
                    self._recent.pop(next(iter(self._recent)))
            if m.ok and m.value > self.worst_value:
                self.worst_value = float(m.value)
        return np.array([self._value(results[i], trial=trial) for i in range(len(points))])

    def _record(self, index, x, m: Measurement) -> Measurement:
        if self.history is not None:
            # a nan or infinite value is a failure (as the run treats it), and the record says so
            status, error = ((m.status, m.error) if m.ok or m.status != "ok"
                             else ("failed", m.error or f"non-finite value {m.value!r}"))
            self.history.record_evaluation(
                iteration=self.iteration, x=x,
                params=m.params if m.params is not None else (self.to_arg(x) if self.record_params else None),
                value=m.value, samples=list(m.samples), statistic=m.statistic, spread=m.spread,
                status=status, error=error, t_start=m.t_start, t_end=m.t_end, index=index,
                **({} if m.eps is None else {"eps": m.eps}), **({"noisy": True} if m.noisy else {}))
        return m

    @staticmethod
    def _outcome(future) -> Measurement:
        """A finished future's measurement; an exception from the executor is a failed one."""
        try:
            return future.result()
        except InputError:
            raise
        except Exception as exc:
            if (unsent := _not_sent(exc)) is not None:
                raise _not_sent_error(unsent) from None
            return Measurement(value=math.nan, status="failed", error=f"{type(exc).__name__}: {exc}")

    def _stop_pending(self, pending, results, first, points) -> None:
        """Record the pending evaluations that finished, cancel those that have not started."""
        for future, i in pending.items():
            if i in results:
                continue
            if future.done() and not future.cancelled():
                if not isinstance(future.exception(), (Exception, type(None))):
                    # interrupted there (Ctrl-C reaches a process pool's workers too): nothing
                    # measured, and raised again here it left the rest unrecorded and uncancelled
                    continue
                try:
                    results[i] = self._record(first + i, points[i], self._outcome(future))
                except Exception:  # noqa: BLE001 - an objective that cannot be sent: nothing measured
                    pass
            else:
                future.cancel()

    def _value(self, m: Measurement, *, trial: bool = False) -> float:
        if m.eps is not None and m.eps > self.value_eps:
            self.value_eps = float(m.eps)
        if m.ok:
            self.consecutive_failures = 0
            self.successes += 1
            self.noisy_by_nature = self.noisy_by_nature or m.noisy
            if math.isfinite(m.noise):  # single samples say nothing about the noise
                self._noises.append(m.noise)
            return m.value
        self.last_error = m.error or "non-finite value"
        if trial:
            return math.nan
        self.consecutive_failures += 1
        if self.on_failure == "stop":
            if self.consecutive_failures >= self.max_failures:
                failed = ("an evaluation failed" if self.consecutive_failures == 1
                          else f"{self.consecutive_failures} consecutive evaluations failed")
                raise EvaluationFailed(
                    f"{failed} (max_failures="
                    f"{self.max_failures}); the last one: {m.error or 'non-finite value'}")
            return math.nan
        # The penalty, or a value as far beyond the worst measured as the worst is from the best,
        # if that is lower: a failed probe must read as worse than anything measured, but a penalty
        # of 1e6 beside values of 10 made the first gradient estimate so large that Adam's scale
        # kept its direction for many steps (the search walked away from the optimum).
        penalty = float(self.on_failure)
        if math.isfinite(self.worst_value) and math.isfinite(self.best_value):
            spread = self.worst_value - self.best_value
            penalty = min(penalty, self.worst_value + max(spread, abs(self.worst_value), 1e-12))
        return penalty
