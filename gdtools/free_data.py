"""What a JAX objective reads besides its arguments, summarised, so that a compiled program is not
reused after that data changed.

``gd.minimize`` keeps the programs it compiles for an objective and gives them to later calls with
the same objective. A JAX program holds the data its function reads from outside (a global array,
a closure's array, a callable object's attributes) as constants fixed when it was traced. A scipy
user who changes that data between two calls expects the second call to see it. :func:`fingerprint`
summarises that data, and the caches key on it: changed data, a new program.

What is summarised, following the function's code: the values of its closure cells, the globals
its code names, its defaults, a ``functools.partial``'s arguments, a bound method's object, a
callable object's attributes, and, recursively, the functions, containers and objects these hold
(up to :data:`MAX_DEPTH` levels and :data:`MAX_VALUES` values). NumPy arrays are summarised by their
bytes (a change in place is seen), JAX arrays (immutable) by identity, kept alive by the key so that
their identity cannot pass to another array, numbers and strings by value, except in lists, dicts
and sets, which may change while JAX traces the function (a list it appends to), so only the arrays
and objects they hold are read. Modules, classes and the functions of installed libraries are taken
as fixed. What lies deeper is taken by identity: pass
data that changes as ``args=``, which are inputs of the program.
"""

from __future__ import annotations

import functools
import itertools
import sys
import sysconfig
import types
import zlib
from typing import Any

import numpy as np

#: How deep into functions, containers and objects the summary goes, and how many values it reads.
MAX_DEPTH = 6
MAX_VALUES = 10_000

_LIBRARY_PATHS = tuple({sysconfig.get_paths()[name] for name in ("stdlib", "platstdlib", "purelib", "platlib")})
_SCALARS = (bool, int, float, complex, str, bytes, type(None))


def fingerprint(fun) -> tuple[tuple, list]:
    """``(key, keep)``: a hashable summary of the data ``fun`` reads besides its arguments, and the
    objects the key names by identity (hold them as long as the key)."""
    walk = _Walk()
    return walk.summary(fun, 0), walk.keep


def _is_library(function) -> bool:
    code = getattr(function, "__code__", None)
    filename = getattr(code, "co_filename", "")
    return filename.startswith(_LIBRARY_PATHS) or (getattr(function, "__module__", "") or "").startswith("gdtools")


class _Walk:
    def __init__(self):
        self.keep: list = []
        self.walked: dict[int, int] = {}  # id of a value walked -> its order, for one met again
        self.count = 0

    def identity(self, value) -> tuple:
        """``value`` by identity, kept alive with the key (so that its id cannot pass to another)."""
        self.keep.append(value)
        return ("id", id(value))

    def summary(self, value, depth: int) -> Any:
        self.count += 1
        if self.count > MAX_VALUES:  # read no further: what lies beyond is taken as fixed
            return ("beyond",)
        if isinstance(value, _SCALARS):
            return (type(value).__name__, value)
        if isinstance(value, np.ndarray) and not value.dtype.hasobject:
            data = np.ascontiguousarray(value)
            return ("ndarray", data.shape, data.dtype.str, zlib.crc32(data.view(np.uint8).reshape(-1)))
        if isinstance(value, np.generic) and not isinstance(value, np.object_):
            return ("numpy", value.dtype.str, value.item())
        if id(value) in self.walked:  # shared, or a cycle: the same value as the one walked before
            return ("again", self.walked[id(value)])
        if isinstance(value, (types.FunctionType, types.MethodType, functools.partial)) and depth >= MAX_DEPTH:
            # too deep to follow: its code, not the function (a key must not keep a function alive)
            return ("unfollowed", id(getattr(value, "__code__", None)), getattr(value, "__qualname__", None))
        if (depth >= MAX_DEPTH or isinstance(value, (types.ModuleType, type, types.BuiltinFunctionType))
                or _is_jax_array(value)):
            return self.identity(value)
        self.walked[id(value)] = len(self.walked)  # (alive through the walk: fun reaches it)
        depth += 1
        if isinstance(value, functools.partial):
            return ("partial", self.summary(value.func, depth), self.summary(value.args, depth),
                    self.summary(value.keywords, depth))
        if isinstance(value, types.MethodType):
            return ("method", self.summary(value.__func__, depth), self.summary(value.__self__, depth))
        if isinstance(value, types.FunctionType):
            return self.function(value, depth)
        if isinstance(value, tuple):
            return ("tuple", len(value), tuple(self.summary(item, depth) for item in self.some(value)))
        if isinstance(value, frozenset):
            return ("frozenset", len(value), frozenset(self.summary(item, depth) for item in self.some(value)))
        if isinstance(value, (list, dict, set)):
            # Mutable containers: only the arrays (and objects) they hold. Their numbers and strings
            # are taken as fixed: a list the function appends to while JAX traces it (a trace
            # counter) would otherwise change at every trace, and every call would compile anew.
            items = value.items() if isinstance(value, dict) else value
            return (type(value).__name__, tuple(self.summary(item, depth) for item in self.some(items)
                                                if not _is_plain(item)))
        attributes = getattr(value, "__dict__", None)
        if isinstance(attributes, dict):  # an object: its class, and its attributes
            call = getattr(type(value), "__call__", None)
            # its attributes, numbers too (a model's hyperparameters; a counter it keeps makes
            # each call compile anew: slower, never wrong)
            return ("object", id(type(value)),
                    tuple((name, self.summary(item, depth)) for name, item in self.some(attributes.items())),
                    self.summary(call, depth) if isinstance(call, types.FunctionType) else None)
        return self.identity(value)  # no attributes to read (slots, an extension type)

    def some(self, items):
        """The first of ``items`` the budget of MAX_VALUES still lets the walk read."""
        return itertools.islice(items, max(0, MAX_VALUES - self.count))

    def function(self, function: types.FunctionType, depth: int) -> tuple:
        if _is_library(function):
            return ("library", id(function.__code__))
        code = function.__code__
        namespace = function.__globals__
        return ("function", id(code),
                tuple(self.summary(_cell(cell), depth) for cell in function.__closure__ or ()),
                tuple((name, self.summary(namespace[name], depth)) for name in _global_names(code)
                      if name in namespace),
                self.summary(function.__defaults__, depth), self.summary(function.__kwdefaults__, depth))


def _is_plain(item) -> bool:
    """A number or string, or a dict item of a key and such a value."""
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], _SCALARS):
        item = item[1]
    return isinstance(item, _SCALARS)


def _cell(cell):
    try:
        return cell.cell_contents
    except ValueError:  # an empty cell (a variable not yet bound)
        return None


def _global_names(code: types.CodeType) -> tuple[str, ...]:
    """The global (and attribute) names a code object and the code nested in it use."""
    names = list(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names.extend(_global_names(const))
    return tuple(dict.fromkeys(names))


def _is_jax_array(value) -> bool:
    jax = sys.modules.get("jax")
    return jax is not None and isinstance(value, jax.Array)
