"""What a dream maximises: objectives over the network's activations that compose with arithmetic.

In the spirit of Lucid's ``optvis.objectives``::

    from gdtools.dream import objectives as obj
    target = obj.layer("block8") + 0.5 * obj.channels("block11", [3, 17]) - 0.1 * obj.layer("stem")

An objective maps ``{layer name: activations (N, H, W, C)}`` to a scalar to *maximise*. It names the
layers it needs (:attr:`Objective.layers`), is checked against the network before anything is
compiled (:meth:`Objective.check`), and describes itself as plain data for the PNG metadata
(:meth:`Objective.describe`). A guide objective needs the guide's features, computed once by the
dream (:meth:`Objective.resolve`) before compilation.
"""

from __future__ import annotations

import copy
import hashlib
import numbers
from typing import Callable, Sequence

import jax.numpy as jnp
import numpy as np

from gdtools.dream import images
from gdtools.errors import InputError

#: at most this many guide feature vectors are kept (the match is an all-pairs dot product)
MAX_GUIDE_POSITIONS = 1024


class Objective:
    """Base class. Subclasses implement ``__call__(activations) -> scalar`` and ``describe()``."""

    layers: tuple[str, ...] = ()

    def __call__(self, activations: dict) -> jnp.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self):
        raise NotImplementedError  # pragma: no cover - abstract

    def check(self, table) -> None:
        """Raise :class:`InputError` unless every layer (and channel) exists in ``table``
        (a sequence of :class:`gdtools.dream.efficientnet.LayerInfo`)."""
        names = [info.name for info in table]
        for name in self.layers:
            if name not in names:
                raise InputError(f"unknown layer {name!r}; layers are: {', '.join(names)}")

    def resolve(self, layer_features: Callable[[str, np.ndarray], np.ndarray]) -> "Objective":
        """This objective with everything that depends on the network computed (guide features)."""
        return self

    def key(self) -> str | None:
        """A string that identifies the computation, for caching compiled functions; None for an
        objective defined outside this module, whose ``describe()`` need not tell two computations
        apart (two instances, or its code before and after an edit): it is compiled, not cached."""
        if not _defined_here(self):
            return None
        return repr(self.describe())

    # arithmetic, Lucid style
    def __add__(self, other):
        if isinstance(other, numbers.Number) and other == 0:
            return self
        return Sum.of([(1.0, self), (1.0, _as_objective(other))])

    __radd__ = __add__

    def __sub__(self, other):
        return Sum.of([(1.0, self), (-1.0, _as_objective(other))])

    def __rsub__(self, other):
        return Sum.of([(1.0, _as_objective(other)), (-1.0, self)])

    def __mul__(self, weight):
        if not isinstance(weight, numbers.Real):
            raise InputError(f"an objective can be multiplied by a number, not by {type(weight).__name__}")
        if not np.isfinite(float(weight)):  # the dream would fail after compiling, its value nan
            raise InputError(f"an objective's weight must be a finite number, got {float(weight)!r}")
        return Sum.of([(float(weight), self)])

    __rmul__ = __mul__

    def __truediv__(self, divisor):
        return self * (1.0 / float(divisor))

    def __neg__(self):
        return self * -1.0


def _defined_here(objective) -> bool:
    """Whether ``objective``'s class is one of this module's, whose key() describes its computation."""
    return type(objective).__module__ == __name__


def _as_objective(value) -> Objective:
    if isinstance(value, Objective):
        return value
    raise InputError(f"cannot combine an objective with {type(value).__name__}")


def _check_layer_name(name) -> str:
    if not isinstance(name, str) or not name:
        raise InputError(f"a layer is named by a string such as 'block8', got {name!r}")
    return name


class LayerEnergy(Objective):
    """Mean of the squared activations of a layer: "whatever you see there, more of it"."""

    def __init__(self, layer: str):
        self.layer = _check_layer_name(layer)
        self.layers = (self.layer,)

    def __call__(self, activations):
        return jnp.mean(jnp.square(activations[self.layer]))

    def describe(self):
        return {"layer": self.layer}


class Channels(Objective):
    """Mean of the squared activations of chosen channels of a layer."""

    def __init__(self, layer: str, channels: Sequence[int]):
        self.layer = _check_layer_name(layer)
        self.layers = (self.layer,)
        channels = [channels] if isinstance(channels, numbers.Integral) else list(channels)
        if not channels or not all(isinstance(c, numbers.Integral) and not isinstance(c, bool) for c in channels):
            raise InputError(f"channels must be a non-empty list of integers, got {channels!r}")
        repeated = sorted({int(c) for c in channels if list(channels).count(c) > 1})
        if repeated:  # a channel listed twice would count twice in the mean, silently
            raise InputError(f"channels lists channel {repeated[0]} more than once, in {list(channels)!r}; "
                             f"to weigh a channel more, add objectives: obj.channels(layer, [c]) * 2 + ...")
        self.channels = tuple(int(c) for c in channels)

    def check(self, table):
        super().check(table)
        width = next(info.channels for info in table if info.name == self.layer)
        bad = [c for c in self.channels if not 0 <= c < width]
        if bad:
            raise InputError(
                f"channel {bad[0]} is out of range for layer {self.layer!r}, which has channels 0..{width - 1}"
            )

    def __call__(self, activations):
        return jnp.mean(jnp.square(activations[self.layer][..., jnp.asarray(self.channels)]))

    def describe(self):
        return {"layer": self.layer, "channels": list(self.channels)}


class Guide(Objective):
    """Match a guide image's features (DeepDream's "controlling dreams").

    Each activation vector x_i of the image is pulled towards the guide feature y_j it already
    resembles most: maximise mean_i max_j <x_i, y_j>. Before :meth:`resolve` the guide is an image;
    after, its feature vectors at ``layer`` (at most :data:`MAX_GUIDE_POSITIONS`).
    """

    def __init__(self, layer: str, guide_image, *, name: str | None = None):
        self.layer = _check_layer_name(layer)
        self.layers = (self.layer,)
        # on the 0..255 scale like the dreamed image: a [0, 1] float guide is scaled up, not taken for black
        image = images.on_0_255(images.check_image(guide_image, what="guide image"))
        self.guide_image = image
        self.name = name
        self.features = None
        self._digest = hashlib.sha256(image.tobytes()).hexdigest()[:16]

    def resolve(self, layer_features):
        if self.features is not None:
            return self
        features = np.asarray(layer_features(self.layer, self.guide_image), dtype=np.float32)
        features = features.reshape(-1, features.shape[-1])
        if len(features) > MAX_GUIDE_POSITIONS:
            keep = np.linspace(0, len(features) - 1, MAX_GUIDE_POSITIONS).round().astype(int)
            features = features[keep]
        resolved = copy.copy(self)
        resolved.features = jnp.asarray(features)
        return resolved

    def __call__(self, activations):
        if self.features is None:
            raise InputError("guide objective used before its guide features were computed (call resolve)")
        x = activations[self.layer]
        x = x.reshape(-1, x.shape[-1])
        return jnp.mean(jnp.max(x @ self.features.T, axis=1))

    def describe(self):
        return {"layer": self.layer, "guide": self.name or f"sha256:{self._digest}"}

    def key(self) -> str | None:
        if not _defined_here(self):
            return None
        # The resolved features are constants of the compiled program: a guide file with the same
        # name but other pixels, other network weights or another depthwise form are other programs.
        features = "unresolved" if self.features is None else \
            hashlib.sha256(np.asarray(self.features).tobytes()).hexdigest()
        return repr((self.describe(), self._digest, features))


class Sum(Objective):
    """A weighted sum of objectives (what ``+``, ``-`` and ``*`` build)."""

    def __init__(self, terms: Sequence[tuple[float, Objective]]):
        self.terms = tuple((float(w), o) for w, o in terms)
        layers = []
        for _, objective in self.terms:
            layers.extend(name for name in objective.layers if name not in layers)
        self.layers = tuple(layers)

    @classmethod
    def of(cls, terms) -> "Sum":
        flat = []
        for weight, objective in terms:
            if isinstance(objective, Sum):
                flat.extend((weight * w, o) for w, o in objective.terms)
            else:
                flat.append((weight, objective))
        return cls(flat)

    def key(self) -> str | None:
        keys = [objective.key() for _, objective in self.terms]
        if not _defined_here(self) or None in keys:
            return None
        return repr([(w, key) for (w, _), key in zip(self.terms, keys)])

    def check(self, table):
        for _, objective in self.terms:
            objective.check(table)

    def resolve(self, layer_features):
        return Sum([(w, o.resolve(layer_features)) for w, o in self.terms])

    def __call__(self, activations):
        return sum(w * o(activations) for w, o in self.terms)

    def describe(self):
        return {"sum": [{"weight": w, **o.describe()} for w, o in self.terms]}


def layer(name: str) -> Objective:
    """Energy (mean squared activation) of layer ``name`` (``stem``, ``block0``..``block15``, ``head``)."""
    return LayerEnergy(name)


def channels(name: str, indices: Sequence[int] | int) -> Objective:
    """Energy of the channels ``indices`` of layer ``name``."""
    return Channels(name, indices)


def guide(name: str, guide_image, *, label: str | None = None) -> Objective:
    """Make the image's features at layer ``name`` resemble those of ``guide_image`` (RGB, 0..255,
    or floats in [0, 1] like the image dreamed)."""
    return Guide(name, guide_image, name=label)


def as_objective(target) -> Objective:
    """An :class:`Objective` from an objective or a layer name."""
    if isinstance(target, Objective):
        return target
    if isinstance(target, str):
        return layer(target)
    raise InputError(f"objective must be a layer name or an Objective, got {type(target).__name__}")
