"""Named parameter spaces and the normalised vector the optimiser works on.

A :class:`Space` maps named, bounded parameters (``Real`` or ``Int``, each optionally on a log
scale, or a ``Choice`` among listed values) to a point ``u`` of the unit cube ``[0, 1]^n`` and back::

    space = Space(rate=Int(10, 1000, log=True), alpha=Real(0.0, 1.0))
    u = space.to_unit({"rate": 100, "alpha": 0.25})    # array([0.5, 0.25])
    space.from_unit(u)                                 # {"rate": 100, "alpha": 0.25}

Coordinate ``i`` of ``u`` is ``(v - low) / (high - low)``, or on a log scale
``(log v - log low) / (log high - log low)``. The optimiser only ever sees ``u``; the objective only
ever sees user values (integers as Python ``int``).

Integer rule. A gradient estimated from two evaluations of the same rounded point is zero and stalls
the run, so :meth:`Space.min_step` gives, per coordinate, the smallest move of ``u`` that changes the
rounded integer by at least one unit, in either direction, at the current point; finite-difference
and SPSA probes use ``max(their own step, min_step)``. On a linear scale that is ``1 / (high - low)``;
on a log scale it is ``log(v / (v - 1)) / log(high / low)`` at value ``v`` (the downward move is
the longer one), or ``log((v + 1) / v) / log(high / low)`` where ``v - 1`` falls below ``low``.
Real parameters have ``min_step`` 0.

A ``Choice`` among ``k`` values is an integer position ``0 .. k - 1`` on a linear scale, so the
integer rule moves it one value along its list at least; the objective receives the value itself.
"""

from __future__ import annotations

import math
import numbers
from typing import Iterable, Mapping

import numpy as np

from gdtools.errors import InputError
from gdtools.history import plain_data

#: Evaluations a search over a space spends when given no limit (``gdtools tune --budget``'s default
#: and ``minimize(space=...)``'s when it has no max_evals, max_iters or max_time): a space's
#: objective is usually a program run, and a thousand iterations of it are rarely what was meant.
DEFAULT_BUDGET = 200

# Moves are lengthened by this factor so that floating-point rounding can never leave a probe a
# hair short of the next integer.
_STEP_SAFETY = 1.0 + 1e-9


_EPS = float(np.finfo(np.float64).eps)

#: The largest whole number an Int's bound may be: float64 holds every whole number up to it.
MAX_WHOLE = 2 ** 53


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_finite_number(value) -> bool:
    """A number a float holds, neither nan nor infinite (10**400 is no float at all)."""
    try:
        return _is_number(value) and math.isfinite(float(value))
    except OverflowError:
        return False


def _log_ratio(a: float, b: float) -> float:
    """``log(a / b)`` for ``a >= b > 0``, also where ``a / b`` overflows (1e300 / 1e-300 is inf,
    which made the middle of such a log range its top and every unit position nan), and to full
    precision where ``a`` is close to ``b``: ``a / b`` rounds to a multiple of 2.2e-16, a whole unit
    and more for integers beyond 4.5e15, so every other Int of a narrow log range there came back
    from its unit position as its neighbour (``log1p`` of the exact difference keeps them apart)."""
    excess = (a - b) / b
    return math.log1p(excess) if math.isfinite(excess) else math.log(a) - math.log(b)


class _Param:
    """A bounded scalar parameter; see :class:`Real` and :class:`Int`."""

    is_int = False
    kind = "Real"

    def __init__(self, low, high, *, log: bool = False):
        for label, value in (("low", low), ("high", high)):
            if not _is_number(value):
                raise InputError(f"{self.kind}: `{label}` must be a finite number, got {value!r}")
            # (10**400 is no float at all, and above 2**53 floats skip whole numbers)
            too_big = f"{self.kind}: `{label}` must be at most 2**53 = {MAX_WHOLE} in size (the whole " \
                      f"numbers a float holds exactly), got {value}"
            if self.is_int and isinstance(value, numbers.Integral) and abs(int(value)) > MAX_WHOLE:
                raise InputError(too_big)
            try:
                finite = math.isfinite(float(value))
            except OverflowError:
                finite = False
            if not finite:
                raise InputError(f"{self.kind}: `{label}` must be a finite number, got {value!r}")
            if self.is_int and abs(float(value)) > MAX_WHOLE:
                raise InputError(too_big)
        if self.is_int:
            for label, value in (("low", low), ("high", high)):
                if float(value) != int(value):
                    raise InputError(f"{self.kind}: `{label}` must be a whole number, got {value!r}")
            low, high = int(low), int(high)
        else:
            low, high = float(low), float(high)
        if not isinstance(log, bool):
            raise InputError(f"{self.kind}: `log` must be True or False, got {log!r}")
        if low >= high:
            raise InputError(f"{self.kind}: `low` must be below `high`, got low={low!r}, high={high!r}")
        if log and low <= 0:
            raise InputError(f"{self.kind}: a log scale needs `low` > 0, got low={low!r}")
        if self.is_int and not log and high - low > MAX_WHOLE:
            # (a unit position is (v - low) / (high - low): a float holds v - low exactly only up to
            # 2**53, so Int(-2**53, 2**53) gave a quarter of its integers back as their neighbours)
            raise InputError(f"{self.kind}: the range from low={low} to high={high} holds more whole numbers "
                             f"than a float tells apart (2**53 = {MAX_WHOLE}); narrow it")
        if not log and not math.isfinite(float(high) - float(low)):
            raise InputError(f"{self.kind}: the range from low={low:g} to high={high:g} is wider than "
                             f"a float can hold; narrow it, or search it on a log scale")
        self.low, self.high, self.log = low, high, log

    def __repr__(self) -> str:
        return f"{self.kind}({self.low!r}, {self.high!r}" + (", log=True)" if self.log else ")")

    def __eq__(self, other) -> bool:
        return (type(self) is type(other)
                and (self.low, self.high, self.log) == (other.low, other.high, other.log))

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.low, self.high, self.log))

    # -- scale ---------------------------------------------------------------------------------
    def _span(self) -> float:
        return _log_ratio(self.high, self.low) if self.log else float(self.high - self.low)

    def unit(self, value: float) -> float:
        """Position of ``value`` (already checked to lie within bounds) in [0, 1]."""
        if self.log:
            return _log_ratio(value, self.low) / self._span()
        return (value - self.low) / self._span()

    def continuous(self, u: float) -> float:
        """User value at unit position ``u`` (not rounded), kept inside the bounds."""
        # The ends are the bounds exactly: low * exp(log(high / low)) or low + (high - low) may miss
        # high by a rounding (0.999999999999999 for Real(1e-6, 1.0, log=True)).
        if u <= 0.0:
            return float(self.low)
        if u >= 1.0:
            return float(self.high)
        if self.log:
            try:  # (low + low * expm1: see _log_ratio; low * exp lost the units near 2**53)
                v = self.low + self.low * math.expm1(u * self._span())
            except OverflowError:  # a log range wider than a float's (high / low is inf)
                v = math.exp(math.log(self.low) + u * self._span())
        else:
            v = self.low + u * self._span()
        return min(max(v, self.low), self.high)

    def value(self, u: float):
        """User value at unit position ``u``: a Python int (rounded) or float."""
        v = self.continuous(u)
        if self.is_int:
            return int(min(max(round(v), self.low), self.high))
        if v in (self.low, self.high):
            return v  # a bound as given, whatever its digits
        return float(min(max(self._shortest(v, u), self.low), self.high))

    def _shortest(self, v: float, u: float) -> float:
        """The shortest decimal (at most 15 significant digits) within the scale's rounding error
        of ``v``: that noise would otherwise reach the program's command line (1.0000000000000002
        for the middle of [0.1, 10]; a start of 0.74 in [1.5e-6, 4.9] on a log scale came back from
        its unit position as 0.739999999999999, a few units of the 15th digit off)."""
        if self.log:  # exp(u * span) multiplies the rounding of u * span = log(v / low) by v
            tolerance = 8 * _EPS * abs(v) * (1.0 + abs(u * self._span()))
        else:
            tolerance = 8 * _EPS * (abs(self.low) + abs(self.high))
        for digits in range(1, 15):
            shorter = float(f"{v:.{digits}g}")
            if abs(shorter - v) <= tolerance:
                return shorter
        return float(f"{v:.15g}")

    def min_step(self, u: float) -> float:
        if not self.is_int:
            return 0.0
        if not self.log:
            return min(1.0, _STEP_SAFETY / self._span())
        v = self.continuous(u)
        up = math.log1p(1.0 / v)  # (log((v + 1) / v) rounds to a third too short near 3e15)
        down = -math.log1p(-1.0 / v) if v - 1.0 >= self.low else up
        return min(1.0, _STEP_SAFETY * max(up, down) / self._span())

    def describe(self) -> dict:
        return {"low": self.low, "high": self.high, "log": self.log, "int": self.is_int}

    def check_value(self, name: str, value) -> None:
        """Raise :class:`InputError` unless ``value`` is a value of this parameter."""
        bounds = f"[{self.low!r}, {self.high!r}]"
        if not _is_finite_number(value):
            raise InputError(f"parameter {name!r}: value must be a finite number within {bounds}, "
                             f"got {value!r}")
        if self.is_int and float(value) != round(float(value)):
            raise InputError(f"parameter {name!r} is an integer within {bounds}, got {value!r}")
        if not self.low <= value <= self.high:
            raise InputError(f"parameter {name!r} = {value!r} is outside its bounds {bounds}")

    def unit_of(self, value) -> float:
        """Position in [0, 1] of a checked user value."""
        return self.unit(float(value))

    def position(self, value) -> int | None:
        """The whole number a checked user value stands at: the integer itself, a Choice's index
        in its list; None for a Real."""
        return int(value) if self.is_int else None


class Real(_Param):
    """A real parameter in ``[low, high]``; ``log=True`` explores it on a log scale (needs low > 0)."""

    kind = "Real"


class Int(_Param):
    """An integer parameter in ``[low, high]`` (inclusive); ``log=True`` for a log scale (low > 0).

    The optimiser moves continuously; the objective receives the rounded value as a Python ``int``.
    """

    kind = "Int"
    is_int = True


def _choice_key(value):
    """What tells two values of a Choice apart: ``True`` and ``1`` differ; ``1`` and ``1.0`` don't."""
    if isinstance(value, (bool, np.bool_)):
        return ("bool", bool(value))
    if isinstance(value, str):
        return ("str", value)
    return ("number", float(value))


class Choice(_Param):
    """One of listed values: strings, booleans or numbers, e.g. ``Choice(["lz4", "zstd", "gzip"])``.

    The search moves along the list in the order given (it is the integer position ``0 .. k - 1``
    underneath, one list step at least per probe), so list the values in an order where neighbours
    are alike: sizes from small to large, compression levels from fast to strong. The objective
    receives the value itself. ``Choice([False, True])`` is an on/off setting.
    """

    kind = "Choice"
    is_int = True

    def __init__(self, values: Iterable):
        if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
            raise InputError(f"Choice: give a list of values, e.g. Choice(['lz4', 'zstd']), got {values!r}")
        if isinstance(values, (set, frozenset)):  # (its order changes from one Python process to the next)
            raise InputError(f"Choice: give the values in a list, in the order to search them: a set has "
                             f"no order, got {values!r}")
        values = tuple(values)
        for value in values:
            if not (isinstance(value, (str, bool, np.bool_)) or _is_finite_number(value)):
                raise InputError(f"Choice: values must be strings, booleans or finite numbers (the "
                                 f"history keeps them as JSON), got {value!r}")
        if len(values) < 2:
            raise InputError(f"Choice: give at least two values to choose from, got {list(values)!r}")
        keys = [_choice_key(v) for v in values]
        repeated = [v for v, k in zip(values, keys) if keys.count(k) > 1]
        if repeated:
            raise InputError(f"Choice: the value {repeated[0]!r} is listed twice in {list(values)!r}")
        self.values = tuple(plain_data(v) for v in values)  # (NumPy's scalars are no JSON for the history)
        self._keys = tuple(keys)
        self.low, self.high, self.log = 0, len(values) - 1, False

    def __repr__(self) -> str:
        return f"Choice({list(self.values)!r})"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self._keys == other._keys

    def __hash__(self) -> int:
        return hash(("Choice", self._keys))

    def index(self, value) -> int | None:
        """Where ``value`` is in the list, or None."""
        try:
            key = _choice_key(value)
        except (TypeError, ValueError, OverflowError):
            return None
        return self._keys.index(key) if key in self._keys else None

    def value(self, u: float):
        return self.values[int(super().value(u))]

    def check_value(self, name: str, value) -> None:
        if self.index(value) is None:
            raise InputError(f"parameter {name!r} = {value!r} is not one of its values "
                             f"{list(self.values)!r}")

    def unit_of(self, value) -> float:
        return self.index(value) / self.high

    def position(self, value) -> int | None:
        return self.index(value)

    def describe(self) -> dict:
        return {"choices": list(self.values), **super().describe()}


class Space:
    """Named bounded parameters <-> points of the unit cube.

    Args:
      **params: ``name=Real(...)``, ``name=Int(...)`` or ``name=Choice([...])``, in the order the
        vector uses.

    Example::

        space = Space(rate=Int(10, 1000, log=True), batch=Int(1, 512, log=True))
        space.center()            # {"rate": 100, "batch": 23}
    """

    def __init__(self, **params: _Param):
        if not params:
            raise InputError("Space: give at least one parameter, e.g. Space(rate=Int(10, 1000))")
        for name, param in params.items():
            if not isinstance(param, _Param):
                raise InputError(f"Space: parameter {name!r} must be Real(...), Int(...) or "
                                 f"Choice([...]), got {param!r}")
        self.params: dict[str, _Param] = dict(params)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.params)

    def __len__(self) -> int:
        return len(self.params)

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={param!r}" for name, param in self.params.items())
        return f"Space({inner})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Space) and list(self.params.items()) == list(other.params.items())

    def __hash__(self) -> int:
        return hash(tuple(self.params.items()))

    # -- conversions ---------------------------------------------------------------------------
    def check(self, params: Mapping) -> None:
        """Raise :class:`InputError` unless ``params`` names every parameter with a value in bounds."""
        if not isinstance(params, Mapping):
            raise InputError(f"parameters must be a dict of name -> value, got {params!r}")
        unknown = [name for name in params if name not in self.params]
        if unknown:
            raise InputError(f"unknown parameter {unknown[0]!r}; the space has {list(self.names)}")
        missing = [name for name in self.params if name not in params]
        if missing:
            raise InputError(f"missing value for parameter {missing[0]!r}; "
                             f"give all of {list(self.names)}")
        for name, param in self.params.items():
            param.check_value(name, params[name])

    def to_unit(self, params: Mapping) -> np.ndarray:
        """The unit-cube point (float64, shape ``(n,)``) of a dict of user values."""
        self.check(params)
        return np.array([param.unit_of(params[name]) for name, param in self.params.items()],
                        dtype=np.float64)

    def _unit_array(self, u) -> np.ndarray:
        arr = np.asarray(u, dtype=np.float64).reshape(-1)
        if arr.shape != (len(self),):
            raise InputError(f"unit vector must have {len(self)} entries ({list(self.names)}), "
                             f"got shape {np.shape(u)}")
        return np.clip(np.nan_to_num(arr, nan=0.5), 0.0, 1.0)

    def from_unit(self, u) -> dict:
        """User values at unit point ``u`` (clipped to [0, 1]; integers rounded to Python ints)."""
        arr = self._unit_array(u)
        return {name: param.value(float(x)) for (name, param), x in zip(self.params.items(), arr)}

    def round_unit(self, u) -> np.ndarray:
        """``u`` moved to the unit position of the user point it stands for (integers rounded)."""
        return self.to_unit(self.from_unit(u))

    def positions(self, u) -> list:
        """Per coordinate of unit point ``u``: the whole number its user value stands at (an Int's
        value, a Choice's index), or None for a Real."""
        return [param.position(value) for param, value in zip(self.params.values(), self.from_unit(u).values())]

    def center(self) -> dict:
        """The middle of each parameter's range, in its own scale (geometric mean for log)."""
        return self.from_unit(np.full(len(self), 0.5))

    def min_step(self, u) -> np.ndarray:
        """Per coordinate, the smallest move of ``u`` that changes a rounded integer by one unit."""
        arr = self._unit_array(u)
        return np.array([param.min_step(float(x)) for param, x in zip(self.params.values(), arr)],
                        dtype=np.float64)

    def describe(self) -> dict:
        """``name -> {"low", "high", "log", "int"}`` (and a Choice's ``"choices"``), as stored in
        history meta."""
        return {name: param.describe() for name, param in self.params.items()}

    @classmethod
    def from_description(cls, description: Mapping) -> "Space":
        """Rebuild a space from :meth:`describe` output (e.g. a history file's meta)."""
        params = {}
        for name, d in description.items():
            if "choices" in d:
                params[name] = Choice(d["choices"])
                continue
            kind = Int if d.get("int") else Real
            params[name] = kind(d["low"], d["high"], log=bool(d.get("log", False)))
        return cls(**params)
