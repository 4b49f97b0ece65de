"""A readable description of an optax transformation, for the history and the plots' labels.

optax builds every optimizer as a ``GradientTransformation`` of two closures, so the object itself
says nothing of what it is: ``optax.adam(1e-3)`` and ``optax.sgd(0.1)`` are the same type. What
they are lives in the closures: the factory that made each (``scale_by_adam``, ``scale``, ...) and
its settings (``b1=0.9``, ``step_size=-0.001``). :func:`describe_transformation` reads them back::

    optax: scale_by_adam(b1=0.9, b2=0.999, eps=1e-08, eps_root=0.0, mu_dtype=None, nesterov=False) > scale(step_size=-0.001)

so that a history says which optimizer made it, a resumed run with another one is refused, and a
plot can tell runs apart (:func:`short_description`: ``optax adam, lr 0.001``). What is not in the
closures is not described: ``optax.inject_hyperparams`` keeps its numeric settings in the state.
"""

from __future__ import annotations

import re

import numpy as np

PREFIX = "optax: "
#: What a transformation whose closures cannot be read is called (and what older histories say).
UNDESCRIBED = "optax transformation"
#: Longer descriptions are cut here (a deeply nested transformation; the start says what it is).
MAX_LENGTH = 600
#: How deep settings that are functions themselves (a schedule, a line search's parts) are read.
MAX_DEPTH = 3
_SIMPLE = (bool, int, float, str, type(None))


def describe_transformation(transformation) -> str | None:
    """``"optax: factory(setting=value, ...) > ..."`` for an optax transformation, or None when its
    closures cannot be read (not optax's; the caller then uses a generic name)."""
    try:
        text = PREFIX + _describe_function(transformation.update, 0)
    except Exception:  # noqa: BLE001 - a description is never worth a failed run
        return None
    return text if len(text) <= MAX_LENGTH else text[:MAX_LENGTH - 3] + "..."


def short_description(description: str) -> str:
    """A plot label's form of a :func:`describe_transformation` description: each part's factory
    without optax's ``scale_by_`` prefix or its settings, and the learning rate (the last ``scale``'s
    step, sign flipped): ``optax adam, lr 0.001``. Other strings come back unchanged."""
    if not description.startswith(PREFIX):
        return description
    names, rate = [], None
    for part in _top_level_parts(description[len(PREFIX):]):
        name, _, settings = part.partition("(")
        step = re.fullmatch(r"step_size=(-?[0-9.eE+-]+)\)", settings.strip())
        if name == "scale" and step:
            rate = _flipped(step.group(1))
        elif name == "scale_by_learning_rate":
            rate = settings.rstrip(")").partition("=")[2] or rate
        elif name == "inject_hyperparams":  # its settings live in its state, not its closures
            inner = re.search(r"inner_factory=(\w+)", settings)
            names.append(f"{inner.group(1) if inner else '?'} (injected hyperparameters)")
        elif name != "identity":
            names.append(name.removeprefix("scale_by_"))
    words = " > ".join(names) or "sgd"
    return f"optax {words}" + (f", lr {rate}" if rate else "")


def differing_parts(recorded: str, given: str) -> tuple[str, str]:
    """The parts of two descriptions that differ (a message names those, not 120 characters of
    settings both share); the whole descriptions when their parts do not line up."""
    if not (recorded.startswith(PREFIX) and given.startswith(PREFIX)):
        return recorded, given
    mine, theirs = _top_level_parts(recorded[len(PREFIX):]), _top_level_parts(given[len(PREFIX):])
    if len(mine) != len(theirs):
        return recorded, given
    pairs = [(a, b) for a, b in zip(mine, theirs) if a != b]
    return " > ".join(a for a, _ in pairs), " > ".join(b for _, b in pairs)


def differing_settings(descriptions: list) -> list[str] | None:
    """For runs whose optax descriptions differ in their settings (two exponential decays, two
    ``b1``), each run's settings where those differ (``"decay_rate=0.5"``); a setting that is itself
    a function (a schedule) is named where the functions differ (``"learning_rate=cosine_decay_schedule"``)
    and its own settings left out, except those that differ between runs of the same function (two
    exponential decays beside a cosine: ``"learning_rate=exponential_decay, decay_rate=0.5"``). None
    unless that tells every run apart (descriptions that cannot be read, or that differ in their
    structure)."""
    if not all(isinstance(d, str) and d.startswith(PREFIX) for d in descriptions):
        return None
    leaves = [_leaf_settings(d) for d in descriptions]
    if any(leaf is None for leaf in leaves):
        return None
    paths = list(dict.fromkeys(path for leaf in leaves for path in leaf))
    differing, named = [], []
    for path in paths:
        values = [leaf.get(path) for leaf in leaves]
        if len(set(values)) <= 1:
            continue
        if any(path[:len(d)] == d for d in differing):  # under a function that differs
            if len({value for value in values if value is not None}) > 1:
                named.append(path)  # differs between runs of the same function
            continue
        if None in values:  # a setting some runs lack, not under a function that differs
            return None
        differing.append(path)
        named.append(path)
    settings = [", ".join(f"{path[-1]}={leaf[path]}" for path in named if path in leaf) for leaf in leaves]
    return settings if differing and len(set(settings)) == len(settings) else None


_SETTING = re.compile(r"\s*(\w+)=")
_CALL = re.compile(r"(\w+)\(")


def _leaf_settings(description: str) -> dict[tuple, str] | None:
    """Each setting of a description by its place: ``(part, "step_size_fn", "learning_rate")`` ->
    ``"exponential_decay"`` (a function's own settings follow under its place), ``(part,
    ..., "decay_rate")`` -> ``"0.5"``; None for a description this cannot read."""
    leaves: dict[tuple, str] = {}
    try:
        for index, part in enumerate(_top_level_parts(description[len(PREFIX):])):
            call = _CALL.match(part)
            if call is None:
                leaves[(index,)] = part
            elif _read_settings(part, call.end(), (index, call.group(1)), leaves) != len(part):
                return None
    except ValueError:
        return None
    return leaves


def _read_settings(text: str, start: int, path: tuple, leaves: dict) -> int:
    """Read ``name=value, ...)`` from ``text[start:]`` into ``leaves`` under ``path``; the index
    after its closing parenthesis."""
    i = start
    while text[i:i + 1] != ")":
        setting = _SETTING.match(text, i)
        if setting is None:
            raise ValueError(f"no setting at {i}")
        place, i = (*path, setting.group(1)), setting.end()
        call = _CALL.match(text, i)
        if call is not None:
            leaves[place] = call.group(1)
            i = _read_settings(text, call.end(), place, leaves)
        else:
            depth, end = 0, i
            while end < len(text) and not (depth == 0 and text[end] in ",)"):
                depth += {"(": 1, "{": 1, ")": -1, "}": -1}.get(text[end], 0)
                end += 1
            leaves[place], i = text[i:end], end
        if text.startswith(", ", i):
            i += 2
        elif i >= len(text):
            raise ValueError("unclosed")
    return i + 1


def _flipped(number: str) -> str:
    return number[1:] if number.startswith("-") else "-" + number


def _top_level_parts(text: str) -> list[str]:
    """``a(x) > b(y > z)`` -> ``["a(x)", "b(y > z)"]``: split on `` > `` outside parentheses."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and text.startswith(" > ", i):
            parts.append(text[start:i])
            start = i + 3
    parts.append(text[start:])
    return [part for part in parts if part]


def _factory(function) -> str:
    """The function that made a closure: ``scale_by_adam.<locals>.update_fn`` -> ``scale_by_adam``."""
    return getattr(function, "__qualname__", type(function).__name__).split(".<locals>")[0]


def _settings(function) -> list[tuple[str, object]]:
    names = function.__code__.co_freevars
    out = []
    for name, cell in zip(names, function.__closure__ or ()):
        try:
            out.append((name, cell.cell_contents))
        except ValueError:  # an empty cell: a closure over a name not yet bound
            continue
    return out


def _describe_function(function, depth: int) -> str:
    factory = _factory(function)
    settings = _settings(function) if hasattr(function, "__code__") else []
    if factory == "chain":
        (_, parts), = [(n, v) for n, v in settings if isinstance(v, (tuple, list))]
        return " > ".join(_describe_value(part, depth) for part in parts)
    if factory == "with_extra_args_support":
        return _describe_value(dict(settings)["tx"], depth)
    if depth >= MAX_DEPTH:
        return f"{factory}(...)" if settings else factory
    shown = [f"{name}={_describe_value(value, depth + 1)}" for name, value in settings
             if not name.startswith("_")]
    return f"{factory}({', '.join(shown)})" if shown or settings else factory


def _describe_value(value, depth: int) -> str:
    if isinstance(value, np.generic) and value.size == 1:
        value = value.item()  # np.float64(0.1) reads 0.1, as the same number written plainly
    if isinstance(value, _SIMPLE):
        return repr(value)
    if hasattr(value, "update") and hasattr(value, "init"):  # a transformation
        return _describe_function(value.update, depth)
    if callable(value) and hasattr(value, "__code__"):
        return _describe_function(value, depth)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}={_describe_value(item, depth + 1)}" for key, item in value.items()) + "}"
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(_describe_value(item, depth + 1) for item in value) + ")"
    if hasattr(value, "shape") and hasattr(value, "dtype") and getattr(value, "size", 2) == 1:
        try:  # an array's number, as short as its own precision allows (float32 0.001 -> 0.001)
            number = np.asarray(value).reshape(())[()]
            return repr(float(str(number)) if np.issubdtype(number.dtype, np.floating) else number.item())
        except Exception:  # noqa: BLE001 - a traced value
            return type(value).__name__
    return getattr(value, "__name__", type(value).__name__)
