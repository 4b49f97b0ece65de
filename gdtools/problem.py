"""A user's problem made flat: objective, start point, bounds and scale on one parameter vector.

``minimize`` accepts a flat array or any pytree (a dict of named arrays), bounds as scalars or
pytrees shaped like ``x0``, or a :class:`gdtools.Space` of named, bounded, log-scaled or integer
parameters. Everything downstream (estimators, optimizers, history) sees one flat vector; this
module converts in both directions and validates the input once, with messages that name it.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from gdtools.errors import InputError
from gdtools.fixed_parameters import FixedParameters, FreeToJax, FreeToUser
from gdtools.program_cache import saved_jit


@saved_jit(static_argnames=("shape",))
def _reshaped(flat, *, shape):
    return jnp.reshape(flat, shape)  # the dtype passes through, as in ravel_pytree's unravel


@saved_jit
def _flattened(x):
    return jnp.reshape(x, (-1,))


@saved_jit
def _all_finite(x):
    return jnp.all(jnp.isfinite(x))


#: How far (relative, at least 1 absolute) x0 may lie outside a bound and be moved onto it.
ROUNDING_SLACK = float(np.finfo(np.float32).eps)


@saved_jit
def _first_outside(x, lower, upper):
    """Index of the first coordinate outside [lower, upper], or -1."""
    outside = (x < lower) | (x > upper)
    return jnp.where(jnp.any(outside), jnp.argmax(outside), -1)


#: what :func:`_check_start` returns for an x0 with a nan or an infinity
NOT_FINITE = -2


@saved_jit
def _check_start(x, lower, upper):
    """:data:`NOT_FINITE` if ``x`` holds a nan or an infinity, else the index of the first coordinate
    outside [lower, upper], or -1: a device x0's two checks in one program (each distinct program
    costs a load in every process; a dream starts one run per octave)."""
    return jnp.where(jnp.all(jnp.isfinite(x)), _first_outside(x, lower, upper), NOT_FINITE)


def _identity(flat):
    return flat


def _not_finite(x) -> InputError:
    return InputError(f"x0 contains non-finite values (nan or inf): {np.asarray(x).ravel()[:8]}")


def takes_key(fun: Callable, extra: int = 0) -> bool:
    """Whether ``fun`` is written ``fun(x, key)`` (a stochastic objective), or ``fun(x, key, *args)``
    when ``extra`` arguments (``minimize``'s ``args``) follow."""
    try:
        sig = inspect.signature(fun)
    except (TypeError, ValueError):
        return False
    positional = [p for p in sig.parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if any(p.kind == p.VAR_POSITIONAL for p in sig.parameters.values()):
        return False
    required = [p for p in positional if p.default is p.empty]
    return len(required) >= 2 + extra or (len(positional) >= 2 and positional[1].name == "key")


def key_hint(fun: Callable, extra: int = 0) -> str:
    """Why ``fun`` was taken for ``fun(x, key)``, when its second parameter is not named ``key``
    (a forgotten ``args=`` looks the same), for error messages; "" otherwise."""
    try:
        params = [p for p in inspect.signature(fun).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return ""
    if len(params) < 2 or params[1].name == "key":
        return ""
    return (f" (fun's parameter {params[1].name!r} is taken for a PRNG key, because fun has more "
            f"required parameters than x and the {extra} args= gives; if it is data, pass it with "
            f"args=(...), as in scipy)")


class _Unravel:
    """Picklable flat-NumPy-vector -> pytree of NumPy arrays (for executors in other processes)."""

    def __init__(self, treedef, shapes, dtypes):
        self.treedef, self.shapes, self.dtypes = treedef, shapes, dtypes

    def __call__(self, flat):
        flat = np.asarray(flat)
        leaves, start = [], 0
        for shape, dtype in zip(self.shapes, self.dtypes):
            size = int(np.prod(shape, dtype=int))
            leaf = flat[start:start + size].reshape(shape)
            leaves.append(leaf.astype(dtype) if np.issubdtype(dtype, np.floating) else leaf)
            start += size
        if self.treedef is None:
            return leaves[0]
        return jax.tree_util.tree_unflatten(self.treedef, leaves)


@dataclasses.dataclass
class Problem:
    """The flat view of a problem.

    Attributes:
      x0: flat start point (NumPy float64, or a JAX array in device mode).
      to_user: flat vector -> the user's argument (pytree, or a dict in user units for a space).
      jax_unravel: flat JAX vector -> pytree of JAX arrays (for traceable objectives).
      lower, upper: flat bounds or None.
      scale: flat typical size of a move per coordinate.
      space: the Space, if any.
      device: True when x0 was a JAX array: the loop keeps x on the device.
      stochastic: whether the objective takes a key.
      clip: the bounds as the jitted update uses them (scalars stay scalars: no image-sized constants).
      fixed: the coordinates fixed by their bounds (lower == upper), taken out of the problem: the
        other attributes then hold the free coordinates only (see gdtools.fixed_parameters).
    """

    x0: Any
    to_user: Callable
    jax_unravel: Callable
    lower: np.ndarray | None
    upper: np.ndarray | None
    scale: np.ndarray
    space: Any
    device: bool
    stochastic: bool
    clip: Any = None  # (lower, upper) for projecting iterates: scalars when the bounds were scalars
    jax_dtypes: tuple = ()  # the leaves' dtypes as jax_unravel gives them to a traced objective
    fixed: FixedParameters | None = None

    @property
    def bounds(self):
        return None if self.lower is None else (self.lower, self.upper)

    def grad_to_user(self, grad):
        """A flat gradient in the user's structure; a parameter fixed by its bounds has none: nan
        there, as in scipy's ``res.jac``."""
        if self.device:
            grad = jnp.asarray(grad, dtype=jnp.result_type(self.x0))
            if self.fixed is None:
                return self.jax_unravel(grad)
            return self.fixed.jax_unravel_full(self.fixed.expand_jax(grad, fill=jnp.nan))
        if self.fixed is None:
            return self.to_user(np.asarray(grad, dtype=float))
        return self.fixed.to_user_full(self.fixed.expand(grad, fill=np.nan))

    def within_bounds(self, x):
        """The flat NumPy point ``x`` (or rows of points) moved onto the bounds it passes by a
        rounding: a float64 start solved in float32 (JAX without x64) ends on the float32 nearest
        its bound, 0.5672664 for 0.5672663908077081, outside the bound in float64."""
        x = np.asarray(x, dtype=float)
        return x if self.lower is None else np.clip(x, self.lower, self.upper)

    def min_step(self, x):
        if self.space is None:
            return None
        return np.asarray(self.space.min_step(np.asarray(x, dtype=float)), dtype=float)

    @property
    def integers(self) -> np.ndarray | None:
        """Which coordinates of a space's point are integer parameters (None without a space)."""
        params = getattr(self.space, "params", None)
        if params is None:
            return None
        return np.array([getattr(param, "is_int", False) for param in params.values()], dtype=bool)

    def unit_neighbours(self, x, upper, lower) -> np.ndarray:
        """Per coordinate of a space's point ``x``: whether it is an integer that ``upper`` and
        ``lower`` (probe positions, one per coordinate) round to one unit above and one below.
        A symmetric probe on a log scale may skip one: from 3 on ``Int(1, 100, log=True)`` the
        move that reaches 2 reaches 5 above."""
        at, up, down = (self.space.positions(np.asarray(u, dtype=float)) for u in (x, upper, lower))
        return np.array([v is not None and u == v + 1 and d == v - 1 for v, u, d in zip(at, up, down)],
                        dtype=bool)


def _as_real(leaf):
    """An integer or boolean leaf of x0 as floats (JAX's default float for a JAX array)."""
    if isinstance(leaf, jax.Array):
        return leaf if jnp.issubdtype(leaf.dtype, jnp.inexact) else leaf.astype(jnp.result_type(float))
    arr = np.asarray(leaf)
    if arr.dtype != object and (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
        return arr.astype(float)
    return leaf


def _as_float_array(name, value):
    try:
        arr = np.asarray(value)
    except Exception:
        raise InputError(f"{name} must be numbers, got {type(value).__name__}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise InputError(f"{name} must be numbers, got {arr.dtype} values")
    return arr


def _is_number_like(value) -> bool:
    """One number: a pytree leaf of no dimensions (a tuple of arrays of two shapes, which NumPy
    cannot even take the dimensions of, is a pytree like x0)."""
    if not jax.tree_util.treedef_is_leaf(jax.tree_util.tree_structure(value)) or value is None:
        return False
    try:
        return np.ndim(value) == 0
    except ValueError:
        return False


def _is_scalar_bound(bound) -> bool:
    """One number for every coordinate (None: an open side); anything else is a pytree like x0."""
    return bound is None or _is_number_like(bound)


def _flatten_bound(name, bound, x0_tree, n, open_value):
    # A scalar bound is a read-only view of one number (no n-sized array to fill: an image has
    # millions of coordinates, and a dream makes a problem an octave).
    if bound is None:  # an open side, as scipy writes it
        return np.broadcast_to(np.float64(open_value), (n,))
    if _is_scalar_bound(bound):
        return np.broadcast_to(np.float64(_as_float_array(name, bound)), (n,))
    if isinstance(bound, np.ndarray) and bound.shape == (n,):
        # scipy's forms (Bounds, pairs), already one number per coordinate in x0's flat order (an
        # x0 of any shape: a matrix, a 0-d array), or an array of that flat shape
        return bound.astype(float)
    if not isinstance(bound, dict) and jax.tree_util.treedef_is_leaf(jax.tree_util.tree_structure(x0_tree)):
        # one array x0: a bound may be any array-like (a list) of its shape
        arr = _as_float_array(name, bound)
        try:
            return np.broadcast_to(arr, np.shape(x0_tree)).astype(float).ravel()
        except ValueError:
            raise InputError(f"{name} has shape {arr.shape}, x0 has {np.shape(x0_tree)}") from None
    # A pytree like x0, or a prefix of it: each of its leaves a number or None (open there) for a
    # whole subtree of x0, or an array of that leaf's shape.
    def fill(b, subtree):
        value = np.float64(open_value) if b is None else _as_float_array(name, b)
        return [np.broadcast_to(value, np.shape(leaf)) for leaf in jax.tree_util.tree_leaves(subtree)]

    try:
        filled = jax.tree_util.tree_map(fill, _lists_as_arrays(bound, x0_tree, name), x0_tree, is_leaf=lambda v: v is None)
        flat = np.concatenate([leaf.ravel() for leaf in jax.tree_util.tree_leaves(filled)]).astype(float)
    except InputError:
        raise
    except Exception:
        shapes = jax.tree_util.tree_map(np.shape, x0_tree)
        raise InputError(f"{name} must be a scalar or a pytree like x0 (its structure, or a prefix of it; "
                         f"each leaf a number or None for a whole part of x0, or an array of that leaf's "
                         f"shape): x0's shapes are {shapes}") from None
    if flat.size != n:  # a guard: the structures matched, so the sizes should
        raise InputError(f"{name} holds {flat.size} numbers, x0 {n}")
    return flat


def _lists_as_arrays(bound, x0_part, name: str):
    """``bound`` with each plain list or tuple that stands where x0 has one array read as an array
    (``{"a": [0, 0.5]}`` for an ``{"a": np.zeros(2)}``), as a single-array x0's bound is; where x0
    has a list or a dict itself, the bound's follows its structure."""
    if type(bound) in (list, tuple) and jax.tree_util.treedef_is_leaf(jax.tree_util.tree_structure(x0_part)):
        return bound if x0_part is None else _as_float_array(name, bound)
    if isinstance(bound, dict) and isinstance(x0_part, dict):
        return {key: _lists_as_arrays(value, x0_part[key], name) if key in x0_part else value
                for key, value in bound.items()}
    if type(bound) in (list, tuple) and type(x0_part) is type(bound) and len(bound) == len(x0_part):
        return type(bound)(_lists_as_arrays(b, x, name) for b, x in zip(bound, x0_part))
    return bound


def _is_plain_number(value) -> bool:
    """A Python or NumPy real number (not a bool): an entry of a list x0 read as an array."""
    return isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_))


def matrix_items(nested):
    """The items of nested lists, depth first."""
    for item in nested:
        if type(item) is list:
            yield from matrix_items(item)
        else:
            yield item


def lists_as_array(x0):
    """``x0`` as NumPy reads it where it is a plain list (or tuple) of numbers, a vector as scipy
    takes it, or a list of lists of numbers, a matrix; anything else as it is (a NamedTuple of
    numbers is a pytree of named parameters; a ragged list, or one holding arrays, a pytree)."""
    if type(x0) in (list, tuple) and x0 and all(map(_is_plain_number, x0)):
        try:
            return np.asarray(x0, dtype=float)
        except OverflowError:  # a whole number no float holds (10**400): refused as its leaf
            return x0
    if type(x0) is list and x0 and all(type(v) is list for v in x0):
        try:
            matrix = np.asarray(x0, dtype=float)
        except (TypeError, ValueError, OverflowError):
            return x0
        if all(map(_is_plain_number, matrix_items(x0))):
            return matrix
    return x0


def build_problem(fun, x0, *, bounds, space, n_args: int = 0) -> Problem:
    """Validate ``fun``, ``x0``, ``bounds`` and ``space`` and make the flat problem; ``n_args``:
    how many extra arguments (``minimize``'s ``args``) ``fun`` takes after ``x`` (and its key)."""
    if not callable(fun):
        raise InputError(f"fun must be callable, got {type(fun).__name__}")
    stochastic = takes_key(fun, n_args)
    if space is not None:
        return _space_problem(x0, bounds=bounds, space=space, stochastic=stochastic)
    if x0 is None:
        raise InputError("x0 is required (a flat array or a pytree of arrays), unless a space is given")
    x0 = lists_as_array(x0)
    leaves = jax.tree_util.tree_leaves(x0)
    if not leaves or all(np.size(leaf) == 0 for leaf in leaves):
        raise InputError("x0 is empty: it must hold at least one number")
    # Integer (and boolean) leaves are optimised as real numbers: res.x gives them as floats.
    x0 = jax.tree_util.tree_map(_as_real, x0)
    leaves = jax.tree_util.tree_leaves(x0)
    device = all(isinstance(leaf, jax.Array) for leaf in leaves)
    treedef = jax.tree_util.tree_structure(x0)
    is_single = treedef.num_leaves == 1 and jax.tree_util.treedef_is_leaf(treedef)
    # One device array is checked for nan and inf together with the bounds, below, in one program.
    check_later = device and is_single
    for leaf in leaves:
        # Device arrays are checked where they live: one boolean comes back, not the array.
        arr = leaf if device else _as_float_array("x0", leaf)
        if device and not jnp.issubdtype(arr.dtype, jnp.number):
            raise InputError(f"x0 must be numbers, got {arr.dtype} values")
        if jnp.iscomplexobj(arr) if device else np.iscomplexobj(arr):
            raise InputError("x0 must be real, got complex values")
        if jnp.dtype(arr.dtype) in (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16)):
            raise InputError(f"x0 of dtype {arr.dtype} is not supported (optax's line search and the "
                             f"finite-difference steps need float32 or float64); cast it, e.g. "
                             f"x0.astype(jnp.float32), and cast back inside fun if it must run in "
                             f"{arr.dtype}")
        if not check_later and not (bool(_all_finite(arr)) if device else np.all(np.isfinite(arr))):
            raise _not_finite(arr)
    if is_single and device:  # compiled reshapes, shared by every run (not eager ones); none if flat
        flat_jax = leaves[0] if leaves[0].ndim == 1 else _flattened(leaves[0])
        jax_dtypes = (str(leaves[0].dtype),)
    else:
        jax_leaves = jax.tree_util.tree_map(jnp.asarray, x0)
        flat_jax, jax_unravel = ravel_pytree(jax_leaves)
        jax_dtypes = tuple(str(leaf.dtype) for leaf in jax.tree_util.tree_leaves(jax_leaves))
    if is_single:  # as ravel_pytree's unravel, which passes the dtype through
        shape = tuple(np.shape(leaves[0]))
        jax_unravel = _identity if len(shape) == 1 else functools.partial(_reshaped, shape=shape)
    n = flat_jax.size
    shapes = [np.shape(leaf) for leaf in leaves]
    dtypes = [np.result_type(np.asarray(leaf).dtype, np.float64) if not device else leaf.dtype
              for leaf in leaves]
    to_user = _Unravel(None if is_single else treedef, shapes, dtypes)
    if device:
        x_flat = flat_jax
    else:
        x_flat = np.concatenate([np.asarray(leaf, dtype=float).ravel() for leaf in leaves])
    try:
        bounds, lower, upper, scalar, low, high = _checked_bounds(bounds, x0, n)
    except InputError:
        # one device array's nan and inf are checked with the bounds: reported first, as for others
        if check_later and not bool(_all_finite(x_flat)):
            raise _not_finite(x_flat) from None
        raise
    if bounds is not None:
        if check_later:  # one compiled check where x lives, nan and inf too; one integer comes back
            i = int(_check_start(x_flat, np.asarray(low, x_flat.dtype), np.asarray(high, x_flat.dtype)))
            if i == NOT_FINITE:
                raise _not_finite(x_flat)
        elif device:  # one compiled check where x lives; one integer comes back
            i = int(_first_outside(x_flat, np.asarray(low, x_flat.dtype), np.asarray(high, x_flat.dtype)))
        else:
            # A point off a bound by float32 rounding (a float32 result, 0.30000001 for 0.3, passed
            # back in float64) is moved onto it, as scipy clips x0; anything further is an error.
            slack = lambda b: np.where(np.isfinite(b), ROUNDING_SLACK * np.maximum(1.0, np.abs(b)), 0.0)  # noqa: E731
            outside = (x_flat < lower - slack(lower)) | (x_flat > upper + slack(upper))
            i = int(np.argmax(outside)) if np.any(outside) else -1
            if i < 0 and (np.any(x_flat < lower) or np.any(x_flat > upper)):
                x_flat = np.clip(x_flat, lower, upper)
        if i >= 0:
            raise InputError(f"x0 violates the bounds: {coordinate_name(x0, i)} is {float(x_flat[i])}, outside "
                             f"[{lower[i]}, {upper[i]}]")
    if check_later and bounds is None and not bool(_all_finite(x_flat)):
        raise _not_finite(x_flat)
    typical = np.broadcast_to(1.0, (n,)) if device else np.maximum(1.0, np.abs(x_flat))
    if lower is not None and scalar:
        width = float(upper[0] - lower[0])
        scale = np.broadcast_to(width, (n,)) if np.isfinite(width) else typical
    elif lower is not None:
        width = upper - lower
        scale = np.where(np.isfinite(width), width, typical)
    else:
        scale = typical
    clip = None
    if bounds is not None:
        clip = (float(lower[0]), float(upper[0])) if scalar else (lower, upper)
    problem = Problem(x0=x_flat, to_user=to_user, jax_unravel=jax_unravel, lower=lower, upper=upper,
                      scale=scale, space=None, device=device, stochastic=stochastic, clip=clip,
                      jax_dtypes=jax_dtypes)
    if bounds is not None and not scalar and np.any(lower == upper):
        return _without_fixed(problem, lower == upper)
    return problem


def _without_fixed(problem: Problem, mask) -> Problem:
    """``problem`` on its free coordinates: those whose bounds are equal are fixed at them, as
    scipy's bounded methods remove them (see gdtools.fixed_parameters)."""
    fixed = FixedParameters(mask, problem.x0, to_user=problem.to_user, jax_unravel=problem.jax_unravel)
    free = fixed.free
    lower, upper = np.asarray(problem.lower)[free], np.asarray(problem.upper)[free]
    x0 = problem.x0[jnp.asarray(free)] if problem.device else problem.x0[free]
    return dataclasses.replace(problem, x0=x0, to_user=FreeToUser(fixed), jax_unravel=FreeToJax(fixed),
                               lower=lower, upper=upper, scale=np.asarray(problem.scale)[free],
                               clip=(lower, upper), fixed=fixed)


def coordinate_name(x0, i: int) -> str:
    """Flat coordinate ``i`` named for the user: ``coordinate 3`` of one array, and with the part of a
    pytree it lies in, ``coordinate 3 (x0['width'])`` or ``coordinate 4 (x0['w'][1])``."""
    paths = jax.tree_util.tree_flatten_with_path(x0)[0]
    if len(paths) == 1 and not paths[0][0]:
        return f"coordinate {i}"
    start = 0
    for path, leaf in paths:
        size = int(np.size(leaf))
        if i < start + size:
            where = "".join(f"[{int(k)}]" for k in np.unravel_index(i - start, np.shape(leaf)))
            return f"coordinate {i} (x0{jax.tree_util.keystr(path)}{where})"
        start += size
    return f"coordinate {i}"


def _checked_bounds(bounds, x0, n: int):
    """``(bounds, lower, upper, scalar, low, high)``: the bounds as given (None when there are
    none), flat lower and upper bounds, whether both are scalars, and the part to check (their
    first entries when scalar); an InputError if they are malformed or lower > upper somewhere
    (lower == upper fixes a parameter, as in scipy)."""
    lower = upper = low = high = None
    scalar = False
    given, bounds = bounds, _as_lower_upper(bounds, n)
    paths = [path for path, _ in jax.tree_util.tree_flatten_with_path(x0)[0]]
    keyed = any(not isinstance(key, jax.tree_util.SequenceKey) for path in paths for key in path)
    if bounds is not given and len(paths) > 1 and keyed and not all(map(_is_scalar_bound, bounds)):
        # scipy's forms give one (min, max) per coordinate in x0's flat order, which for a dict is
        # its sorted keys (JAX's order), not the order it was written in: refused, not guessed (a
        # list or tuple of arrays flattens in its written order: taken)
        names = ", ".join(jax.tree_util.keystr(path) for path in paths)
        raise InputError(f"bounds as one (min, max) per coordinate (scipy's form) do not say which part of "
                         f"x0 each belongs to: x0 is a pytree, flattened in the order {names}. Give "
                         f"bounds=(lower, upper), each a number or a pytree like x0: for x0 = "
                         f"{{'a': ..., 'b': ...}}, bounds=({{'a': 0, 'b': -1}}, {{'a': 10, 'b': 1}})")
    if isinstance(bounds, (tuple, list)) and len(bounds) == 2 and bounds[0] is None and bounds[1] is None:
        bounds = None
    if bounds is not None:
        if not (isinstance(bounds, (tuple, list)) and len(bounds) == 2):
            raise InputError("bounds must be a pair (lower, upper) of scalars or pytrees like x0")
        lower = _flatten_bound("bounds[0] (lower)", bounds[0], x0, n, -np.inf)
        upper = _flatten_bound("bounds[1] (upper)", bounds[1], x0, n, np.inf)
        # Scalar bounds are checked as the two numbers they are: an image's million coordinates
        # made this several full-size passes and copies per call (a dream calls once an octave).
        scalar = all(map(_is_scalar_bound, bounds))
        low, high = (lower[:1], upper[:1]) if scalar else (lower, upper)
        if np.any(np.isnan(low)) or np.any(np.isnan(high)):
            raise InputError("bounds contain nan")
        if np.any(low > high):
            i = int(np.argmax(low > high))
            raise InputError(f"bounds need lower <= upper; {coordinate_name(x0, i)} has lower={lower[i]} "
                             f"> upper={upper[i]}")
        if np.all(low == high):
            raise InputError("every parameter is fixed by its bounds (lower == upper): there is nothing to "
                             "optimise; evaluate fun at x0 instead")
    return bounds, lower, upper, scalar, low, high


def _is_pair(item) -> bool:
    """A ``(min, max)`` pair of scalars (None for an open side), as in scipy's bounds."""
    return (isinstance(item, (tuple, list)) and len(item) == 2
            and all(v is None or _is_number_like(v) for v in item))


def _as_lower_upper(bounds, n: int):
    """scipy's bound forms as ``(lower, upper)``: a ``scipy.optimize.Bounds`` (``lb``, ``ub``), or
    one ``(min, max)`` pair per parameter (a list or tuple of pairs, or an array of shape (n, 2)).

    With two parameters a pair of pairs reads two ways: scipy's pairs per parameter, or gdtools'
    ``(lower, upper)``. A list of tuples, ``[(0, 2), (1, 3)]``, and pairs holding None (an open
    side) are scipy's; otherwise the reading under which the bounds make sense (lower < upper) is
    taken, and bounds that make sense both ways are refused as ambiguous (x0 does not decide: the
    same bounds would mean one box for one start and another for the next).
    """
    if hasattr(bounds, "lb") and hasattr(bounds, "ub"):
        if np.size(bounds.lb) == 1 and np.size(bounds.ub) == 1:  # Bounds(0, 1): one box for every coordinate
            return float(np.ravel(bounds.lb)[0]), float(np.ravel(bounds.ub)[0])
        try:
            return (np.broadcast_to(np.asarray(bounds.lb, dtype=float), (n,)),
                    np.broadcast_to(np.asarray(bounds.ub, dtype=float), (n,)))
        except ValueError:
            raise InputError(f"scipy.optimize.Bounds with lb of shape {np.shape(bounds.lb)} and ub of shape "
                             f"{np.shape(bounds.ub)}: x0 has {n} numbers") from None
    if isinstance(bounds, np.ndarray) and bounds.shape == (n, 2) and n != 2:
        return bounds[:, 0].astype(float), bounds[:, 1].astype(float)
    pairs = bounds.tolist() if isinstance(bounds, np.ndarray) and bounds.shape == (2, 2) else bounds
    if (isinstance(pairs, (tuple, list)) and len(pairs) not in (2, n) and pairs
            and all(_is_pair(b) for b in pairs)):  # (two pairs may be gdtools' (lower, upper))
        raise InputError(f"bounds has {len(pairs)} (min, max) pairs, x0 has {n} parameters: give one pair "
                         f"per parameter")
    if not isinstance(pairs, (tuple, list)) or len(pairs) != n or not all(_is_pair(b) for b in pairs):
        return bounds
    try:
        lower = np.array([-np.inf if lo is None else float(lo) for lo, _ in pairs])
        upper = np.array([np.inf if hi is None else float(hi) for _, hi in pairs])
    except OverflowError:
        raise InputError("bounds hold a number too large for a float (the largest is about 1.8e308); "
                         "give None or an infinity for an open side") from None
    if n != 2 or any(v is None for pair in pairs for v in pair) or (
            isinstance(pairs, list) and all(isinstance(b, tuple) for b in pairs)):
        return lower, upper
    readings = {"scipy's (min, max) per parameter": (lower, upper),
                "(lower, upper)": (np.array([float(v) for v in pairs[0]]), np.array([float(v) for v in pairs[1]]))}
    sensible = {name: (lo, hi) for name, (lo, hi) in readings.items() if np.all(lo < hi)}
    if len(sensible) == 1:
        return next(iter(sensible.values()))
    if len(sensible) == 2 and not all(np.array_equal(a, b) for a, b in zip(*sensible.values())):
        boxes = "; ".join(f"as {name}: x in {' x '.join(f'[{a:g}, {b:g}]' for a, b in zip(lo, hi))}"
                          for name, (lo, hi) in sensible.items())
        raise InputError(f"bounds={pairs!r} for 2 parameters reads two ways ({boxes}); write scipy's "
                         f"form as a list of tuples, [(min, max), (min, max)], or gdtools' as "
                         f"(np.array(lower), np.array(upper))")
    return readings["(lower, upper)"]  # neither reading makes sense: checked, and reported, as such


def _space_problem(x0, *, bounds, space, stochastic) -> Problem:
    for attr in ("names", "to_unit", "from_unit", "center", "min_step"):
        if not hasattr(space, attr):
            raise InputError(f"space must be a gdtools.Space, got {type(space).__name__}")
    if bounds is not None:
        raise InputError("give bounds inside the space (gd.Real(low, high) ...), not as bounds=")
    start = space.center() if x0 is None else x0
    if not isinstance(start, dict):
        raise InputError(f"with a space, x0 must be a dict of parameter values, got {type(start).__name__}")
    u0 = np.asarray(space.to_unit(start), dtype=float)
    n = u0.size
    return Problem(x0=u0, to_user=space.from_unit, jax_unravel=None, lower=np.zeros(n),
                   upper=np.ones(n), scale=np.ones(n), space=space, device=False,
                   stochastic=stochastic, clip=(0.0, 1.0))
