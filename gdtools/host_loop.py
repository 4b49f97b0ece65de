"""The optimisation loop that runs on the host, one gradient estimate per iteration.

Used for black-box estimators (their probes are measured by an :class:`~gdtools.evaluation.Evaluator`,
possibly on an executor) and for traceable objectives whenever the host is needed between steps
(a callback, a time budget, a custom estimator such as DeepDream's tiled one). The optax update and
the projection onto the bounds are one jitted function, so the per-iteration overhead is a few
dispatches. NumPy problems run in float64 (``jax.enable_x64`` around the update); device problems
keep ``x`` as a JAX array.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import inspect
import math
import time
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gdtools import compile_time
from gdtools.bound_args import BoundArgs, kept_on
from gdtools.errors import EvaluationFailed, InputError
from gdtools.estimators.autodiff import AutoDiff
from gdtools.estimators.base import Estimate
from gdtools.estimators.finite_difference import _FiniteDifference
from gdtools.evaluation import fold_in
from gdtools.free_data import optimizer_data
from gdtools.problem import key_hint
from gdtools.program_cache import saved_jit
from gdtools.line_search import LineSearchDescent
from gdtools.result import State
from gdtools.gain import FIRST_STEP, calibrated_gain, curvature_limited_first_step
from gdtools.transforms import descend, keeps_value_and_grad, largest_projected_component, needs_value_fn

#: Machine epsilon of float32: the precision assumed for an objective whose values did not change
#: at all over steps sized for float64 (see HostLoop.run).
FLOAT32_EPS = float(np.finfo(np.float32).eps)

#: Times in a row a run goes back to the best point measured, each time after the step from it
#: landed where every probe failed, before it stops (see HostLoop.run).
MAX_RETREATS = 3

#: Extra evaluations at x0 that measure the noise of a stochastic objective whose noise is unknown.
NOISE_PROBES = 3

#: Noise below this part of |f(x0)| (or of 1, for a small f) leaves finite differences' line search
#: in place: a noise=1e-12 on a Rosenbrock of value 9 switched it to the decaying gain, which ran to
#: max_iters where the line search converges (the noise-aware steps still see the noise).
NEGLIGIBLE_NOISE = 1e-10

#: Dispatch a device run's next estimate before reading this one's value back (see HostLoop.run).
PIPELINE = True


@saved_jit
def _largest_device(grad):
    return largest_projected_component(grad, None)


_projected_largest_device = saved_jit(largest_projected_component)


def stationarity(grad, x, clip):
    """:func:`~gdtools.transforms.largest_projected_component` where ``grad`` lives: compiled on a
    device, in NumPy on the host (no dispatch per iteration)."""
    lower, upper = clip if clip is not None else (None, None)
    if isinstance(grad, jax.Array):
        return _largest_device(grad) if clip is None else _projected_largest_device(grad, x, lower, upper)
    return largest_projected_component(np.asarray(grad, dtype=float), np.asarray(x, dtype=float), lower, upper)


#: max_iters when a budget of evaluations or time ends the run (minimize's, without max_iters given)
UNLIMITED_ITERS = 10**9


def _check_estimate(estimator, est, x) -> None:
    """InputError unless a (custom) estimator's first estimate is an ``Estimate`` whose grad is a
    numeric array shaped like ``x`` and whose nfev a count: else the run failed deep in optax (a
    list as grad) or in the budget's arithmetic (nfev None), or on ``None.grad`` (a missing return)."""
    name = type(estimator).__name__
    if not isinstance(est, Estimate):
        raise InputError(f"the gradient estimator {name} returned {type(est).__name__}, not a "
                         f"gdtools.estimators.Estimate(value=..., grad=..., nfev=...)")
    dtype = getattr(est.grad, "dtype", None)
    if dtype is None or not np.issubdtype(dtype, np.number):
        raise InputError(f"the gradient estimator {name} returned a gradient of type {type(est.grad).__name__}; "
                         f"it must be a numeric array (NumPy or JAX) shaped like x, {np.shape(x)}")
    if np.shape(est.grad) != np.shape(x):
        raise InputError(f"the gradient estimator {name} returned a gradient "
                         f"of shape {np.shape(est.grad)}; x has shape {np.shape(x)}")
    if not isinstance(est.nfev, (int, np.integer)) or isinstance(est.nfev, bool) or est.nfev < 0:
        raise InputError(f"the gradient estimator {name} returned nfev={est.nfev!r}; it must be the number "
                         f"of evaluations the estimate cost, an integer >= 0")


def _takes_min_step(estimator) -> bool:
    """Whether ``estimator.estimate`` takes ``min_step=`` (the least step that moves each integer
    parameter of a Space), as gdtools's black-box estimators do; the documented interface of one's
    own estimator has no such argument (a TypeError on every Space, the docs' example's too)."""
    parameters = inspect.signature(estimator.estimate).parameters.values()
    return any(p.name == "min_step" or p.kind is p.VAR_KEYWORD for p in parameters)


def _takes_neighbours(estimator) -> bool:
    """Whether ``estimator.estimate`` names ``neighbours=`` (central differences): not given to
    ``**kwargs``, which may pass them on to an estimator that takes none."""
    return "neighbours" in inspect.signature(estimator.estimate).parameters


def _fun_of_a_black_box(*args, **kwargs):
    """The ``fun`` an estimator that is not traceable gets: calling it says what to call instead."""
    raise InputError("this gradient estimator called fun, which is given to traceable estimators "
                     "(traceable = True, a JAX objective) only: a black-box estimator measures its probes "
                     "with evaluate(points), points of shape (m, n), which counts them in nfev and max_evals, "
                     "records them in the history, runs them on the executor and gives each batch one key")


#: The attribute under which an objective keeps its compiled read of a line search's value and
#: gradient (optax.value_and_grad_from_state).
VALUE_AND_GRAD_FROM_STATE = "_gdtools_value_and_grad_from_state"

#: The attribute under which a line search's value_fn keeps its compiled updates, and how many.
DESCENTS = "_gdtools_descents"
MAX_DESCENTS = 4


@functools.lru_cache(maxsize=32)
def _jitted_descent(optimizer, data, lower, upper, value_fn):
    """The compiled update for one optimizer and bounds, kept so that runs with the same optimizer
    object (a dream's octaves and frames) reuse its compilations; ``data``: what the optimizer
    reads (free_data.optimizer_data), baked into the program, so that a change is a new one."""

    def step(grad, state, x, value):
        return descend(optimizer, grad, state, x, value=value, value_fn=value_fn, lower=lower, upper=upper)

    return jax.jit(step)


def _descent_with_args(optimizer, data, lower, upper, fun_flat):
    """The compiled update whose line search evaluates ``fun_flat(x, *args)``, the args an input."""

    def step(grad, state, x, value, *args):
        value_fn = lambda y: fun_flat(y, *args)  # noqa: E731
        return descend(optimizer, grad, state, x, value=value, value_fn=value_fn, lower=lower, upper=upper)

    return jax.jit(step)


def _raise_if_value_fn_wanted(exc: TypeError) -> None:
    """The InputError for an optimizer's update that failed for want of the objective's value
    function; nothing for another TypeError."""
    if "value_fn" in str(exc) or "value" in str(exc):
        raise InputError(
            "this optimizer needs the objective's value function (an optax line "
            "search), which a black box cannot provide; use the default optimizer "
            "(L-BFGS with a host line search) or one without a line search") from None


class Probes:
    """The ``evaluate`` an estimator gets: ``evaluate(points)`` measures a batch of probes with the
    iteration's key; ``evaluate.grouped(points, groups)`` measures them with a key per group (see
    :meth:`grouped`); ``evaluate.again(points)`` measures probes that just failed once more, as far
    as the budget allows (the final measurement's evaluation kept), their failures not counted
    towards ``max_failures`` (the engine's recovery, probes closer to x at the next iteration,
    must still get its turn), with a key of their own: a ``fun(x, key)`` that failed for a key
    fails for it again. (Forward differences also measure through it the other side of an integer
    whose probe measured exactly f(x).)"""

    def __init__(self, evaluator, key, max_evals, n=None):
        self.evaluator, self.key, self.max_evals, self.n = evaluator, key, max_evals, n
        self._again = 0  # the calls of again so far: each gets another key

    def _check_shape(self, points) -> None:
        shape = np.shape(points)
        if self.n is not None and (len(shape) not in (1, 2) or shape[-1] != self.n):
            # (measured as they came, points of another length reached the objective: a 4-vector
            # for 3 parameters, without a word)
            raise InputError(f"evaluate(points) takes points of shape (m, {self.n}), one row per point of "
                             f"the {self.n} parameters; the gradient estimator gave shape {shape}")

    def __call__(self, points):
        self._check_shape(points)
        return self.evaluator(points, key=self.key)

    def grouped(self, points, groups):
        """Measure ``points`` as one batch, the rows of each group with a key of their own:
        ``groups`` holds a whole number >= 0 per row; group 0 gets the iteration's key, group g
        ``fold_in(key, g)``. The rows of a group share their draw of a ``fun(x, key)`` (common
        random numbers: SPSA's and smoothing's pairs) and other groups get independent ones."""
        self._check_shape(points)
        groups = np.asarray(groups)
        if groups.shape != (len(np.atleast_2d(points)),) or groups.dtype.kind not in "iu" or np.any(groups < 0):
            raise InputError(f"evaluate.grouped(points, groups) takes a whole number >= 0 per row of points "
                             f"({len(np.atleast_2d(points))} rows); the gradient estimator gave {groups!r}"[:300])
        return self.evaluator(points, key=self.key, groups=groups)

    def again(self, points):
        points = np.asarray(points)
        if self.max_evals is not None:
            points = points[:max(0, self.max_evals - self.evaluator.nfev - 1)]
        if not len(points):
            return np.full(0, np.nan)
        self._again += 1
        # (a key the iteration's groups, small whole numbers, do not take; the same on a resume)
        return self.evaluator(points, key=fold_in(self.key, 2**30 + self._again), trial=True)


class HostLoop:
    """One run of the host loop; ``run()`` returns the raw outcome for ``minimize`` to package."""

    def __init__(self, *, problem, estimator, optimizer, fun_flat, evaluator, history, key,
                 max_iters, max_evals, max_time, tol, callback, calibrate, skip_records=0,
                 resumed_time=0.0, gain_if_noisy=None, gain_iterations=None):
        self.problem = problem
        self.estimator = estimator
        self.optimizer = optimizer
        self.fun_flat = fun_flat
        # what an estimator gets as ``fun``: a black box's estimator measures through ``evaluate``
        self.estimated_fun = fun_flat if fun_flat is not None else _fun_of_a_black_box
        self.evaluator = evaluator
        self.history = history
        self.key = key
        self.max_iters = max_iters
        self.max_evals = max_evals
        self.max_time = max_time
        self.tol = tol
        self.callback = callback
        self.calibrate = calibrate
        #: the optimizer is the default for exact objectives (a line search), to be replaced by the
        #: calibrated decaying gain if the objective shows noise at x0 (a line search compares
        #: single noisy values and accepts steps uphill by luck): the gain's name for the history
        self.gain_if_noisy = gain_if_noisy
        #: the iterations the decaying gain was built for in the run being resumed (its schedule
        #: depends on them: a resumed run with another budget must still take the recorded steps)
        self.gain_iterations = gain_iterations
        self.skip_records = skip_records
        self.resumed_time = resumed_time

    # -- the jitted update -----------------------------------------------------------------------
    def _make_step(self, optimizer):
        lower, upper = self.problem.clip if self.problem.clip is not None else (None, None)
        # Traceable objectives give optax line searches their value_fn; black boxes cannot.
        extra = needs_value_fn(optimizer) and self.estimator.traceable
        value_fn = self.fun_flat if extra else None
        data = optimizer_data(optimizer)
        if isinstance(lower, np.ndarray):  # per-coordinate bounds are not a cache key
            return _jitted_descent.__wrapped__(optimizer, data, lower, upper, value_fn)
        if value_fn is not None:
            # A line search's value_fn is this run's objective: the compiled update is kept on it
            # (minimize gives the same value_fn again for the same objective), not in the shared
            # cache, which would keep the user's objective (and what it holds) alive.
            # With args (BoundArgs) the update takes them as inputs, kept on the objective itself.
            bound = isinstance(value_fn, BoundArgs)
            owner = value_fn.fun_flat if bound else value_fn
            build = _descent_with_args if bound else _jitted_descent.__wrapped__
            kept = kept_on(owner, DESCENTS, collections.OrderedDict)
            key = (optimizer, data, lower, upper)
            try:
                step = kept.get(key)
            except TypeError:  # an unhashable optimizer: compiled for this run only
                step = key = None
            if step is None:
                step = build(optimizer, data, lower, upper, owner)
                if key is not None:
                    kept[key] = step
                    while len(kept) > MAX_DESCENTS:  # a new optimizer object each call never matches again
                        kept.popitem(last=False)
            return BoundArgs(step, value_fn.args) if bound else step
        return _jitted_descent(optimizer, data, lower, upper, value_fn)

    def _check_update(self, x) -> None:
        """An optimizer whose update wants the objective's value function (an optax line search,
        ``optax.lbfgs``), which a black box cannot give, is named before anything is measured, not
        after the start and the first gradient (hours of measurements for a program tuned): the
        update is traced once here (JAX keeps the trace for the run's first step)."""
        optimizer = self.optimizer
        with self._precision():
            point = x if self.problem.device else np.asarray(x, dtype=float)
            value = jnp.asarray(0.0, point.dtype) if self.problem.device else np.float64(0.0)
            try:
                jax.eval_shape(self._make_step(optimizer), point, optimizer.init(jnp.asarray(x)), point, value)
            except TypeError as exc:
                _raise_if_value_fn_wanted(exc)
                raise

    def _project(self, x):
        if self.problem.lower is None:
            return x
        return np.clip(x, self.problem.lower, self.problem.upper)

    def _precision(self):
        """NumPy problems update in float64; a device problem, and a JAX objective (whose line
        search traces it inside the update), keep the user's setting (forcing x64 off broke float64
        device runs: float32 optimizer state against float64 x; forcing it on traced a JAX objective
        holding float64 NumPy arrays in float64 beside its float32 program: a compiler error)."""
        if self.problem.device or self.estimator.traceable:
            return contextlib.nullcontext()
        return jax.enable_x64(True)

    def _measure_noise(self, x, f_start) -> None:
        """An objective of unknown noise that is noisy by nature is measured at x0 a few more times:
        a stochastic one (each time with its own key), and, for finite differences, one whose
        measurements say they are noisy but carry too few samples to show how much (a timing with
        ``repeats=1``).

        Without a noise level, finite differences would use noise-free steps and difference pure
        noise; ``NOISE_PROBES`` extra evaluations give the noise's order of magnitude. SPSA and
        smoothing on such a timing keep their smallest perturbation (5% of each range) instead:
        on the IMU example (benchmarks/noisy_imu.py), perturbations sized from a measured noise
        (the rule's cap, a fifth of each range) ended several times further from the fastest
        setting than the smallest.
        """
        ev = self.evaluator
        noisy_by_nature = self.problem.stochastic or (ev.noisy_by_nature
                                                      and isinstance(self.estimator, _FiniteDifference))
        if not noisy_by_nature or ev.known_noise is not None or ev.noise > 0:
            return
        probes = NOISE_PROBES
        if self.max_evals is not None:  # leave the first estimate and the final measurement their share
            spare = self.max_evals - self.nfev() - self.estimator.evaluations(int(np.size(x))) - 1
            probes = min(probes, spare)
        if probes < 1:
            return
        # Only successful measurements: a failed probe reads as nan ("stop", which left the noise
        # unmeasured: noise-free steps on a noisy objective) or as the on_failure penalty (a
        # "noise" of the penalty's size: the steps' cap). A start that failed is the penalty too.
        values = [f_start] if ev.successes else []
        # One batch, so that an executor runs them side by side (asked for one at a time, a cluster
        # measured them one after another); each with its own key, fold_in(key, 2**31 + j).
        measured = ev(np.repeat(np.asarray(x, dtype=float)[None], probes, axis=0), key=self.key,
                      groups=2**31 + np.arange(probes))
        values = np.asarray(values + [float(v) for v, ok in zip(measured, ev.last_ok) if ok])
        if values.size >= 2:
            ev.observe_noise(float(np.std(values, ddof=1)))
            self._f0_samples = values

    def _observe_at(self, x, value) -> None:
        """Tell the estimator f(x), for a deterministic objective only: one draw of a random
        objective (or of a timing) is not its value at x."""
        if not self.problem.stochastic and not (self.evaluator is not None and self.evaluator.noisy_by_nature):
            self.estimator.observe_at(x, value)

    def _measure_start(self, x) -> float:
        """The value at x0. With ``on_failure="stop"`` a failed start is measured again (a program
        that fails now and then may just have been unlucky) until it succeeds or fails
        ``max_failures`` times in a row, which is an error: there is nothing to start from."""
        ev = self.evaluator
        try:
            while True:
                value = float(ev(np.asarray(x, dtype=float)[None])[0])
                if math.isfinite(value) or ev.on_failure != "stop":
                    return value
                if self.max_evals is not None and ev.nfev >= self.max_evals:
                    return value  # the budget is spent: reported as a start that did not measure
        except EvaluationFailed as exc:
            if ev.consecutive_failures < ev.max_failures:  # not the objective's failures: the executor's
                raise EvaluationFailed(f"at x0, the start point: {exc}") from None
            hint = key_hint(ev._call.fun, len(ev._call.args)) if ev.stochastic else ""
            failed = ("once" if ev.consecutive_failures == 1
                      else f"{ev.consecutive_failures} times in a row")
            raise InputError(f"the objective did not return a finite value at x0, the start point: "
                             f"it failed {failed} (max_failures="
                             f"{ev.max_failures}); the last error: {ev.last_error}. Nothing to optimise "
                             f"from there{hint}") from None

    def _first_step(self, noise) -> float:
        """The default gain's first step, shrunk where the first probes show strong curvature."""
        probes = getattr(self.estimator, "last_probes", None)
        samples = np.asarray(self._f0_samples, dtype=float)
        if probes is None or self.problem.device or samples.size == 0:
            return FIRST_STEP
        return curvature_limited_first_step(f0=float(np.mean(samples)), f0_samples=samples.size,
                                            size=probes["size"], plus=probes["plus"], minus=probes["minus"],
                                            noise=noise)

    def _estimate_from_state(self, x, state) -> Estimate:
        """Autodiff's estimate at ``x`` read from the state of the line search that accepted ``x``
        (computed again where the state's value is not finite, as optax's
        ``value_and_grad_from_state`` does); no evaluation counted."""
        fun = self.estimated_fun
        owner, args = (fun.fun_flat, fun.args) if isinstance(fun, BoundArgs) else (fun, ())
        from_state = kept_on(owner, VALUE_AND_GRAD_FROM_STATE,
                             lambda: jax.jit(optax.value_and_grad_from_state(owner)))
        with self._precision():
            value, grad = from_state(x, *args, state=state)
        return Estimate(value=value, grad=grad, nfev=0)

    # -- the loop ----------------------------------------------------------------------------------
    def nfev(self, extra=0):
        return (self.evaluator.nfev if self.evaluator is not None else self._nfev) + extra

    def run(self) -> dict:
        problem, estimator = self.problem, self.estimator
        x = problem.x0
        self._nfev = 0
        t0, compiling0 = time.perf_counter(), compile_time.seconds()
        # the run's time, JAX's compilation left out (see gdtools.compile_time)
        elapsed = lambda: self.resumed_time + time.perf_counter() - t0 - (compile_time.seconds() - compiling0)  # noqa: E731
        kwargs = dict(scale=problem.scale, bounds=problem.bounds)
        optimizer, step, state = None, None, None
        if isinstance(self.optimizer, LineSearchDescent) and self.evaluator is None:
            raise InputError("LineSearchDescent measures trial points and needs a black-box estimator")
        f_start = math.nan
        stopped_at_start = None
        self._f0_samples = []
        if self.evaluator is not None:
            # settings that do not fit x (a step per coordinate of another length) are named before
            # anything is measured: a first measurement may take an hour
            getattr(estimator, "check_size", lambda n: None)(int(np.size(x)))
            if not self.calibrate and not isinstance(self.optimizer, LineSearchDescent):
                self._check_update(x)
            f_start = self._measure_start(x)
            # A start that failed reads as the on_failure penalty: no value of the objective, to be
            # told to the estimator as f(x0) (forward differences took (f(x0 + h) - penalty) / h
            # for the first gradient, 5.8e9 where it was 6) or to size the first step from
            measured = math.isfinite(f_start) and self.evaluator.successes > 0
            self._f0_samples = [f_start] if measured else []
            # (nan: nothing known at x0, not what an earlier run of the same estimator told it: the
            # level of f its noise-aware steps are sized from, f(x0) for differences against x0)
            estimator.observe(f_start if measured else math.nan)
            self._observe_at(x, f_start if measured else math.nan)
            if math.isfinite(f_start):
                try:
                    self._measure_noise(x, f_start)
                except EvaluationFailed as exc:
                    # max_failures failures in a row among the start's noise probes: the run ends
                    # as failed, x0 its result, as failures in its iterations end it (not as an
                    # exception that threw the measured start away)
                    stopped_at_start = exc
            if self.gain_if_noisy and self.evaluator.noise > NEGLIGIBLE_NOISE * max(1.0, abs(f_start)):
                self.calibrate = True
                if self.history is not None:
                    self.history.update_meta(optimizer=self.gain_if_noisy)
        searching = not self.calibrate and isinstance(self.optimizer, LineSearchDescent)
        if not self.calibrate:
            optimizer = self.optimizer
            with self._precision():
                state = optimizer.init(jnp.asarray(x))
                step = None if searching else self._make_step(optimizer)
        best_f = f_start  # what a custom estimator that measures nothing here reports (Result.fun)
        last_grad, reason, detail, cost, k = None, None, "", 0, 0
        # On a device, with a pure JAX estimator (GradientEstimator.pure), the next estimate is
        # dispatched before this one's value is read back, so the accelerator is never idle while
        # the host records, checks and calls back (the same computations in the same order: the
        # same results). Stopping after an iteration discards the estimate made ahead.
        ahead = (PIPELINE and problem.device and self.evaluator is None and estimator.traceable
                 and getattr(estimator, "pure", False) and not searching)
        pending = None  # (iteration, estimate made ahead, the point it was made at)
        # An optax line search (L-BFGS's zoom) keeps the value and gradient at the point it accepted:
        # autodiff's estimate there is read from its state, as the compiled loop does, not computed
        # again (the 5-d Rosenbrock: 90 evaluations against the compiled loop's 51 for the same 37
        # iterations). Not with bounds (the projection may move the point) nor for a value of another
        # dtype than the state keeps; only from an optimizer given value_fn, as the compiled loop (a
        # user's momentum named "grad" in its state is no gradient at the new point).
        from_state = (optimizer is not None and not searching and self.evaluator is None
                      and type(estimator) is AutoDiff and problem.clip is None
                      and keeps_value_and_grad(optimizer, jnp.asarray(x)))
        kept = None  # (the point the line search's state holds the value and gradient at, that state)
        uncounted_step = None  # the optax state of a step taken ahead whose line-search trials are not counted yet
        trials_before = 0  # the line-search trials of the last step (an optax line search)
        last = None  # (the point, its estimate): reused where x did not move (exact objectives)
        previous_x = None
        largest_at_start = gnorm = math.nan  # the gradient's largest component: first finite, latest
        recent: list[float] = []
        seen = None  # a device run's last (value, largest gradient component)
        unusable = 0  # iterations in a row whose estimate a failed probe spoilt
        retreat = None  # (the iteration the run last went back to the best point, how many times in a row)
        average_from, average_sum, average_count = None, 0.0, 0  # (None: the first step sets it)
        # what the estimator takes over a space, read from its signature once, not every iteration
        gets_min_step = problem.space is not None and _takes_min_step(estimator)
        gets_neighbours = gets_min_step and _takes_neighbours(estimator)
        try:
            if stopped_at_start is not None:
                raise stopped_at_start  # (ends the run below, as a failure in the loop does)
            for k in range(self.max_iters + 1):
                if k == self.max_iters:
                    reason = "max_iters"
                    break
                # The next estimate costs what the last one did (before the first: what the
                # estimator expects), and the final measurement of the result needs one more.
                expected = cost or estimator.evaluations(int(np.size(x)))
                if self.max_evals is not None and self.nfev(expected + 1) > self.max_evals:
                    reason = "max_evals"
                    break
                if self.max_time is not None and elapsed() >= self.max_time:
                    reason = "max_time"
                    break
                if self.evaluator is not None:
                    self.evaluator.iteration = k
                key = fold_in(self.key, k)
                if self.evaluator is not None:
                    getattr(estimator, "observe_precision", lambda eps: None)(self.evaluator.value_eps)
                extra = {}
                if gets_min_step:
                    extra["min_step"] = problem.min_step(x)
                    if gets_neighbours:
                        extra["neighbours"] = problem.unit_neighbours
                evaluate = Probes(self.evaluator, key, self.max_evals, int(np.size(x))) if self.evaluator else None
                noise = self.evaluator.noise if self.evaluator is not None else 0.0
                exact = (self.evaluator is not None and not problem.stochastic and not estimator.stochastic
                         and noise == 0.0 and not self.evaluator.noisy_by_nature)
                successes = self.evaluator.successes if self.evaluator is not None else 0
                measured = self.evaluator.nfev if self.evaluator is not None else 0
                if kept is not None and kept[0] is x:
                    est = self._estimate_from_state(x, kept[1])
                elif pending is not None and pending[0] == k and pending[2] is x:
                    est = pending[1]
                elif exact and last is not None and last[0] is x and not unusable:
                    # the line search found no step, so x is where it was: an exact objective's
                    # gradient there is the one just estimated (measuring its n or 2n probes
                    # again gave the same numbers, 40 evaluations an iteration at n = 40)
                    est = dataclasses.replace(last[1], nfev=0)
                else:
                    # After a failed probe the next ones are half as far from x (a quarter after two
                    # failures...): a program that gets faster towards a limit it fails beyond (a
                    # batch too large for memory) otherwise has the same probe fail again and again.
                    probe_scale = (kwargs if not unusable or kwargs["scale"] is None
                                   else {**kwargs, "scale": kwargs["scale"] * 0.5 ** unusable})
                    est = estimator.estimate(self.estimated_fun, x, key=key, iteration=k, evaluate=evaluate,
                                             noise=noise, **probe_scale, **extra)
                pending = None
                untold = False  # a zero gradient the budget left no room to tell from float32 rounding
                if (exact and isinstance(estimator, _FiniteDifference) and estimator.step is None
                        and self.evaluator.value_eps < FLOAT32_EPS and not np.any(np.asarray(est.grad))):
                    # Every probe returned exactly f(x): either f is flat there, or it resolves no
                    # change as small as steps sized for float64 make (float32 arithmetic behind a
                    # Python float: a quadratic of value 1.3e6 "converged" at x0). Steps sized for
                    # float32 tell which; the run keeps them if they see a slope.
                    steps = estimator.steps(x, min_step=extra.get("min_step"))
                    estimator.observe_precision(FLOAT32_EPS)
                    # (integer parameters move by their unit either way: the same probes again, as
                    # a space of Ints measured every one twice, would tell nothing)
                    other = not np.array_equal(estimator.steps(x, min_step=extra.get("min_step")), steps)
                    if other and (self.max_evals is None or self.nfev(est.nfev + 1) <= self.max_evals):
                        self.evaluator.value_eps = FLOAT32_EPS
                        est = estimator.estimate(self.estimated_fun, x, key=key, iteration=k, evaluate=evaluate,
                                                 noise=noise, **kwargs, **extra)
                    else:
                        estimator.observe_precision(self.evaluator.value_eps)
                        # no room for other probes: the run cannot say it converged (a float32
                        # quadratic of 248 at x0 did, with max_evals=21 for n = 10)
                        untold = other
                last = (x, est)
                if k == 0 and self.evaluator is not None and self.evaluator.successes == 0:
                    # the start and every probe of the first gradient failed, each read as the
                    # penalty: nothing to go on, and the rest of the budget would fail the same way
                    # (a wrong option in a command, a dead license server)
                    reason = "failed"
                    break
                kept = None
                if k == 0:
                    _check_estimate(estimator, est, x)
                    if from_state:  # (a float32 model of float64 parameters under x64: computed again)
                        kept_value = optax.tree_utils.tree_get(state, "value")
                        from_state = (jnp.result_type(est.value) == kept_value.dtype
                                      and jnp.result_type(est.grad) == optax.tree_utils.tree_get(state, "grad").dtype)
                    if est.nfev == 0 and self.max_time is None and self.max_iters >= UNLIMITED_ITERS:
                        # an estimate that measures nothing never spends max_evals: the run went on for ever
                        raise InputError(f"the gradient estimator {type(estimator).__name__} measured nothing for its "
                                         f"first estimate (nfev=0), so max_evals cannot end the run; give "
                                         f"max_iters (or max_time), or measure through evaluate(points)")
                cost = est.nfev
                if self.evaluator is None:
                    self._nfev += est.nfev
                grad = est.grad
                # The largest gradient component is asked for before anything is made ahead: a
                # device runs its programs in order, so asked after the next estimate it would
                # wait for it, and the host's bookkeeping would leave the device idle again.
                largest = stationarity(grad, x, problem.clip)
                ahead_x = ahead_state = None
                if (ahead and optimizer is not None and k + 1 < self.max_iters
                        and (self.max_evals is None
                             or self.nfev(cost + 2 * trials_before + 1) <= self.max_evals)):
                    # (made ahead only where the budget lets the next iteration use it: this step's
                    # line-search trials and the next estimate and step's, expected as the last ones)
                    with self._precision():
                        ahead_x, ahead_state = step(grad, state, x, est.value)
                    uncounted_step = ahead_state
                    pending = (k + 1, self._estimate_from_state(ahead_x, ahead_state) if from_state else
                               estimator.estimate(self.estimated_fun, ahead_x, key=fold_in(self.key, k + 1),
                                                  iteration=k + 1, evaluate=None, noise=noise, **kwargs),
                               ahead_x)
                # One transfer from the device: the value and the largest gradient component
                # (not finite when grad is not, so it also tells whether grad is finite).
                value, gnorm = (float(v) for v in jax.device_get((est.value, largest)))
                finite = math.isfinite(gnorm)
                gnorm = gnorm if finite else math.nan
                if math.isnan(largest_at_start):
                    largest_at_start = gnorm
                if estimator.traceable and not math.isfinite(value):
                    finite = False  # a JAX objective's value is exact: nan or inf there is a failure too
                if k == 0 and self.evaluator is not None:
                    value = f_start
                if k >= self.skip_records:
                    self.history.record_iteration(iteration=k, nfev=self.nfev(), time=elapsed(), loss=value,
                                                  grad_norm=gnorm,
                                                  x=x if problem.device else problem.within_bounds(x))
                if math.isfinite(value) and (not math.isfinite(best_f) or value < best_f):
                    best_f = value
                if not finite:
                    no_probe_failed = (self.evaluator is not None
                                       and self.evaluator.successes - successes == self.evaluator.nfev - measured)
                    # (gdtools' own differences: a subclass that keeps them overflows as they do)
                    own = getattr(type(estimator).estimate, "__module__", "").startswith("gdtools.")
                    if estimator.traceable or self.evaluator is None or (no_probe_failed and own):
                        # (gdtools' differences of a black box's probes that all returned finite
                        # values, so large that they overflow (±1e308 either side of x): measuring
                        # them again gives the same; it was called a failed probe, 'the last error:
                        # None', after 3 estimates)
                        reason, detail = "nonfinite", k
                        if previous_x is not None:  # as the compiled loop: the last finite point
                            x = previous_x
                        break
                    if no_probe_failed:
                        # no probe failed: a custom estimator made the nan or inf itself (a bug),
                        # which measuring again would not mend
                        raise InputError(f"the gradient estimator {type(estimator).__name__} returned a gradient "
                                         f"that is not finite ({int(np.sum(~np.isfinite(np.asarray(grad))))} of "
                                         f"{np.size(grad)} components) at iteration {k}, though every probe it "
                                         f"measured gave a finite value")
                    # A failed probe: measure again next iteration rather than step blindly, but
                    # not for ever: failures that alternate with successes never make max_failures
                    # evaluations in a row, so count the iterations they spoil.
                    unusable += 1
                    ev = self.evaluator
                    if ev.on_failure == "stop" and unusable >= ev.max_failures:
                        reason = "failed"
                        detail = (f"{unusable} gradient estimates in a row had a failed probe, so no gradient "
                                  f"(max_failures={ev.max_failures}); the last error: {ev.last_error}")
                        break
                    continue
                unusable = 0
                ev = self.evaluator
                if (ev is not None and k > 0 and est.nfev > 0 and ev.successes == successes
                        and ev.on_failure != "stop" and ev.best_x is not None and not np.array_equal(ev.best_x, x)):
                    # Every probe failed, each read as the penalty: a flat estimate, zero, so the
                    # run stayed where every setting near x fails and spent the rest of its budget
                    # there (27 of 30 evaluations of a tune run). It goes back to the best point
                    # measured, where probes on both sides of the failing region tell it apart. A
                    # step that lands in the failing region from there again and again (a fixed
                    # gain: sgd(0.4) went back and forth 1500 times) ends the run.
                    # (the step right after going back failed all over again: a cycle)
                    cycle = retreat is not None and k - retreat[0] <= 2
                    retreat = (k, retreat[1] + 1 if cycle else 1)
                    previous_x, x = x, self._project(np.array(ev.best_x, dtype=float))
                    if retreat[1] > MAX_RETREATS:
                        reason = "failed"
                        detail = (f"after each of the last {MAX_RETREATS} steps from the best point measured, "
                                  f"every probe failed: the steps land where the objective fails (lower the "
                                  f"step size, or narrow the bounds); the last error: {ev.last_error}")
                        break
                    continue
                last_grad = grad
                if untold:
                    # (a largest component of 0 would read as converged; at the start, the budget
                    # is too small for one step: detail says what it needs)
                    reason, detail, gnorm = "max_evals", self.nfev(est.nfev + 1), math.nan
                    break
                if not estimator.stochastic and noise == 0.0 and gnorm <= self.tol:  # (no evaluator: noise 0)
                    reason = "converged"
                    break
                with self._precision():
                    budget = self.max_iters
                    if self.max_evals is not None:
                        budget = min(budget, max(1, (self.max_evals - self.nfev()) // max(cost, 1)))
                    if average_from is None:
                        # Optional Polyak-Ruppert averaging (Polyak & Juditsky 1992): recommend the
                        # mean of the last `average` fraction of the iterates, not the last one
                        # (whichever optimizer steps).
                        fraction = float(getattr(estimator, "average", 0.0) or 0.0)
                        average_from = math.inf
                        if fraction > 0 and budget < UNLIMITED_ITERS:  # (no window in an unlimited run)
                            average_from = k + int(budget * (1 - fraction))
                    if optimizer is None:
                        # resumed: the step schedule of the recorded run (this run's own budget
                        # still decides where iterate averaging starts: it does not move the steps)
                        schedule = int(self.gain_iterations) if self.gain_iterations else budget
                        if self.history is not None:
                            self.history.update_meta(gain_iterations=schedule)
                        noisy = problem.stochastic or noise > 0
                        optimizer = calibrated_gain(problem.scale, iterations=schedule, noisy=noisy,
                                                    first_step=self._first_step(noise))
                        state = optimizer.init(jnp.asarray(x))
                        step = self._make_step(optimizer)
                    if searching:
                        search_key = fold_in(key, 2**20)
                        # an exact objective's result is the point a trial measured (or x, measured
                        # before): no final measurement to keep one for, so the last trial may use it
                        # (kept, a budget of the start, one gradient and one more paid for the gradient
                        # and had no trial left to step with: 2n + 2 for central spent 2n + 1, unmoved)
                        left = (None if self.max_evals is None
                                else self.max_evals - self.nfev() - (0 if exact else 1))
                        new_x, new_value, state = optimizer.step(
                            x, value, grad, state, project=self._project,
                            evaluate=lambda pts, _key=search_key: self.evaluator(pts, key=_key, trial=True),
                            max_evaluations=left,
                            bounds=None if problem.lower is None else (problem.lower, problem.upper),
                            value_eps=self.evaluator.value_eps,
                            setting=None if problem.space is None else
                            (lambda point: tuple(problem.to_user(point).items())),
                            integers=None if problem.space is None else problem.integers)
                        if new_x is not x:  # an accepted trial point: measured there
                            self._observe_at(new_x, new_value)
                        elif exact and (left is None or self.nfev() < self.max_evals - 1):
                            # no step helped, along the quasi-Newton direction nor along -g: on an
                            # exact objective the next iterations would replay the same searches
                            # on the same numbers (the gradient at x is reused), so stop here.
                            # (Not where the budget cut the search short: that run stops as
                            # max_evals at the next iteration, not as one that cannot progress.)
                            recent.extend([0.0, 0.0, 0.0])
                    elif ahead_x is not None:  # the step was taken ahead, with the estimate after it
                        new_x, state = ahead_x, ahead_state
                    else:
                        try:
                            if not problem.device:
                                step_value = np.float64(value)
                            elif self.evaluator is None:  # stays on the device, as in the step taken
                                step_value = est.value    # ahead (one compiled update for both)
                            else:
                                step_value = jnp.asarray(value)
                            new_x, state = step(grad, state, x, step_value)
                        except TypeError as exc:
                            _raise_if_value_fn_wanted(exc)
                            raise
                new_x = new_x if problem.device else np.asarray(new_x, dtype=float)
                if from_state and not ahead:  # (made ahead, the estimate read from the state is pending)
                    kept = (new_x, state)
                if self.evaluator is None and not searching:
                    # An optax line search evaluates the objective at its trial points: count them
                    # (and expect as many next time, for max_evals).
                    trials = optax.tree_utils.tree_get(state, "num_linesearch_steps")
                    uncounted_step = None
                    if trials is not None:
                        trials = int(trials)
                        self._nfev += trials
                        cost += trials
                        trials_before = trials
                if self.callback is not None:
                    try:
                        with compile_time.not_counted():
                            # in x0's structure (a device x0's too: its pytree or matrix, not the flat vector)
                            user_x = problem.jax_unravel(x) if problem.device else problem.to_user(x)
                            stop = self.callback(State(iteration=k, x=user_x, fun=value, grad_norm=gnorm,
                                                       nfev=self.nfev(), elapsed=elapsed(), history=self.history))
                    except StopIteration:  # scipy's way to stop from a callback (scipy >= 1.11)
                        stop = True
                    if stop:
                        x = new_x
                        reason = "callback"
                        k += 1
                        break
                if not problem.device:
                    recent.append(float(np.max(np.abs(new_x - x))))
                else:  # comparing x would cost a transfer a step: the value and gradient, read anyway
                    recent.append(0.0 if seen == (value, gnorm) else 1.0)
                    seen = (value, gnorm)
                previous_x, x = x, new_x
                if average_from is not None and k + 1 >= average_from:  # averaging a noisy run's tail
                    average_sum, average_count = average_sum + x, average_count + 1
                if len(recent) >= 3 and max(recent[-3:]) == 0.0 and not estimator.stochastic:
                    reason = "no_progress"
                    k += 1
                    break
        except EvaluationFailed as exc:
            reason, detail = "failed", str(exc)
        if average_count >= 2 and reason in ("max_evals", "max_iters", "max_time"):
            x = self._project(average_sum / average_count)
        # The objective's value at the result where an estimate made there holds it (one made
        # ahead, or the last one where x did not move): not asked for again. An estimate made
        # ahead and not used was evaluated all the same: counted.
        value_at_x = grad_at_x = None
        if uncounted_step is not None and self.evaluator is None:  # a step taken ahead, not used
            self._nfev += int(optax.tree_utils.tree_get(uncounted_step, "num_linesearch_steps", 0))
        if pending is not None:
            if self.evaluator is None:
                self._nfev += pending[1].nfev
            if pending[2] is x:
                value_at_x, grad_at_x = pending[1].value, pending[1].grad
        if value_at_x is None and last is not None and last[0] is x:
            value_at_x, grad_at_x = last[1].value, last[1].grad
        return dict(x=x, nfev=self.nfev(), best_f=best_f, f_start=f_start, nit=k, reason=reason, detail=detail,
                    grad=last_grad, elapsed=elapsed(), optimizer=optimizer, largest=gnorm,
                    largest_at_start=largest_at_start, value_at_x=value_at_x, grad_at_x=grad_at_x)
