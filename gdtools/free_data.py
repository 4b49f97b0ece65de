"""What a JAX objective reads besides its arguments, summarised, so that a compiled program is not
reused after that data changed.

``gd.minimize`` keeps the programs it compiles for an objective and gives them to later calls with
the same objective. A JAX program holds the data its function reads from outside (a global array,
a closure's array, a callable object's attributes) as constants fixed when it was traced. A scipy
user who changes that data between two calls expects the second call to see it. :func:`fingerprint`
summarises that data, and the caches key on it: changed data, a new program.

What is summarised, following the function's code: the values of its closure cells, the globals
its code names (and, for a module of the user's, the attributes of it the code names), its
defaults, a ``functools.partial``'s arguments, a bound method's object, a callable object's
attributes and slots and the data its class holds (a class of the user's), and, recursively, the
functions, containers and objects these hold (up to :data:`MAX_DEPTH` levels and
:data:`MAX_VALUES` values: the user's data beyond either is not read, so the key of such a function
matches nothing, not even itself, and every call compiles anew, with a warning; objects of installed
libraries are read on a budget of their own, and what lies beyond it is taken as fixed). NumPy arrays are summarised by their bytes (a change in place is seen),
JAX arrays (immutable) by identity, kept alive by the key so that their identity cannot pass to
another array, numbers and strings by value. Modules, classes, the functions of installed
libraries, what lies deeper and objects that cannot be read are taken by identity. A function that
changes what it reads while JAX traces it (a list it appends to) is keyed on what it holds after
the call (see ``gd.minimize``). Data that changes from call to call belongs in ``args=``, inputs
of the program.
"""

from __future__ import annotations

import functools
import itertools
import sys
import sysconfig
import types
import warnings
import weakref
import zlib
from typing import Any

import numpy as np

#: How deep into functions, containers and objects the summary goes, and how many values it reads.
MAX_DEPTH = 6
MAX_VALUES = 10_000

_LIBRARY_PATHS = tuple({sysconfig.get_paths()[name] for name in ("stdlib", "platstdlib", "purelib", "platlib")})
_SCALARS = (bool, int, float, complex, str, bytes, type(None))


def fingerprint(fun, *, into_library_closures: bool = False) -> tuple[tuple, list]:
    """``(key, keep)``: a hashable summary of the data ``fun`` reads besides its arguments, and the
    objects the key names by identity (hold them as long as the key).

    ``into_library_closures``: read the closures of installed libraries' functions too (taken by
    identity otherwise), not counting them as a level: an optax transformation is a pair of optax's
    closures, which hold its settings and the user's own functions (a learning-rate schedule)."""
    walk = _Walk(into_library_closures=into_library_closures)
    key = walk.summary(fun, 0)
    if walk.converted_changed:
        # JAX keeps the dtype-converted copy of a NumPy array it traced as a constant, by the array
        # (a weak-keyed cache): after a change in place, a new trace of a new program still got the
        # old values (float64 data without x64: the host loop solved the old problem and said
        # converged). Emptying JAX's caches drops that copy; only when such data changed.
        import jax

        jax.clear_caches()
    if walk.incomplete:
        # Data left unread may change unseen: a key that matches no other, so nothing compiled for
        # this call is given to a later one (slower, never wrong).
        token = object()
        walk.keep.append(token)
        name = getattr(fun, "__qualname__", None) or type(fun).__name__
        what = "optimizer" if into_library_closures else "objective"
        warnings.warn(f"gd.minimize cannot follow all the data the {what} {name} reads (nested more than "
                      f"{MAX_DEPTH} levels deep, or more than {MAX_VALUES} values), so it compiles the "
                      f"{what} anew on every call rather than risk reusing a program built for old data"
                      + ("" if into_library_closures else
                         ". Pass data that changes between calls as args=(...), inputs of the program"),
                      UserWarning, stacklevel=_user_stacklevel())
        return ("incomplete", token), walk.keep
    return key, walk.keep


class Pinned:
    """A fingerprint as one cache key: compared and hashed by its key, and holding the objects the
    key names by identity, so that their ids cannot pass to other objects while it is kept."""

    __slots__ = ("key", "keep")

    def __init__(self, key, keep):
        self.key, self.keep = key, keep

    def __eq__(self, other):
        return isinstance(other, Pinned) and self.key == other.key

    def __hash__(self):
        return hash(self.key)


def optimizer_data(optimizer) -> Pinned:
    """The data an optimizer's functions read (its settings, a learning-rate schedule and what that
    reads), to key programs compiled for it: a schedule that reads a changed global gets a new one."""
    return Pinned(*fingerprint(optimizer, into_library_closures=True))


def _user_stacklevel() -> int:
    """The ``stacklevel`` of a warning raised here that names the user's line calling gdtools."""
    frame, level = sys._getframe(1), 1
    while frame is not None and (frame.f_globals.get("__name__") or "").startswith("gdtools"):
        frame, level = frame.f_back, level + 1
    return level


def _is_library_file(filename: str) -> bool:
    return bool(filename) and filename.startswith(_LIBRARY_PATHS)


def _is_library(function) -> bool:
    code = getattr(function, "__code__", None)
    return (_is_library_file(getattr(code, "co_filename", ""))
            or (getattr(function, "__module__", "") or "").startswith("gdtools"))


def _is_user_module(module: types.ModuleType) -> bool:
    """A module of the user's own (a file outside the standard library and installed packages)."""
    filename = getattr(module, "__file__", None) or ""
    return bool(filename) and not _is_library_file(filename) and not module.__name__.startswith("gdtools")


#: NumPy arrays read by objectives that JAX converts to another dtype when tracing: id -> (a weak
#: reference, the digest of their bytes when last read), to tell a change in place.
_CONVERTED: dict[int, tuple] = {}


def _conversion_went_stale(array: np.ndarray, digest: int) -> bool:
    """Whether ``array``, of a dtype JAX converts (float64 without x64), was read before with
    other bytes: a change in place, which JAX's cached converted copy does not see."""
    import jax

    if jax.dtypes.canonicalize_dtype(array.dtype) == array.dtype:
        return False  # JAX takes it as it is: no converted copy to go stale
    seen = _CONVERTED.get(id(array))
    changed = seen is not None and seen[0]() is array and seen[1] != digest
    if seen is None or seen[0]() is not array or changed:
        try:
            ref = weakref.ref(array, lambda _, key=id(array): _CONVERTED.pop(key, None))
        except TypeError:
            return False
        _CONVERTED[id(array)] = (ref, digest)
    return changed


class _Walk:
    def __init__(self, *, into_library_closures: bool = False):
        self.into_library_closures = into_library_closures
        self.keep: list = []
        self.walked: dict[int, int] = {}  # id of a value walked -> its order, for one met again
        self.count = 0
        self.incomplete = False  # some data was left unread (too deep, or past MAX_VALUES)
        # Inside an object of an installed library (a logger, a plotting object): read as far as the
        # limits go, on a budget of its own, and what is left unread there does not make the key
        # incomplete (a logger's manager reaches every logger of the process: it would have made
        # an ordinary objective compile on every call)
        self.in_library = 0
        self.library_count = 0
        #: a NumPy array JAX converts to another dtype (float64 without x64) changed in place
        self.converted_changed = False

    def identity(self, value) -> tuple:
        """``value`` by identity, kept alive with the key (so that its id cannot pass to another)."""
        self.keep.append(value)
        return ("id", id(value))

    def summary(self, value, depth: int) -> Any:
        try:
            return self._summary(value, depth)
        except Exception:  # an object that will not be read (a proxy whose attributes raise)
            return self.identity(value)

    def unread(self) -> None:
        """Some data is left unread: outside a library's object, the key is incomplete."""
        if not self.in_library:
            self.incomplete = True

    def _summary(self, value, depth: int) -> Any:
        if self.in_library:
            self.library_count += 1
            if self.library_count > MAX_VALUES:  # read no further into libraries' objects
                return ("beyond",)
        else:
            self.count += 1
            if self.count > MAX_VALUES:  # read no further
                self.incomplete = True
                return ("beyond",)
        if isinstance(value, _SCALARS):
            return (type(value).__name__, value)
        if isinstance(value, np.ndarray) and not value.dtype.hasobject:
            data = np.ascontiguousarray(value)
            digest = zlib.crc32(data.view(np.uint8).reshape(-1))
            self.converted_changed |= _conversion_went_stale(value, digest)
            return ("ndarray", data.shape, data.dtype.str, digest)
        if isinstance(value, np.generic) and not isinstance(value, np.object_):
            return ("numpy", value.dtype.str, value.item())
        if id(value) in self.walked:  # shared, or a cycle: the same value as the one walked before
            return ("again", self.walked[id(value)])
        if isinstance(value, (types.FunctionType, types.MethodType, functools.partial)) and depth >= MAX_DEPTH:
            # too deep to follow: its code, not the function (a key must not keep a function alive)
            function = value.__func__ if isinstance(value, types.MethodType) else value
            if not (isinstance(function, types.FunctionType) and _is_library(function)):
                self.unread()
            return ("unfollowed", id(getattr(value, "__code__", None)), getattr(value, "__qualname__", None))
        if isinstance(value, (types.ModuleType, type, types.BuiltinFunctionType)) or _is_jax_array(value):
            return self.identity(value)
        if depth >= MAX_DEPTH:  # a container or an object too deep to read
            if not _is_library_class(type(value)):
                self.unread()
            return self.identity(value)
        # Recorded by id: values that live on through the walk (fun reaches them), never a
        # temporary (such as a dict's (key, value) pairs), whose id could pass to the next one.
        self.walked[id(value)] = len(self.walked)
        depth += 1
        if isinstance(value, functools.partial):
            return ("partial", self.summary(value.func, depth), self.summary(value.args, depth),
                    self.summary(value.keywords, depth))
        if isinstance(value, types.MethodType):
            return ("method", self.summary(value.__func__, depth), self.summary(value.__self__, depth))
        if isinstance(value, types.FunctionType):
            return self.function(value, depth)
        if isinstance(value, (tuple, list)):
            return (type(value).__name__, len(value), tuple(self.summary(item, depth) for item in self.some(value)))
        if isinstance(value, dict):
            return ("dict", len(value), self.pairs(value.items(), depth))
        if isinstance(value, (set, frozenset)):
            return (type(value).__name__, len(value), frozenset(self.summary(item, depth) for item in self.some(value)))
        return self.instance(value, depth)

    def pairs(self, items, depth: int) -> tuple:
        """``(key, value)`` pairs, unpacked (the pairs themselves are temporaries)."""
        return tuple((self.summary(key, depth), self.summary(item, depth)) for key, item in self.some(items))

    def instance(self, value, depth: int) -> tuple:
        """An object: its attributes (numbers too: a model's hyperparameters; a counter it keeps
        makes each call compile anew, slower but never wrong), its slots, the data its class holds
        (a class of the user's) and its ``__call__``."""
        cls = type(value)
        try:
            attributes = object.__getattribute__(value, "__dict__")
        except AttributeError:
            attributes = None
        slots = [name for klass in cls.__mro__ for name in getattr(klass, "__slots__", ()) if isinstance(name, str)]
        if not isinstance(attributes, dict) and not slots:
            return self.identity(value)  # nothing to read (an extension type)
        call = getattr(cls, "__call__", None)
        library = _is_library_class(cls)
        self.in_library += library
        try:
            return ("object", id(cls), self.pairs(_class_data(cls).items(), depth),
                    self.pairs(attributes.items(), depth) if isinstance(attributes, dict) else (),
                    tuple((name, self.summary(_slot(value, name), depth)) for name in slots),
                    self.summary(call, depth) if isinstance(call, types.FunctionType) else None)
        finally:
            self.in_library -= library

    def some(self, items):
        """The first of ``items`` the budget of MAX_VALUES still lets the walk read."""
        budget = max(0, MAX_VALUES - (self.library_count if self.in_library else self.count))
        if len(items) > budget:
            self.unread()
        return itertools.islice(items, budget)

    def function(self, function: types.FunctionType, depth: int) -> tuple:
        if _is_library(function):
            if not (self.into_library_closures and function.__closure__):
                return ("library", id(function.__code__))
            return ("library", id(function.__code__),
                    tuple(self.summary(_cell(cell), depth - 1) for cell in function.__closure__))
        code = function.__code__
        namespace = function.__globals__
        names = _global_names(code)
        cells = [_cell(cell) for cell in function.__closure__ or ()]
        read = [(name, self.summary(namespace[name], depth)) for name in names if name in namespace]
        for value in [*cells, *(namespace[name] for name in names if name in namespace)]:
            if issubclass(type(value), types.ModuleType) and _is_user_module(value):  # (type: no proxy's __class__)
                # a module of the user's: the attributes of it the code names (mydata.TARGET)
                module_data = vars(value)
                read.append((value.__name__, tuple((attr, self.summary(module_data[attr], depth))
                                                   for attr in names if attr in module_data)))
        return ("function", id(code), tuple(self.summary(cell, depth) for cell in cells),
                tuple(read), self.summary(function.__defaults__, depth), self.summary(function.__kwdefaults__, depth))


_CONTAINERS = (list, dict, tuple, set, frozenset)


def _is_library_class(cls) -> bool:
    """A class of an installed library or of Python's own (a logger, an Axes), not of the user's
    code; the built-in containers, which hold the user's data, are not counted as one."""
    if issubclass(cls, _CONTAINERS) and cls.__module__ == "builtins":
        return False
    name = getattr(cls, "__module__", None) or ""
    if name == "__main__":
        return False
    module = sys.modules.get(name)
    return module is None or not _is_user_module(module)


def _class_data(cls) -> dict:
    """The data a class of the user's holds for its instances (numbers, strings, arrays,
    containers; not its functions and descriptors)."""
    module = sys.modules.get(getattr(cls, "__module__", None) or "")
    if module is None or not (module.__name__ == "__main__" or _is_user_module(module)):
        return {}
    data = {}
    for klass in cls.__mro__[:-1]:  # not object
        for name, item in vars(klass).items():
            if not name.startswith("__") and name not in data and isinstance(
                    item, (*_SCALARS, np.ndarray, np.generic, tuple, list, dict, set, frozenset)):
                data[name] = item
    return data


def _slot(value, name):
    try:
        return object.__getattribute__(value, name)
    except AttributeError:  # an empty slot
        return None


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
