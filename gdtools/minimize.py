"""``minimize``: one entry point for JAX programs, black boxes and tuned programs.

Picks the engine: a traceable objective with autodiff and nothing that needs the host between
steps runs as one compiled XLA program (:mod:`gdtools.compiled_loop`); everything else runs the
host loop (:mod:`gdtools.host_loop`), which asks the estimator for a gradient each iteration and has
black-box probes measured in batches by an :class:`~gdtools.evaluation.Evaluator`.
"""

from __future__ import annotations

import collections
import copy
import hashlib
import json
import math
import os
import re
import time
import types
import warnings
import weakref
from typing import Any, Callable

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import optax

from gdtools import compile_time
from gdtools import estimators as _estimators
from gdtools._version import __version__
from gdtools.bound_args import BoundArgs
from gdtools.compiled_loop import CODES, MAX_TRAJECTORY, make_solver
from gdtools.errors import EvaluationFailed, InputError
from gdtools.evaluation import Evaluator, check_failure_policy, fold_in, is_finite, prng_key
from gdtools.free_data import fingerprint, optimizer_data
from gdtools.history import History, plain_data
from gdtools.output_path import check_output_file
from gdtools.optax_description import PREFIX as OPTAX_PREFIX, UNDESCRIBED as UNDESCRIBED_OPTAX
from gdtools.optax_description import describe_transformation, differing_parts
from gdtools.line_search import LineSearchDescent
from gdtools.host_loop import UNLIMITED_ITERS, HostLoop, stationarity
from gdtools.problem import Problem, build_problem, key_hint, lists_as_array
from gdtools.program_cache import Tracer, _settings as jax_settings
from gdtools.result import STALL_FAILURES, Result, stalled_outcome, stop_message
from gdtools.space import DEFAULT_BUDGET
from gdtools.transforms import resolve_optimizer

DEFAULT_MAX_ITERS = 1000
#: A decrease of f by at most FTOL * max(|f|, 1) is none (scipy's L-BFGS-B ftol: factr 1e7 times
#: float64's eps): see _check_forward_stall.
FTOL = 1e7 * float(np.finfo(np.float64).eps)
#: A history file keeps a start point of at most this many numbers (a resume of another start names both).
MAX_START_SHOWN = 32
#: Largest max_iters run as one compiled program (its history buffer: 3 numbers per iteration).
MAX_COMPILED_ITERS = 1_000_000
DEFAULT_TOL = 1e-6
#: The meta's digest of the start point (checked when a run is resumed) is taken for starts up to
#: this many coordinates, and for any start whose history goes to a file.
MAX_HASHED_IN_MEMORY = 100_000


def _zero_d_float_as_float(value):
    """A JAX or NumPy 0-d float array as a Python float; anything else as given."""
    if (isinstance(value, (jax.Array, np.ndarray)) and not isinstance(value, jax.core.Tracer) and value.shape == ()
            and jnp.issubdtype(value.dtype, jnp.floating)):
        return float(value)
    return value


def _check_positive(name, value, kind=int, allow_none=True):
    if value is None and allow_none:
        return None
    ok = isinstance(value, (int, np.integer)) if kind is int else isinstance(value, (int, float, np.number))
    if not ok or isinstance(value, bool) or not value > 0 or (kind is float and not is_finite(value)):
        raise InputError(f"{name} must be a positive {'integer' if kind is int else 'number'}, got {value!r}")
    return value


#: The default optimizer for exact gradients, one object so that cached solvers can be found again.
_DEFAULT_LBFGS = optax.lbfgs()


#: How a history names the optimizer that minimize picked (see _default_optimizer); a plot's legend
#: shows what is inside the brackets.
DEFAULT_NAMES = {"lbfgs": "default (L-BFGS)", "line search": "default (L-BFGS, Armijo line search)",
                 "gain": "default (Spall's gain)"}


def _default_name(optimizer, calibrate: bool) -> str:
    return DEFAULT_NAMES["gain" if calibrate else "line search" if isinstance(optimizer, LineSearchDescent)
                         else "lbfgs"]


def _default_optimizer(estimator, *, noisy: bool):
    """L-BFGS with a line search for exact or noise-free gradients, Spall's decaying gain otherwise.
    (An objective that turns out noisy at its first measurements, such as a timing, gets the gain
    too: see HostLoop's ``gain_if_noisy``.)"""
    if estimator.traceable and not estimator.stochastic:
        return _DEFAULT_LBFGS, False
    if not estimator.stochastic and not noisy:
        return LineSearchDescent(), False
    return None, True  # calibrated after the first gradient estimate


def _device_args(args: tuple, estimator) -> tuple:
    """``args`` as JAX arrays: a traceable objective's extra arguments are inputs of its program."""
    try:
        return jax.tree_util.tree_map(jnp.asarray, args)
    except (TypeError, ValueError):
        raise InputError(f"with gradient={estimator.name!r}, args must be arrays or numbers (or pytrees "
                         f"of them): they are inputs of the compiled program. Pass anything else by "
                         f"closure (lambda x: fun(x, other)) or functools.partial") from None


def _args_signature(args: tuple) -> tuple:
    """Structure, shapes and dtypes of ``args`` (JAX arrays), for cache keys."""
    leaves, treedef = jax.tree_util.tree_flatten(args)
    return treedef, tuple((tuple(a.shape), str(a.dtype), bool(a.weak_type)) for a in leaves)


def _flat(fun: Callable, unravel: Callable, *, weak: bool = False) -> Callable:
    """``fun_flat(x, *args) = fun(unravel(x), *args)``; ``weak``: ``fun`` is a weak reference."""
    if weak:
        def fun_flat(x, *args):
            return _as_jax_number(fun()(unravel(x), *args))
    else:
        def fun_flat(x, *args):
            return _as_jax_number(fun(unravel(x), *args))
    return fun_flat


def _as_jax_number(value):
    """An objective may return a Python number (one that ignores x), which JAX's transformations
    take but the engine's programs cannot (it has no dtype): made a JAX scalar. Anything else is
    left to the checks."""
    return jnp.asarray(value) if type(value) in (int, float) else value


def _traceable_flat(problem: Problem, fun: Callable, estimator, *, args: tuple = (),
                    check: bool = True, data: tuple = ((), [])) -> Callable:
    """The objective on a flat JAX vector, ``fun_flat(x, *args)`` with ``args`` JAX arrays (see
    _device_args); checks (unless ``check`` is False) that it traces and returns a real scalar.

    A checked plain function's ``fun_flat`` is kept (``_CHECKED``) and given again for the same
    function and argument structures, so that what is compiled for it (the host loop's
    value-and-gradient and line-search programs, kept on it) serves later calls too. It holds the
    function by a weak reference: the record, and all compiled for it, go with the function. Other
    callables (bound methods, partials, callable objects) compare equal to others that are not
    them, and a bound method dies with the call: for them only the check is remembered.

    ``data`` is :func:`gdtools.free_data.fingerprint` of ``fun`` (the key, and the objects it holds
    by identity): the data ``fun`` reads besides its arguments, baked into what is compiled for it.
    Another fingerprint (the data changed) is another record, so nothing compiled for the old data
    is reused; a function keeps the records of its last CHECKED_PER_FUNCTION fingerprints."""
    unravel = problem.jax_unravel
    if not check:
        return _flat(fun, unravel)
    data_key, data_keep = data
    signature = (*_check_signature(problem), _args_signature(args), data_key)
    try:
        known = _CHECKED.get(fun)
        if known is not None and signature in known:
            return known[signature][0] or _flat(fun, unravel)
    except TypeError:  # an unhashable or non-weakref-able objective: check it every time
        signature = None
    fun_flat = _flat(fun, unravel)

    try:
        out = jax.eval_shape(fun_flat, jax.ShapeDtypeStruct(jnp.shape(problem.x0), jnp.result_type(problem.x0)),
                             *args)
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError,
            jax.errors.TracerBoolConversionError, jax.errors.TracerIntegerConversionError,
            *((IndexError,) if args else ())) as exc:
        hint = (" If it uses one of args= as a Python value (a size, an index, a flag), pass that one by "
                "closure instead (lambda x: fun(x, value)): args are traced inputs of the program."
                if args else "")
        raise InputError(f"gradient={estimator.name!r} needs a JAX-traceable objective (jax.numpy "
                         f"operations only), but tracing it failed: {type(exc).__name__}. For a "
                         f"black box, use gradient='central', 'forward', 'spsa' or 'smoothing'.{hint}") from None
    except ValueError as exc:
        if not (args and "Non-hashable static arguments" in str(exc)):
            raise
        # a jax.jit(fun, static_argnums=...) given one of args=: args are traced inputs, never static
        raise InputError("one of args= is a static argument of the jitted objective (static_argnums), but "
                         "args are traced inputs of the compiled program; pass that one by closure instead "
                         "(lambda x: fun(x, value))") from None
    except TypeError as exc:
        if "returned a value of type" not in str(exc):
            raise
        kind = re.search(r"returned a value of type <class '([\w.]+)'>", str(exc))
        raise InputError(f"the objective must return a real floating-point scalar (a JAX array), got "
                         f"{kind.group(1) if kind else 'something else'}") from None
    if not hasattr(out, "shape") and out is not None:
        # (optimistix's has_aux=True, jax.value_and_grad's: (loss, aux))
        raise InputError(f"the objective must return a scalar, got a {type(out).__name__}"
                         f"{f' of {len(out)} values' if isinstance(out, (tuple, list)) else ''}: gd.minimize "
                         f"takes no auxiliary outputs (has_aux); return the loss alone (lambda x: fun(x)[0])")
    if getattr(out, "shape", None) != ():
        raise InputError(f"the objective must return a scalar, got shape {getattr(out, 'shape', out)}")
    if not jnp.issubdtype(out.dtype, jnp.floating):
        raise InputError(f"the objective must return a real floating-point scalar, got {out.dtype}")
    if signature is not None:
        try:
            kept = None
            if isinstance(fun, types.FunctionType):  # compared by identity: the key is this very function
                kept = fun_flat = _flat(weakref.ref(fun), unravel, weak=True)
            _keep_checked(_CHECKED.setdefault(fun, {}), signature, (kept, data_keep))
        except TypeError:
            pass
    return fun_flat


#: Objectives whose check passed: for each argument structure it passed for, its ``fun_flat``.
#: Tracing a function again only to learn its output shape costs a small problem's call more than
#: its whole run. Weak keys: the record goes with the objective.
_CHECKED: "weakref.WeakKeyDictionary[Callable, dict]" = weakref.WeakKeyDictionary()
CHECKED_PER_FUNCTION = 4


def _keep_checked(records: dict, signature, record) -> None:
    """Keep a function's record for ``signature``, and its last CHECKED_PER_FUNCTION only (data
    that changes call after call)."""
    records[signature] = record
    while len(records) > CHECKED_PER_FUNCTION:
        del records[next(iter(records))]


def _structure(problem: Problem) -> tuple:
    """The user's x0 structure, for cache keys: tree, leaf shapes, leaf dtypes (as the user gave
    them and as the traced objective sees them)."""
    unravel = problem.to_user
    return (unravel.treedef, tuple(unravel.shapes), tuple(str(d) for d in unravel.dtypes),
            problem.jax_dtypes, None if problem.fixed is None else problem.fixed.key)


def _steps_of_the_free_coordinates(estimator, fixed):
    """A finite-difference estimator given one step per coordinate of x0 works on the free ones
    once the parameters fixed by their bounds are taken out: a copy with their steps (the steps of
    all n were refused as 'step has shape (n,), but x has n - 1 coordinates')."""
    step = getattr(estimator, "step", None)
    if isinstance(estimator, _estimators.finite_difference._FiniteDifference) and step is not None \
            and np.ndim(step) == 1 and np.size(step) == fixed.n:
        estimator = copy.copy(estimator)
        estimator.step = np.asarray(step, dtype=float)[fixed.free]
    return estimator


def _check_evaluations_count(estimator, n: int) -> None:
    """InputError unless ``estimator.evaluations(n)`` (what the budget plans with) is a count: a
    custom one returning None failed in the budget's arithmetic, a TypeError mid-run."""
    count = estimator.evaluations(n)
    if not isinstance(count, (int, np.integer)) or isinstance(count, bool) or count < 0:
        raise InputError(f"the gradient estimator {type(estimator).__name__}'s evaluations({n}) returned "
                         f"{count!r}; it must be the number of evaluations one estimate costs, an integer >= 0")


def _check_signature(problem: Problem):
    return (*_structure(problem), jnp.shape(problem.x0), str(jnp.result_type(problem.x0)),
            bool(jax.config.jax_enable_x64))


def minimize(
    fun: Callable,
    x0: Any = None,
    *,
    args: tuple = (),
    gradient=None,
    optimizer=None,
    bounds=None,
    space=None,
    max_iters: int | None = None,
    max_evals: int | None = None,
    max_time: float | None = None,
    tol: float = DEFAULT_TOL,
    seed: int = 0,
    callback: Callable | None = None,
    executor=None,
    history=None,
    resume: bool = False,
    noise: float | None = None,
    on_failure="stop",
    max_failures: int = 3,
    batch: bool = False,
) -> Result:
    """Minimise ``fun`` from ``x0`` by gradient descent with an exact or estimated gradient.

    Args:
      fun: the objective, ``fun(x) -> scalar`` or, stochastic, ``fun(x, key) -> scalar`` with a JAX
        PRNG key (paired probes get the same key: common random numbers). It may return a
        :class:`gdtools.Measurement` (repeats, spread, failure) instead of a number.
      x0: start point, a flat array or a pytree (dict of arrays); ``res.x`` has its structure
        (a list or tuple of numbers is a vector and a list of equal-length lists of numbers a
        matrix, as NumPy reads them: ``res.x`` is then an array; integer leaves are optimised as
        reals and come back as floats).
        With ``space``, a dict in user units (default: the centre of the space).
      args: extra arguments passed to ``fun`` after ``x`` (and its key): ``fun(x, *args)``, as in
        scipy.optimize (a single non-tuple value is taken as ``(args,)``). With autodiff they are
        inputs of the compiled program, not constants in it, so a call with new data of the same
        shapes reuses the program compiled for the old (a closure over the data would be a new
        function, compiled again); they must then be arrays or numbers (pytrees of them).
      gradient: ``"autodiff"`` (``jax.grad``), ``"forward"``, ``"central"`` (finite differences),
        ``"spsa"``, ``"smoothing"``, or a :class:`gdtools.estimators.GradientEstimator`. Default:
        ``"autodiff"``, or ``"spsa"`` with ``space=`` (integers and rounding have no derivative).
      optimizer: an optax ``GradientTransformation`` or a name (``"adam"``, ``"lbfgs"``, ...).
        Default: L-BFGS with a line search for autodiff and noise-free finite differences; for SPSA,
        smoothing and noisy objectives, Spall's gain ``a/(k+1+A)**0.602`` on Adam-normalised
        estimates (AMSGrad-normalised without noise), so the first step moves 0.15 of each
        coordinate's scale. It works on one flat vector of x0's numbers (a pytree's leaves
        raveled and concatenated), not on x0's pytree: transformations that follow a pytree's
        structure (``optax.multi_transform``, ``optax.masked``, adafactor's factored matrices,
        muon's) see that one vector (labels or masks shaped like x0 are refused).
      bounds: ``(lower, upper)``, scalars or pytrees like ``x0`` (any pytree: dict, tuple, NamedTuple;
        each leaf a number or an array of that leaf's shape; None for an open side or leaf), or
        scipy's forms: a list of ``(min, max)`` pairs, one per parameter, or a
        ``scipy.optimize.Bounds``; iterates are projected onto them (projected L-BFGS, not scipy's
        L-BFGS-B: near many active bounds it may take more iterations), and ``tol`` applies to the
        projected gradient ``|clip(x - g) - x|`` (zero at a minimum on a bound). A parameter whose
        bounds are equal (``lower == upper``) is fixed there and taken out of the problem, as scipy
        does: no probe or step is spent on it, ``res.x`` and the history hold it at its value, and
        ``res.grad`` has nan for it (as scipy's ``res.jac``).
      space: a :class:`gdtools.Space` of named parameters; the optimiser then works on the unit cube.
      max_iters: iterations (default 1000, or unlimited when ``max_evals`` is given for a black box).
        With ``space`` and none of max_iters, max_evals and max_time, ``max_evals`` is 200
        (``gdtools.space.DEFAULT_BUDGET``, as ``gdtools tune``).
      max_evals: evaluation budget, the final measurement of ``res.x`` included (for a black box;
        with autodiff it counts value-and-gradient passes and the run leaves the compiled program
        for the host loop, as with ``callback`` and ``max_time``). Spent by a deterministic run
        before it converged, it is no success (as max_iters, and scipy's maxfun). An optax
        optimizer with a line search of its own (``optax.lbfgs``, autodiff's default) takes as many
        trial points as it needs: its last step can go past the budget by a few (``nfev`` counts
        them all; 37 for ``max_evals=35`` on 4-d Rosenbrock).
      max_time: wall-clock budget in seconds, JAX's compilation left out (as a compiled run's
        times leave it out), so that a first call, which compiles, and a later one spend it alike.
        It is checked between iterations: the iteration under way when it runs out finishes (for
        central differences 2n evaluations, and the final measurement follows), so a run of a slow
        objective can pass it by about one iteration's time.
      tol: stop when the gradient's largest component is at most ``tol`` (deterministic gradients).
        A deterministic run also stops, status ``"no_progress"``, when its steps stop changing
        anything three iterations in a row (x unchanged on the host loop; the value and gradient
        unchanged in the compiled program with a line-search optimizer). That counts as success
        when the gradient's largest component has fallen to 1/1000 of its value at the start
        (1/200 in float32), where rounding and estimation errors stop line searches; with the
        gradient still larger it is a failure, as scipy's L-BFGS-B reports a line search that
        finds no lower point. A finite-difference run of an objective taken for exact (no key, no
        ``noise=``, no spread) that stopped moving measures its last point once more: two values
        there mean noise nobody declared, and the run fails, saying so. A forward-difference run
        that stopped moving is judged by one central-difference estimate at its point (2n
        evaluations), and one line search along it: a clear decrease of f means forward
        differences' error hid the slope, and the run, no success, returns the lower point.
      seed: seeds every random choice (perturbations, keys passed to ``fun``).
      callback: ``callback(state) -> bool | None`` once per iteration, with the iterate
        ``state.x``, its value and gradient norm, before its step is applied; True (or raising
        ``StopIteration``, as scipy allows) stops the run after that step (``res.nit`` is then
        ``state.iteration + 1``).
      executor: a ``concurrent.futures.Executor`` (process pool, dask ``client.get_executor()``)
        that evaluates each batch of probes in parallel.
      history: a path to write every record to as it happens (a new file: an existing one is
        refused, unless ``resume`` continues it), a :class:`History`, or None.
      resume: continue the run recorded in ``history`` (a path): recorded evaluations are replayed
        instead of measured, so the resumed run reaches the uninterrupted run's result; failed
        evaluations that end the record are measured again (a run stopped by failures in a row
        would stop again at once: resuming is how a fixed program gets its retry). A path that
        does not exist yet starts a new run there (so one call both starts and resumes); a history
        of another run (size, estimator, seed, parameter space, bounds or ``noise``, or an objective
        that takes a key where the recorded one took none, or the reverse) is refused, and so is a timed objective
        that measures otherwise (another ``repeats`` or ``statistic``).
      noise: the objective's noise level (std of one evaluation), if known; else estimated from
        the measurements' repeats (0 when there are none). Finite differences' default optimizer
        gives way to Spall's decaying gain when the noise is more than a negligible part of the
        value at x0 (host_loop.NEGLIGIBLE_NOISE); below that their steps still follow it.
      on_failure: ``"stop"`` (after ``max_failures`` consecutive failed evaluations, or as many
        iterations in a row spoilt by a failed probe; a failed start is measured again until then)
        or a finite number used as the value of a failed evaluation (at most as far beyond the
        worst value measured so far as that is from the best, or twice the worst if more: a huge
        penalty would swamp the steps' scale).
      max_failures: see ``on_failure``.
      batch: ``x0`` has a leading axis of independent starting points, solved together in one
        compiled program (autodiff on traceable objectives only). Every start is checked as a
        single ``x0`` is; a start where the objective is nan or infinite gets a result of its own
        with status ``"nonfinite"``.

    Returns:
      A :class:`gdtools.Result`: ``x, fun, nit, nfev, success, message, status, grad, history``
      (with ``batch=True``, a list of them, one per start).

    Example:
      >>> import jax.numpy as jnp, gdtools as gd
      >>> res = gd.minimize(lambda x: jnp.sum((x - 3.0) ** 2), jnp.zeros(2))
      >>> bool(jnp.allclose(res.x, 3.0, atol=1e-4))
      True
    """
    if gradient is None:
        gradient = "autodiff" if space is None else "spsa"
    estimator = _estimators.resolve(gradient)
    args = args if isinstance(args, tuple) else (args,)
    if _under_jit():
        raise _traced_error("it was called while JAX traces a function (jax.jit, jax.lax.scan, "
                            "jax.eval_shape), where every JAX operation gives a traced value")
    scalars = [name for name, value in (("max_iters", max_iters), ("max_evals", max_evals), ("max_time", max_time),
                                        ("tol", tol), ("noise", noise), ("seed", seed))
               if isinstance(value, Tracer)]
    if scalars:  # (jax.vmap(lambda t: gd.minimize(f, x0, tol=t)): not 'tol must be a number, got BatchTracer')
        raise _traced_error(f"{' and '.join(scalars)} hold{'s' if len(scalars) == 1 else ''} a traced value")
    max_iters = _check_positive("max_iters", max_iters)
    max_evals = _check_positive("max_evals", max_evals)
    max_time = _check_positive("max_time", max_time, kind=float)
    # a JAX or NumPy 0-d float (a noise level computed as jnp.std(samples)), as a NumPy scalar is taken
    tol, noise = _zero_d_float_as_float(tol), _zero_d_float_as_float(noise)
    if not isinstance(tol, _REAL) or isinstance(tol, bool) or tol < 0 or not (is_finite(tol) or tol == math.inf):
        raise InputError(f"tol must be a non-negative number, got {tol!r}")
    if noise is not None and not (isinstance(noise, _REAL) and not isinstance(noise, bool) and noise >= 0
                                  and is_finite(noise)):
        raise InputError(f"noise must be a non-negative number, got {noise!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise InputError(f"seed must be an integer, got {seed!r}")
    if not -2**63 <= int(seed) < 2**63:
        raise InputError(f"seed must be an integer from -2**63 to 2**63 - 1, got {seed}")
    if callback is not None and not callable(callback):
        raise InputError("callback must be callable")
    if executor is not None and not hasattr(executor, "submit"):
        raise InputError(f"executor must have a submit() method (concurrent.futures.Executor), got "
                         f"{type(executor).__name__}")
    traced = [name for name, value in (("x0", x0), ("args", args), ("bounds", bounds))
              if any(isinstance(leaf, Tracer) for leaf in jax.tree_util.tree_leaves(value))]
    if traced:
        raise _traced_error(f"{' and '.join(traced)} hold{'s' if len(traced) == 1 else ''} a traced value")
    optimizer_name = optimizer if isinstance(optimizer, str) else None
    if optimizer is not None and not isinstance(optimizer, LineSearchDescent):
        optimizer = resolve_optimizer(optimizer)
    if batch:
        unsupported = [name for name, value in (("callback", callback), ("max_time", max_time),
                                                 ("max_evals", max_evals), ("executor", executor),
                                                 ("space", space), ("noise", noise)) if value is not None]
        if unsupported:
            raise InputError(f"batch=True runs all starts in one compiled program, which stops on max_iters "
                             f"and tol only; for {', '.join(unsupported)}, loop gd.minimize over the starts")
        max_iters = DEFAULT_MAX_ITERS if max_iters is None else max_iters
        if max_iters > MAX_COMPILED_ITERS:
            raise InputError(f"batch=True keeps every start's history in one compiled program: max_iters must "
                             f"be at most {MAX_COMPILED_ITERS:,}, got {max_iters:,}")
        return _minimize_batch(fun, x0, args=args, estimator=estimator, optimizer=optimizer, bounds=bounds,
                               max_iters=max_iters, tol=tol, history=history, seed=int(seed),
                               optimizer_name=DEFAULT_NAMES["lbfgs"] if optimizer is None
                               else _describe(optimizer, optimizer_name))
    default_budget = space is not None and max_iters is None and max_evals is None and max_time is None
    if default_budget:
        max_evals = DEFAULT_BUDGET  # a program run each: what `gdtools tune` spends by default
    if max_iters is None and max_evals is None and max_time is not None and getattr(estimator, "average", 0.0):
        # (the window would start past 10**9 iterations: averaging silently off)
        raise InputError(f"average={estimator.average} recommends the mean of that last fraction of the "
                         f"iterations the budget allows, and max_time alone does not say how many: give "
                         f"max_evals or max_iters as well")
    if max_iters is None:
        max_iters = UNLIMITED_ITERS if (max_evals is not None or max_time is not None) else DEFAULT_MAX_ITERS

    problem = build_problem(fun, x0, bounds=bounds, space=space, n_args=len(args))
    if problem.fixed is not None:
        estimator = _steps_of_the_free_coordinates(estimator, problem.fixed)
    _check_optimizer_takes_a_vector(optimizer, problem)
    _check_evaluations_count(estimator, int(np.size(problem.x0)))
    if problem.stochastic and not estimator.traceable and key_hint(fun, len(args)):
        # fn(x, a) with args= forgotten: a got PRNG keys, values near 1e18, and a forward-difference
        # run 'converged' at x0 (its gradient of the noise it measured was 0)
        warnings.warn("fun is run as a stochastic objective fun(x, key)" + key_hint(fun, len(args)).rstrip(")")
                      + "; name the parameter 'key' to silence this)", UserWarning, stacklevel=2)
    if resume and not isinstance(history, (str, bytes)) and not hasattr(history, "__fspath__"):
        raise InputError("resume=True needs history= the path of the run to continue")
    _check_history(history, resume)
    check_failure_policy(on_failure, max_failures)  # before a history file is made

    fun_flat = None
    if estimator.traceable:
        if executor is not None:
            raise InputError(f"executor= runs a black box's evaluations in parallel; gradient={estimator.name!r} "
                             f"runs the objective as a compiled JAX program, which takes no executor")
        if problem.space is not None:
            raise InputError("gradient='autodiff' cannot differentiate through a Space (integers, "
                             "rounding); use gradient='spsa' or 'central'")
        if problem.stochastic:
            raise InputError("gradient='autodiff' needs a deterministic fun(x); for fun(x, key) use a "
                             "black-box estimator ('spsa', 'smoothing', 'central')" + key_hint(fun, len(args)))
        args = _device_args(args, estimator)
        stages = compile_time.stages()
        data = fingerprint(fun) if estimator.uses_fun else ((), [])
        _check_untraced_data(data)
        fun_flat = _traceable_flat(problem, fun, estimator, args=args, check=estimator.uses_fun, data=data)
        if not jax.config.jax_enable_x64 and any(
                getattr(leaf, "dtype", None) == np.float64 or isinstance(leaf, float)
                for leaf in jax.tree_util.tree_leaves(x0)):
            warnings.warn("x0 is float64, but JAX runs this objective in float32 (jax_enable_x64 is off): the "
                          "result is float32-accurate, given back as float64. For float64, run "
                          "jax.config.update('jax_enable_x64', True) at start-up", UserWarning, stacklevel=2)

    # The default optimizer: picked here (the compiled loop's is L-BFGS too), so the history names it.
    default = optimizer is None
    calibrate = False
    if default:
        # (a given noise= is judged against the value at x0 by the host loop: see gain_if_noisy)
        optimizer, calibrate = _default_optimizer(estimator, noisy=bool(problem.stochastic))
    # the default line search gives way to the gain if the objective shows noise at x0
    switch_to_gain = default and isinstance(optimizer, LineSearchDescent)
    meta = dict(version=__version__, estimator=estimator.describe(),
                optimizer=_default_name(optimizer, calibrate) if default else _describe(optimizer, optimizer_name),
                seed=int(seed),
                n=int(np.size(problem.x0)) if problem.fixed is None else problem.fixed.n,
                stochastic=bool(problem.stochastic), noise=None if noise is None else float(noise))
    if history is not None or np.size(problem.x0) <= MAX_HASHED_IN_MEMORY:
        # what a resumed run is checked against; an image-sized start held only in memory is not
        # hashed (a dream makes such a problem an octave: 24 MB hashed each time)
        start = np.ascontiguousarray(problem.x0, dtype=np.float64).tobytes()
        if problem.fixed is not None:  # the parameters fixed by their bounds, and where, are part of it
            start += problem.fixed.mask.tobytes() + problem.fixed.values.tobytes()
        meta["start"] = hashlib.sha1(start).hexdigest()[:16]
    if history is not None and not isinstance(history, History):
        meta["bounds"] = _described_bounds(problem)
    if history is not None and not isinstance(history, History) and np.size(problem.x0) <= MAX_START_SHOWN:
        # the start itself, in the user's terms, for the message of a resume refused for another one
        meta["start_point"] = plain_data(problem.to_user(problem.x0))
    if problem.space is not None and hasattr(problem.space, "describe"):
        meta["space"] = problem.space.describe()
    if type(fun).__module__ == "gdtools.timing" and isinstance(getattr(fun, "measured", None), dict):
        meta["measured"] = fun.measured  # a timed program or callable: what its values are, for plots
    replay, skip, resumed_time, recorded = (), 0, 0.0, {}
    if isinstance(history, History):
        hist = history
        hist.update_meta(**meta)
    elif history is None:
        hist = History(meta=meta)
    else:
        recorded, spent = _check_resumable(history, meta) if resume else ({}, 0)
        if max_evals is not None and spent > max_evals:
            raise InputError(f"cannot resume {os.fspath(history)!r} with a budget of {max_evals} evaluations "
                             f"(max_evals, --budget): the recorded run already spent {spent} (give at least "
                             f"that many, or another history file)")
        if default and recorded.get("optimizer") == "default":
            # recorded before the engine named its pick, and before a line search could give way
            # to the gain on a noisy objective: the resumed run must take the recorded path
            switch_to_gain = False
        hist = History(history, meta=meta, append=resume)
        if resume:
            replay = list(hist.evaluations)
            skip = len(hist.iterations)
            if hist.iterations:
                resumed_time = float(hist.iterations[-1].get("time") or 0.0)
    if problem.fixed is not None:
        hist.expand_x = problem.fixed.expand  # records hold the whole point, fixed parameters too

    # The compiled program holds a history row per allowed iteration: beyond MAX_COMPILED_ITERS the
    # host loop, which records as it goes, runs instead.
    compiled = (estimator.traceable and type(estimator) is _estimators.AutoDiff and callback is None
                and max_time is None and max_evals is None and max_iters <= MAX_COMPILED_ITERS)
    if compiled:
        try:
            result = _run_compiled(problem, fun, fun_flat, optimizer, args=args, data=data, max_iters=max_iters,
                                   tol=tol, history=hist, skip=skip, resumed_time=resumed_time)
        finally:
            if history is not None and not isinstance(history, History):
                hist.close()  # (as the host loop's run closes it)
        _file_under_what_it_holds_now(fun, data, stages)
        return result
    if fun_flat is not None and args:
        fun_flat = BoundArgs(fun_flat, args)

    evaluator = None
    if not estimator.traceable:
        evaluator = Evaluator(fun, to_arg=problem.to_user, history=hist, executor=executor,
                              stochastic=problem.stochastic, on_failure=on_failure,
                              max_failures=max_failures, noise=noise, replay=replay,
                              key=fold_in(prng_key(seed), 2**30),
                              record_params=problem.space is not None, args=args)
    loop = HostLoop(problem=problem, estimator=estimator, optimizer=optimizer, fun_flat=fun_flat,
                    evaluator=evaluator, history=hist, key=prng_key(seed),
                    max_iters=max_iters, max_evals=max_evals, max_time=max_time, tol=tol,
                    callback=callback, calibrate=calibrate, skip_records=skip, resumed_time=resumed_time,
                    gain_if_noisy=DEFAULT_NAMES["gain"] if switch_to_gain else None,
                    gain_iterations=recorded.get("gain_iterations"))
    try:
        out = loop.run()
        if fun_flat is not None and estimator.uses_fun:
            _file_under_what_it_holds_now(fun, data, stages)
        res = _package_host(problem, estimator, out, evaluator, hist, fun_flat,
                            max_iters=max_iters, max_evals=max_evals, max_time=max_time, tol=tol)
        if default_budget:  # the user set no max_evals: say where it came from
            res.message = res.message.replace(
                f"(max_evals={max_evals})", f"(max_evals={max_evals}, the default for a space; pass max_evals=)")
        return res
    except BaseException as exc:
        # An error or Ctrl-C mid-run: what was measured goes with it (nothing measured is lost,
        # history file or not). Input errors found before anything was measured carry nothing.
        if hist.evaluations or hist.iterations:
            try:
                exc.history = hist
                exc.add_note(f"gdtools: what was measured before this ({len(hist.evaluations)} evaluations, "
                             f"{len(hist.iterations)} iterations) is in this exception's .history")
            except (AttributeError, TypeError):  # an exception that takes no attributes
                pass
        raise
    finally:
        if history is not None and not isinstance(history, History):
            hist.close()


_REAL = (int, float, np.integer, np.floating)


def _traced_error(what: str) -> InputError:
    """gd.minimize called inside a JAX transformation, as optimistix's solvers can be: it runs
    programs of its own and reads numbers back, which a traced value cannot give."""
    return InputError(f"gd.minimize cannot run inside jax.jit, jax.vmap or jax.grad: {what}. Call it outside "
                      f"them; for many starts at once, give x0 a leading axis and batch=True")


def _under_jit() -> bool:
    """Whether JAX is tracing a program now (jax.jit and its kin): even a run on untraced inputs
    computes only traced values there (TracerBoolConversionError from the first check of x0).
    Under jax.vmap or jax.grad alone untraced inputs stay concrete, and the run works."""
    am_i = getattr(jax.extend.core, "unsafe_am_i_under_a_jit_DO_NOT_USE", None)
    return am_i() if am_i is not None else isinstance(jnp.asarray(0.0), Tracer)


def _check_untraced_data(data) -> None:
    """The objective reads no traced value (a closure over a value of an enclosing jax.vmap)."""
    if any(isinstance(value, Tracer) for value in data[1]):
        raise _traced_error("the objective reads a traced value of the transformation around it")


def _check_optimizer_takes_a_vector(optimizer, problem: Problem) -> None:
    """The optimizer works on the flat vector of x0's numbers: one whose state follows x0's pytree
    (optax.multi_transform's labels, optax.masked's mask) fails to start on it, named here rather
    than in a JAX pytree-structure error from inside the run."""
    if (optimizer is None or isinstance(optimizer, LineSearchDescent) or problem.space is not None
            or problem.to_user.treedef is None):  # (one array: nothing shaped like a pytree to refuse)
        return
    flat = jax.ShapeDtypeStruct((int(np.size(problem.x0)),), jnp.result_type(float))
    try:
        jax.eval_shape(optimizer.init, flat)
    except (ValueError, TypeError) as exc:
        try:
            jax.eval_shape(lambda x: optimizer.init(problem.jax_unravel(x)), flat)
        except Exception:  # it fails on x0's own structure too: not this (the run names what)
            return
        raise InputError(f"the optimizer cannot start on the parameters as gd.minimize gives them: one flat vector "
                         f"of x0's {int(np.size(problem.x0))} numbers (a pytree's leaves raveled and joined), not "
                         f"x0's pytree, so labels or masks shaped like x0 (optax.multi_transform, optax.masked) "
                         f"do not fit it ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None


def _check_history(history, resume: bool) -> None:
    """``history`` is None, a History, or a path whose folder exists; an existing file is
    continued (``resume``), never replaced: it may hold hours of measurements."""
    if history is None:
        return
    if isinstance(history, History):
        if history.evaluations or history.iterations:
            # a second run's records after the first's, under the second's meta: one history
            # that is neither run (plots and resume would read it as one)
            raise InputError(f"history= is a gd.History that already holds a run ({len(history.iterations)} "
                             f"iterations, {len(history.evaluations)} evaluations): give each run a new "
                             f"gd.History(), or a path with resume=True to continue a run")
        return
    if not isinstance(history, (str, bytes)) and not hasattr(history, "__fspath__"):
        raise InputError(f"history must be a path, a gd.History or None, got {type(history).__name__}")
    path = os.fsdecode(history)
    check_output_file("history=", path)
    if not resume and os.path.isfile(path) and os.path.getsize(path) > 0:
        raise InputError(f"history={path!r} already exists: resume=True continues the run it holds; to "
                         f"start a new run, remove it or give another file")


def _described_bounds(problem):
    """The bounds of ``problem`` as a history records them, to refuse a resume with others (they set
    each coordinate's scale, so the steps): None, ``[lower, upper]`` when every coordinate has the same,
    else ``[[lower...], [upper...]]``, or a digest for more than MAX_START_SHOWN coordinates; an
    infinite bound as the text "inf" or "-inf"."""
    if problem.lower is None:
        return None
    lower, upper = (np.asarray(b, dtype=np.float64).ravel() for b in (problem.lower, problem.upper))
    number = lambda v: float(v) if math.isfinite(v) else ("inf" if v > 0 else "-inf")  # noqa: E731
    if np.all(lower == lower[0]) and np.all(upper == upper[0]):
        return [number(lower[0]), number(upper[0])]
    if lower.size > MAX_START_SHOWN:
        return hashlib.sha1(lower.tobytes() + upper.tobytes()).hexdigest()[:16]
    return [[number(v) for v in lower], [number(v) for v in upper]]


def _check_resumable(path, meta: dict) -> tuple[dict, int]:
    """A run resumed from ``path`` must be the recorded run: same size, gradient, seed, space, start,
    bounds, noise level and kind of objective (``fun(x, key)`` or ``fun(x)``).
    Returns the recorded meta and the number of evaluations recorded (empty and 0 for a new or
    empty file)."""
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return {}, 0
    try:
        recorded_history = History.load(path)
        recorded = recorded_history.meta
    except Exception as exc:
        raise InputError(f"cannot resume from {os.fspath(path)!r}: it is not a readable history ({exc})") from None
    for name, what in (("n", "number of parameters"), ("estimator", "gradient estimator"), ("seed", "seed"),
                       ("space", "parameter space"), ("start", "start point"), ("bounds", "set of bounds"),
                       ("noise", "noise level (noise=)")):
        if name not in recorded or name not in meta:
            continue
        mine, theirs = json.loads(json.dumps(meta[name])), recorded[name]
        if (name == "space" and isinstance(theirs, dict) and _typed(mine) == _typed(theirs)
                and list(mine) != list(theirs)):
            raise InputError(f"cannot resume from {os.fspath(path)!r}: it recorded its parameters in another "
                             f"order ({', '.join(theirs)} recorded, {', '.join(mine)} given)")
        if _typed(mine) != _typed(theirs):
            if name == "start":  # the digest tells nothing: the points, where both runs kept them
                name = "start_point" if "start_point" in recorded and "start_point" in meta else name
                mine, theirs = json.loads(json.dumps(meta[name])), recorded[name]
            if name == "estimator" and isinstance(theirs, dict) and theirs.get("name") != mine.get("name"):
                difference = f"{theirs.get('name')} recorded, {mine.get('name')} given"  # not every setting
            else:
                difference = _difference(theirs, mine)
            raise InputError(f"cannot resume from {os.fspath(path)!r}: it recorded a run with another {what} "
                             f"({difference})")
    if "stochastic" in recorded and "stochastic" in meta and bool(recorded["stochastic"]) != meta["stochastic"]:
        # (replayed by point, a run of fun(x, key) went on as a run of fun(x), with another optimizer)
        spelt = lambda stochastic: "fun(x, key)" if stochastic else "fun(x)"  # noqa: E731
        raise InputError(f"cannot resume from {os.fspath(path)!r}: it recorded a run of an objective that "
                         f"{'takes a' if recorded['stochastic'] else 'takes no'} key ({spelt(recorded['stochastic'])} "
                         f"recorded, {spelt(meta['stochastic'])} given)")
    mine, theirs = ((m.get("objective") if isinstance(m, dict) else None)
                    for m in (meta.get("measured"), recorded.get("measured")))
    if mine and theirs and mine != theirs:  # wall times and printed numbers: two kinds of values
        raise InputError(f"cannot resume from {os.fspath(path)!r}: it recorded a run with another objective "
                         f"({theirs!r} recorded, {mine!r} given)")
    _check_same_measurement(path, meta.get("measured"), recorded.get("measured"), recorded_history.evaluations)
    mine, theirs = str(meta.get("optimizer", "")), str(recorded.get("optimizer", ""))
    if (theirs and mine != theirs and not (mine.startswith("default") and theirs.startswith("default"))
            and not (theirs == UNDESCRIBED_OPTAX and mine.startswith(OPTAX_PREFIX))):
        # (the default may have given way to the gain during the recorded run: not compared; an
        # optax transformation recorded without its description may be this one)
        raise InputError(f"cannot resume from {os.fspath(path)!r}: it recorded a run with another optimizer "
                         f"({_difference(*differing_parts(theirs, mine))})")
    if "space" in recorded and "space" not in meta:
        raise InputError(f"cannot resume from {os.fspath(path)!r}: it recorded a run over the parameter "
                         f"space {recorded['space']!r}, this one has no space")
    return recorded, len(recorded_history.evaluations)


def _check_same_measurement(path, mine, theirs, records) -> None:
    """A timed objective resumed must measure as the recorded run did (``measured``: its repeats and
    statistic), or one history would mix two precisions under one label (gdtools tune checks the
    same). One exception: printed numbers that all repeated exactly (run twice whatever ``repeats``
    says, and any statistic of two equal numbers is that number)."""
    if not (isinstance(mine, dict) and isinstance(theirs, dict)) or mine.get("objective") != theirs.get("objective"):
        return
    exact = all(isinstance(r.get("samples"), list) and len(r["samples"]) == 2 and r["samples"][0] == r["samples"][1]
                and not (isinstance(r.get("spread"), (int, float)) and math.isfinite(r["spread"]))
                for r in records if r.get("status", "ok") == "ok")
    if mine.get("objective") != "time" and exact:
        return
    for name in ("repeats", "statistic"):
        if name in mine and name in theirs and mine[name] != theirs[name]:
            raise InputError(f"cannot resume from {os.fspath(path)!r}: it recorded a run measured with another "
                             f"{name} ({theirs[name]!r} recorded, {mine[name]!r} given)")


def _difference(recorded, given) -> str:
    """What differs between a recorded setting and the one given, readably: ``c: None recorded,
    0.2 given``; dicts (an estimator's settings, a space) name only the entries that differ."""
    if not (isinstance(recorded, dict) and isinstance(given, dict)):
        return f"{recorded!r} recorded, {given!r} given"
    if "choices" in recorded and "choices" in given:  # two lists: their ends and scale follow from them
        recorded, given = {"choices": recorded["choices"]}, {"choices": given["choices"]}
    parts = []
    for key in [*recorded, *(key for key in given if key not in recorded)]:
        if key not in given:
            parts.append(f"{key}: recorded, not given")
        elif key not in recorded:
            parts.append(f"{key}: given, not recorded")
        elif _typed(recorded[key]) != _typed(given[key]):
            parts.append(f"{key}: {_difference(recorded[key], given[key])}")
    return "; ".join(parts)


def _typed(data):
    """Recorded data with its booleans told apart from numbers: ``[False, True] == [0, 1]`` in
    Python, but a Choice of booleans and one of numbers give the objective different values."""
    if isinstance(data, bool):
        return ("bool", data)
    if isinstance(data, dict):
        return {key: _typed(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_typed(value) for value in data]
    return data


def _describe(optimizer, name=None) -> str:
    """The optimizer's name for the history: the name it was given by, else its type's; optax's
    transformations are all one type, described by what their closures hold (optax_description)."""
    if name:
        return name
    if isinstance(optimizer, optax.GradientTransformation):
        return describe_transformation(optimizer) or UNDESCRIBED_OPTAX
    return getattr(optimizer, "__name__", None) or type(optimizer).__name__


def _check_exact_at_stall(problem, out, evaluator, max_evals) -> None:
    """A run that stopped moving with finite differences of an objective taken for exact (no key,
    no ``noise=``, no spread): x is measured once more. Two values at one point (beyond rounding)
    mean noise the engine was not told of, whose differences over steps sized for an exact
    objective gave gradients of the noise, not the slope; the stop then proves nothing:
    ``out["two_values"]`` holds them, for the message. One evaluation, where the budget has room
    for it."""
    if (out["reason"] != "no_progress" or evaluator is None or problem.space is not None or problem.stochastic
            or evaluator.noisy_by_nature or evaluator.noise != 0
            or (max_evals is not None and evaluator.nfev + 1 > max_evals)):
        return
    x = np.asarray(out["x"], dtype=float)
    before = evaluator.measured_value(x)
    if before is None:
        return
    successes = evaluator.successes
    try:
        again = float(evaluator(x[None])[0])
    except EvaluationFailed:
        return
    if evaluator.successes == successes:  # it failed: a penalty (or nan) is no value of the objective
        return
    if math.isfinite(again) and abs(again - before) > 4 * evaluator.value_eps * max(abs(again), abs(before)):
        out["two_values"] = (before, again)


def _check_forward_stall(problem, estimator, out, evaluator, max_evals) -> None:
    """A forward-difference run that stopped moving: its gradient estimate is off by about
    h |f''| / 2, so an estimate that looks small may hide a slope (float32 Rosenbrock: 0.0009
    estimated, 0.16 true, 0.24 from the optimum). One central-difference estimate at the point
    (2n evaluations, off by h**2 |f'''| / 6; when the budget has room for them and the final
    measurement) is what the stopping rule then judges: ``out["largest"]`` becomes its largest
    component."""
    n = int(np.size(out["x"]))
    if (out["reason"] != "no_progress" or evaluator is None or problem.space is not None or "two_values" in out
            or type(estimator) is not _estimators.Forward
            or (max_evals is not None and evaluator.nfev + 2 * n + 1 > max_evals)):
        return
    central = _estimators.Central()
    central.observe_precision(evaluator.value_eps)
    x = np.asarray(out["x"], dtype=float)
    try:
        est = central.estimate(None, x, key=None, iteration=out["nit"], evaluate=lambda pts: evaluator(pts),
                               noise=evaluator.noise, scale=problem.scale, bounds=problem.bounds)
    except EvaluationFailed:
        return
    grad = np.asarray(est.grad, dtype=float)
    out["largest"] = float(stationarity(grad, x, problem.clip))
    # Forward differences' error may have stopped the run short of the minimum where central
    # differences still see the slope (a float32 quadratic of condition 1e6 stalled at f = 1.67
    # with 129 left, under 1/200 of the start's gradient: a "success"). One line search along the
    # central gradient tells: a clear decrease (beyond FTOL, scipy's L-BFGS-B ftol, and the value's
    # rounding) is taken, and the run is no success (see _package_host).
    f_x = evaluator.measured_value(x)
    left = None if max_evals is None else max_evals - evaluator.nfev - 1  # the final measurement's
    if f_x is None or not math.isfinite(f_x) or (left is not None and left < 1) or not np.any(grad):
        return
    bounds = None if problem.lower is None else (problem.lower, problem.upper)
    project = (lambda p: p) if bounds is None else (lambda p: np.clip(p, *bounds))  # noqa: E731
    try:
        found, _ = LineSearchDescent()._search(x, f_x, grad, -grad, 1.0, lambda pts: evaluator(pts, trial=True),
                                               project, np.inf if left is None else left, bounds,
                                               {x.tobytes(): f_x}, evaluator.value_eps)
    except EvaluationFailed:
        return
    if found is not None and f_x - found[1] > max(FTOL, 10 * evaluator.value_eps) * max(abs(f_x), 1.0):
        out["x"], out["central_step"] = found[0], (f_x, found[1])


def _package_host(problem, estimator, out, evaluator, hist, fun_flat, **limits) -> Result:
    _check_exact_at_stall(problem, out, evaluator, limits.get("max_evals"))
    _check_forward_stall(problem, estimator, out, evaluator, limits.get("max_evals"))
    reason = out["reason"]
    x = last_x = out["x"]  # (the search's own answer, kept in the closing record if another stands in)
    fun_value = math.nan
    # the closing record: the result measured at its end (True), or the best point measured
    # during the run standing in for it ("best measured": its value is from then)
    final = True
    unmeasured = None  # why the final point could not be measured, where a measurement there failed
    if evaluator is not None:
        if out["nit"] == 0 and not math.isfinite(out["f_start"]):
            raise InputError(f"the objective did not return a finite value at x0 "
                             f"({out['detail'] or 'nan or inf'}); nothing to optimise from there")
        spent = limits.get("max_evals") is not None and evaluator.nfev >= limits["max_evals"]
        too_small = out["nit"] == 0 and reason == "max_evals"
        if too_small:
            # a budget too small to move: x0, as measured at the start (nan if that failed and a
            # penalty stood for it)
            fun_value = out["f_start"] if evaluator.successes else math.nan
            reason, out["detail"] = "too_small", (out["detail"] if isinstance(out["detail"], int)
                                                  else 2 + estimator.evaluations(int(np.size(x))))
        elif (reason != "failed" and not problem.stochastic and not evaluator.noisy_by_nature
              and evaluator.noise == 0 and evaluator.measured_value(x) is not None):
            # an exact objective already measured at x (the last accepted step): measuring it again
            # would give the same number for one more evaluation
            fun_value = evaluator.measured_value(x)
        elif reason != "failed" and not spent:
            try:
                fun_value = float(evaluator(np.asarray(x, dtype=float)[None])[0])
            except Exception:  # a failure while re-measuring: keep what we have
                fun_value = math.nan
            if hist.evaluations and hist.evaluations[-1].get("status") == "failed":
                fun_value = math.nan  # a failed re-measure, not the on_failure penalty standing for it
            if not math.isfinite(fun_value):
                unmeasured = evaluator.last_error or "a non-finite value"
        if not math.isfinite(fun_value) and evaluator.best_x is not None:
            # The final point could not be measured: the best point that was, with its value there.
            x, fun_value = evaluator.best_x, evaluator.best_value
            final = "best measured"
        # Ended clearly worse than the start (beyond the noise of the two measurements): the steps
        # diverged. The best point measured is the better answer, and it is no success. A noisy
        # objective whose noise was never measured (a wall time timed once per evaluation, with
        # SPSA) cannot tell: one sample at each end decided it, a coin flip on a flat objective.
        # Noise measured to be 0 (a fun(x, key) that ignores its key) is known, not unknown.
        margin = 3.0 * math.sqrt(2.0) * evaluator.noise
        unknown_noise = (not evaluator.noise_measured
                         and (problem.stochastic or evaluator.noisy_by_nature))
        if (not unknown_noise and math.isfinite(fun_value) and math.isfinite(out["f_start"]) and out["nit"] > 0
                and fun_value > out["f_start"] + margin and evaluator.best_x is not None
                and evaluator.best_value < fun_value):
            reason = "worse"
            out["detail"] = f"f = {fun_value:.6g} at the last iterate, {out['f_start']:.6g} at x0"
            x, fun_value = evaluator.best_x, evaluator.best_value
            final = "best measured"
        elif (problem.space is not None and reason != "failed" and math.isfinite(fun_value)
              and not problem.stochastic and not evaluator.noisy_by_nature and evaluator.noise == 0
              and evaluator.best_x is not None and evaluator.best_value < fun_value):
            # An exact objective over a space: a setting measured lower than the final one is the
            # better answer. The steps move an integer only by whole units after rounding, and a
            # direction's share of a unit rounds back: the gradient's probe measured n = 0 lower
            # than n = 1, and the run ended at n = 1 (gdtools tune's side-by-side found n = 0; the
            # library's result did not).
            x, fun_value = evaluator.best_x, evaluator.best_value
            final = "best measured"
            out["better_measured"] = True
    else:
        # Autodiff is asked once more at the final x; a custom estimator that measures nothing
        # through the engine (DeepDream's) reports the best value it saw (see Result.fun).
        if isinstance(estimator, _estimators.AutoDiff):
            if out.get("value_at_x") is not None:  # known from an estimate made at x
                fun_value, grad_at_x = float(out["value_at_x"]), out.get("grad_at_x")
            else:  # one more evaluation, counted (the budget kept one for it)
                fun_value, grad_at_x = estimator.value_and_grad(fun_flat)(x)
                fun_value = float(fun_value)
                out["nfev"] += 1
            if grad_at_x is not None and math.isfinite(fun_value):
                # The gradient at the result, as the compiled program's: res.grad, and the test of
                # a run stopped by a budget right where it converged (as the compiled program
                # tests every iterate before its budget)
                out["grad"] = grad_at_x
                out["largest"] = float(stationarity(np.asarray(grad_at_x, dtype=float), x, problem.clip))
                if reason in ("max_iters", "max_evals", "max_time") and out["largest"] <= limits["tol"]:
                    reason = "converged"
        else:
            fun_value = float(out["best_f"])
        if not math.isfinite(fun_value) and out["nit"] == 0:
            raise InputError("the objective returned a non-finite value (nan or inf) at x0")
    nfev = evaluator.nfev if evaluator is not None else out["nfev"]
    # A run with a gradient test to pass: exact or finite-difference gradients of an exact objective.
    # Any other (a random estimate, a noisy objective, a space) succeeds by spending its budget.
    could_converge = (not estimator.stochastic and not problem.stochastic and problem.space is None
                      and (evaluator is None or evaluator.noise == 0.0))
    if (reason == "no_progress" and could_converge and not any(check in out for check in STALL_FAILURES)
            and out["largest"] <= limits["tol"]):
        # a forward-difference stall whose central estimate (_check_forward_stall) is below tol
        reason = "converged"
    if evaluator is not None and evaluator.successes == 0:
        # Every evaluation failed (the on_failure penalty stood for each): nothing was measured.
        reason = "failed"
        success, message = False, (f"Every evaluation failed ({evaluator.nfev} of them), so nothing was "
                                   f"measured; the last error: {evaluator.last_error}.")
    elif reason == "max_iters" and not could_converge:
        success, message = True, f"The iteration budget (max_iters={limits['max_iters']}) was spent."
    elif reason == "no_progress" and any(check in out for check in STALL_FAILURES):
        check = next(check for check in STALL_FAILURES if check in out)
        success, message = False, STALL_FAILURES[check].format(*out[check])
    elif reason == "no_progress":
        success, message = stalled_outcome(largest=out["largest"], largest_at_start=out["largest_at_start"],
                                           tol=limits["tol"], dtype=np.dtype(x.dtype),
                                           space=problem.space is not None)
    else:
        success, message = stop_message(reason or "max_iters", iteration=out["detail"], detail=out["detail"],
                                        **limits)
        if reason in ("max_evals", "max_time") and could_converge:
            # A run that could have converged and did not: as scipy reports its maxfun and maxiter.
            success = False
            last = f" (it was {out['largest']:.3g})" if math.isfinite(out["largest"]) else ""
            message = (message[:-1] + f" before the gradient's largest component fell below tol={limits['tol']}"
                       f"{last}; increase the budget if the loss was still falling.")
        left = (limits.get("max_evals") or 0) - nfev
        if reason == "max_evals" and left > 0:  # spent as far as it could be: say what is left
            message += (f" (The {left} evaluation{'s' if left > 1 else ''} left could not pay for another step "
                        f"and the final measurement.)")
    if out.get("better_measured"):
        message += " The result is the best setting measured, lower than the one the steps ended at."
    if unmeasured is not None and final == "best measured":
        # (said: res.x is then not where the steps ended, and res.fun one measurement from during the
        # run, a noisy objective's luckiest)
        message += (f" The final point could not be measured ({unmeasured}): the result is the best point "
                    f"measured during the run, with the value measured there.")
    if not problem.device:
        x = problem.within_bounds(x)
    hist.record_iteration(iteration=out["nit"], nfev=nfev, time=out["elapsed"], loss=fun_value,
                          grad_norm=None, x=x, final=final,
                          **({"last_x": last_x} if final == "best measured" else {}))
    # a device x0's result is a JAX array in its dtype, whichever path (a line search's
    # NumPy point included) gave the final point
    on_device = lambda v: problem.jax_unravel(jnp.asarray(v, dtype=jnp.result_type(problem.x0)))  # noqa: E731
    user_x = problem.to_user(x) if not problem.device else on_device(x)
    grad = out["grad"]
    if grad is not None and problem.space is not None:  # along each parameter's unit-cube coordinate
        grad = {name: float(g) for name, g in zip(problem.space.names, np.asarray(grad, dtype=float))}
    elif grad is not None:
        grad = problem.grad_to_user(grad)
    return Result(x=user_x, fun=fun_value, nit=out["nit"], nfev=nfev, success=success, message=message,
                  status=reason or "max_iters", history=hist, grad=grad)


def _file_under_what_it_holds_now(fun, data, stages: int) -> None:
    """An objective that changed what it reads while JAX traced it in this call (a list it appends
    to, a counter) now holds data other than its key (``data``) says, and the next call would not
    find what was compiled for it: that is filed under what it holds now too. Nothing to do when
    nothing was traced since ``stages`` (compile_time.stages())."""
    old_key = data[0]
    if compile_time.stages() == stages or (isinstance(old_key, tuple) and old_key[:1] == ("incomplete",)):
        return  # (an incomplete key matches nothing: filing the programs again would only evict others)
    new_key, keep = fingerprint(fun)
    if new_key == old_key:
        return
    try:
        records = _CHECKED.get(fun) or {}
        for signature, (kept, _) in [(sig, record) for sig, record in records.items() if sig[-1] == old_key]:
            _keep_checked(records, signature[:-1] + (new_key,), (kept, keep))
        for key, (compiled, _) in [(key, entry) for key, entry in _SOLVER_CACHE.items()
                                   if key[0] is fun and key[-1] == old_key]:
            _keep_solver(key[:-1] + (new_key,), (compiled, keep))
    except TypeError:  # an unhashable objective or key: nothing was kept for it
        pass


#: Compiled solvers kept between calls, so that minimising the same objective again skips compilation.
_SOLVER_CACHE: collections.OrderedDict = collections.OrderedDict()
SOLVER_CACHE_SIZE = 16


def _bounds_key(bound):
    return None if bound is None else np.asarray(bound).tobytes()


def _compiled_solver(fun, problem, fun_flat, optimizer, *, x0, args, data, max_iters, tol, record_x,
                     batch=False):
    """The AOT-compiled solver ``solver(x0, args)`` for this objective and settings, from the cache
    when possible (``data``: the objective's fingerprint, see _traceable_flat). With ``batch``,
    ``x0`` has a leading axis of starts and the solver is vmapped over it (``args`` shared by every
    start)."""
    key = None
    data_key, data_keep = data
    try:
        key = (fun, *_structure(problem), str(x0.dtype), x0.shape, _args_signature(args), optimizer,
               optimizer_data(optimizer), max_iters, float(tol), _bounds_key(problem.lower), _bounds_key(problem.upper), record_x, batch,
               jax_settings(), data_key)  # (x64 on or off: a float32 x0's objective may compute in either)
        hash(key)
    except TypeError:  # an unhashable objective or optimizer: compile without caching
        key = None
    if key is not None and key in _SOLVER_CACHE:
        _SOLVER_CACHE.move_to_end(key)
        return _SOLVER_CACHE[key][0]
    n = int(x0.shape[-1])
    lower = None if problem.lower is None else jnp.asarray(problem.lower, x0.dtype)
    upper = None if problem.upper is None else jnp.asarray(problem.upper, x0.dtype)
    solver = make_solver(fun_flat, optimizer, n=n, max_iters=max_iters, tol=tol, lower=lower, upper=upper,
                         record_x=record_x)
    compiled = jax.jit(jax.vmap(solver, in_axes=(0, None)) if batch else solver).lower(x0, args).compile()
    if key is not None:
        _keep_solver(key, (compiled, data_keep))
    return compiled


def _keep_solver(key, entry) -> None:
    """Keep ``(compiled solver, what its key holds by identity)``, the SOLVER_CACHE_SIZE latest only."""
    _SOLVER_CACHE[key] = entry
    while len(_SOLVER_CACHE) > SOLVER_CACHE_SIZE:
        _SOLVER_CACHE.popitem(last=False)


def _run_compiled(problem, fun, fun_flat, optimizer, *, args, data, max_iters, tol, history, skip=0,
                  resumed_time=0.0) -> Result:
    """The whole run as one compiled program. ``skip``: the iterations a resumed run's history
    already holds (the last at ``resumed_time`` s); the run computes them again (it is
    deterministic) and records the rest."""
    optimizer = optimizer if optimizer is not None else _DEFAULT_LBFGS
    x0 = jnp.asarray(problem.x0)
    record_x = int(x0.size) * (max_iters + 1) <= MAX_TRAJECTORY
    solver = _compiled_solver(fun, problem, fun_flat, optimizer, x0=x0, args=args, data=data, max_iters=max_iters,
                              tol=tol, record_x=record_x)
    t0 = time.perf_counter()
    trace = solver(x0, args)
    jax.block_until_ready(trace)
    elapsed = time.perf_counter() - t0
    return _package_trace(problem, trace, history, elapsed=elapsed, max_iters=max_iters, tol=tol, skip=skip,
                          resumed_time=resumed_time)


def _package_trace(problem, trace, history, *, elapsed, max_iters, tol, skip=0, resumed_time=0.0,
                   start=None) -> Result:
    """A compiled run's Result. ``start``: the run is start ``start`` of a batch, whose failure at
    its x0 is its own result (the other starts' are kept), not an error."""
    nit = int(trace.nit)
    table = np.asarray(trace.table)  # columns sliced here, in NumPy (see Trace)
    loss, gnorm, evals = table[:, 0], table[:, 1], table[:, 2]
    unravel = ((lambda v: problem.jax_unravel(jnp.asarray(v))) if problem.device  # (a batch's NumPy slices too)
              else (lambda v: problem.to_user(problem.within_bounds(v))))
    if not np.isfinite(loss[0]):
        if start is None:
            raise InputError("the objective returned a non-finite value (nan or inf) at x0")
        history.record_iterations(iteration=[0], nfev=[1], time=[0.0], loss=[float(loss[0])], grad_norm=[math.nan])
        return Result(x=unravel(trace.x), fun=float(loss[0]), nit=0, nfev=1, success=False,
                      message=f"the objective returned a non-finite value (nan or inf) at start {start}",
                      status="nonfinite", history=history, grad=None)
    xs = np.asarray(trace.xs) if trace.xs.shape[0] else None
    history.update_meta(engine="compiled", time_resolution="run (per-iteration times are interpolated)")
    steps = np.arange(skip, nit + 1)
    # times interpolated over the run; a resumed run's go on from the last one recorded
    times = (elapsed * steps / max(nit, 1) if not skip
             else resumed_time + elapsed * (steps - skip + 1) / max(nit - skip + 1, 1))
    history.record_iterations(iteration=steps, nfev=evals[skip:nit + 1].astype(int),
                              time=times, loss=loss[skip:nit + 1].astype(float),
                              grad_norm=gnorm[skip:nit + 1].astype(float),
                              x=None if xs is None else xs[skip:nit + 1] if problem.device
                              else problem.within_bounds(xs[skip:nit + 1]))
    reason = CODES[int(trace.status)]
    if reason == "no_progress":
        success, message = stalled_outcome(largest=float(gnorm[nit]), largest_at_start=float(gnorm[0]), tol=tol,
                                           dtype=trace.x.dtype)
    else:
        success, message = stop_message(reason, tol=tol, max_iters=max_iters, iteration=nit)
    return Result(x=unravel(trace.x), fun=float(trace.fun), nit=nit, nfev=int(trace.nfev), success=success,
                  message=message, status=reason, history=history, grad=problem.grad_to_user(trace.grad))


def _minimize_batch(fun, x0, *, args, estimator, optimizer, bounds, max_iters, tol, history, seed,
                    optimizer_name) -> list[Result]:
    """Independent starts along x0's leading axis, solved in one compiled (vmapped) program."""
    if type(estimator) is not _estimators.AutoDiff:
        raise InputError("batch=True runs one compiled program and needs gradient='autodiff'")
    if history is not None:
        raise InputError("batch=True returns one History per start in each result; history= is not supported")
    x0 = lists_as_array(x0)  # [[0., 0.], [1., 2.]]: two starts, as a single run reads a matrix
    leaves = jax.tree_util.tree_leaves(x0)
    if not leaves or any(np.ndim(leaf) < 1 for leaf in leaves):
        raise InputError("batch=True needs x0 with a leading axis of starting points")
    count = np.shape(leaves[0])[0]
    sizes = sorted({int(np.shape(leaf)[0]) for leaf in leaves})
    if len(sizes) > 1:
        raise InputError(f"batch=True needs every leaf of x0 to have the same leading axis (one row per "
                         f"start); the leaves have {sizes} rows")
    if count == 0:
        raise InputError("batch=True needs at least one start: x0's leading axis has length 0")
    first = jax.tree_util.tree_map(lambda a: a[0], x0)
    try:
        problem = build_problem(fun, first, bounds=bounds, space=None, n_args=len(args))
    except InputError as exc:
        raise InputError(f"batch=True, start 0 of x0: {exc}") from None
    _check_optimizer_takes_a_vector(optimizer, problem)
    if problem.stochastic:
        raise InputError("batch=True needs a deterministic fun(x) (autodiff); this one takes a key"
                         + key_hint(fun, len(args)))
    args = _device_args(args, estimator)
    stages = compile_time.stages()
    data = fingerprint(fun)
    _check_untraced_data(data)
    try:
        fun_flat = _traceable_flat(problem, fun, estimator, args=args, data=data)
    except Exception as exc:
        if isinstance(exc, InputError) or any(np.ndim(leaf) > 1 for leaf in leaves):
            raise
        # x0 of shape (n,) is n starts of one number each: a vector objective fails on a scalar (a
        # deep JAX traceback), where the user most likely forgot the leading axis of the starts
        raise InputError(f"batch=True reads x0's leading axis as the starts: x0 of shape {np.shape(leaves[0])} "
                         f"is {count} starts of one number each, and the objective failed on one "
                         f"({type(exc).__name__}: {exc}). For one start of {count} numbers, leave out "
                         f"batch=True; for several, stack them: x0 of shape (starts, {count}).") from None
    optimizer = optimizer if optimizer is not None else _DEFAULT_LBFGS
    # Each start flattened as ravel_pytree flattens one (leaves in order, each raveled), all at once.
    starts = jnp.concatenate([jnp.reshape(jnp.asarray(leaf), (count, -1)) for leaf in leaves], axis=1)
    if problem.fixed is not None:  # the solver sees the free coordinates; every start holds the fixed ones
        held = np.asarray(starts)[:, problem.fixed.mask]
        off = held != problem.fixed.values.astype(held.dtype)
        if off.any():
            i, k = np.argwhere(off)[0]
            raise InputError(f"batch=True, start {i} of x0 violates the bounds: coordinate "
                             f"{np.flatnonzero(problem.fixed.mask)[k]} is {float(held[i, k])}, but its "
                             f"bounds fix it at {float(problem.fixed.values[k])}")
        starts = starts[:, jnp.asarray(problem.fixed.free)]
    _check_starts(np.asarray(starts), problem)
    solver = _compiled_solver(fun, problem, fun_flat, optimizer, x0=starts, args=args, data=data, max_iters=max_iters,
                              tol=tol, record_x=False, batch=True)
    t0 = time.perf_counter()
    traces = jax.device_get(solver(starts, args))  # one transfer, then NumPy slices per start
    elapsed = time.perf_counter() - t0
    _file_under_what_it_holds_now(fun, data, stages)
    # The starts run in lockstep until the longest is done: one that stopped after k of the longest's
    # iterations was done k / longest of the way through the run (its times are spread over that).
    longest = max(1, int(np.max(traces.nit)))
    results = []
    for i in range(count):
        trace = jax.tree_util.tree_map(lambda a: a[i], traces)
        meta = {"estimator": estimator.describe(), "optimizer": optimizer_name, "seed": seed, "batch_index": i}
        results.append(_package_trace(problem, trace, History(meta=meta),
                                      elapsed=elapsed * int(trace.nit) / longest, max_iters=max_iters, tol=tol,
                                      start=i))
    return results


def _check_starts(starts: np.ndarray, problem: Problem) -> None:
    """Every start of a batch (one row each) is finite and within the bounds, as a single x0 must be."""
    # the starts hold the free coordinates only: a coordinate is named by its place in x0
    named = (lambda j: int(j)) if problem.fixed is None else (lambda j: int(problem.fixed.free[j]))
    bad = ~np.isfinite(starts).all(axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(f"batch=True, start {i} of x0 holds nan or inf (coordinate "
                         f"{named(np.argmax(~np.isfinite(starts[i])))})")
    if problem.lower is None:
        return
    # compared in the starts' own dtype, as a single device x0 is, and as the solver clips (0.3 in
    # float32 is 0.30000001 in float64: within float32 bounds of 0.3)
    lower, upper = problem.lower.astype(starts.dtype), problem.upper.astype(starts.dtype)
    outside = (starts < lower) | (starts > upper)
    if outside.any():
        i, j = np.argwhere(outside)[0]
        raise InputError(f"batch=True, start {i} of x0 violates the bounds: coordinate {named(j)} is "
                         f"{float(starts[i, j])}, outside [{problem.lower[j]}, {problem.upper[j]}]")
