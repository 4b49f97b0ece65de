"""The dream's gradient: a gdtools gradient estimator that works in fixed-shape tiles.

Each estimate rolls the image by a random shift (the jitter, which also moves the tile borders from
step to step, so no seam can build up), cuts it into ``tile x tile`` pieces, asks the one jitted
``value_and_grad`` of the objective for each piece, puts the gradients back together and rolls them
back. Images smaller than a tile are reflect-padded up to it; larger ones are covered by evenly
spaced, overlapping tiles whose gradients are averaged where they overlap. Because every call of the
network has the same shape, a whole multi-octave dream compiles the network once, whatever the
image size or the number of octaves, and memory stays flat as images grow.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from gdtools import program_cache
from gdtools.dream import efficientnet, objectives
from gdtools.errors import InputError
from gdtools.estimators.base import Estimate, GradientEstimator


#: XLA:CPU vectorises for 256-bit registers unless told otherwise; on a CPU with AVX-512 the
#: network's fused loops run faster with 512 (one dream step at 512^2: about 5% in interleaved runs;
#: a CPU without AVX-512 ignores the hint). Fast min/max drops the NaN checks of every ReLU6 clip
#: (about 9% more): the network's input is a validated, finite image, and the engine still checks
#: every gradient for nan and inf.
CPU_COMPILER_OPTIONS = {"xla_cpu_prefer_vector_width": 512, "xla_cpu_enable_fast_min_max": True}


#: the modules whose source decides what the compiled network computes
_NETWORK_SOURCES = (efficientnet.__file__, objectives.__file__, __file__)


@functools.lru_cache(maxsize=None)
def _compiler_options(backend: str):
    """Options for jitting the network on ``backend``: the CPU ones where this jaxlib knows them."""
    if backend != "cpu":
        return None
    try:
        jax.jit(lambda v: v + 1, compiler_options=CPU_COMPILER_OPTIONS).lower(jnp.zeros(1)).compile()
    except Exception:  # an XLA without the option: compile as usual
        return None
    return CPU_COMPILER_OPTIONS


class TileObjective:
    """``objective`` on one preprocessed ``tile x tile`` RGB piece, as one jitted ``value_and_grad``.

    Attributes:
      traces: how many times the network was traced (= compiled) for this objective; a whole dream
        should leave it at 1.
    """

    def __init__(self, objective, *, params, tile: int, depthwise: str = "auto", precision: str = "float32"):
        self.objective = objective
        self.params = params
        self.tile = int(tile)
        self.traces = 0
        self.method = efficientnet.resolve_depthwise(depthwise)
        self.precision = efficientnet.check_precision(precision)
        dtype = jnp.dtype(self.precision)

        def value(params, piece):
            self.traces += 1
            x = efficientnet.preprocess(piece)[None]
            if dtype != x.dtype:  # the network in bfloat16; the objective and the gradient in float32
                params = jax.tree_util.tree_map(lambda a: a.astype(dtype), params)
                x = x.astype(dtype)
            acts = efficientnet.activations(params, x, layers=objective.layers, depthwise=self.method)
            result = objective({name: a.astype(jnp.float32) for name, a in acts.items()})
            if jnp.shape(result) != ():  # a user's objective (Lucid's return one value per image)
                raise InputError(f"an objective must return a scalar to maximise, got shape {jnp.shape(result)}; "
                                 "reduce it, e.g. with .mean()")
            return result

        self._value_and_grad = jax.jit(jax.value_and_grad(value, argnums=1))
        self._options = _compiler_options(jax.default_backend())
        self._executables = {}

    def __call__(self, piece):
        """``(value, grad)`` of the objective on one ``(tile, tile, 3)`` piece."""
        if isinstance(piece, program_cache.Tracer):
            return self._value_and_grad(self.params, piece)  # inside another trace: plain jit
        # Called directly: compiled ahead of time with the backend's options (the lowering reuses
        # the jit's trace, so the network is still traced once), or loaded whole from the
        # program cache, which skips the trace too.
        key = (piece.shape, str(piece.dtype))
        if key not in self._executables:
            self._executables[key] = self._compile(piece)
        return self._executables[key](self.params, piece)

    def _compile(self, piece):
        args = (self.params, piece)
        objective_key = self.objective.key()
        if objective_key is None:  # an objective defined outside gdtools: compiled, never saved or loaded
            return self._value_and_grad.lower(*args).compile(compiler_options=self._options)
        shapes = jax.tree_util.tree_map(lambda a: (tuple(a.shape), str(a.dtype)), args)
        # (the JAX settings, matmul precision among them, are added by program_cache.compiled)
        parts = ("tile_objective", objective_key, self.method, self.precision, shapes, sorted((self._options or {}).items()))
        return program_cache.compiled(lambda: self._value_and_grad.lower(*args), parts, sources=_NETWORK_SOURCES,
                                      args=args, options=self._options)


def tile_starts(size: int, tile: int) -> list[int]:
    """Offsets of the tiles along an axis of ``size`` pixels: one tile if it fits, else
    ``ceil(size / tile)`` evenly spaced, overlapping tiles that end exactly at the border."""
    if size <= tile:
        return [0]
    count = math.ceil(size / tile)
    return [int(round(s)) for s in np.linspace(0, size - tile, count)]


# The glue around the network is two compiled programs per image shape (cut, then assemble), not
# a dozen eager operations: each distinct program costs a compilation (or a cache load) per octave,
# which on a GPU takes longer than the octave's steps.

@program_cache.saved_jit(static_argnames=("jitter",))
def _random_shift(key, *, jitter):
    return jax.random.randint(key, (2,), -jitter, jitter + 1)


def reflect_pad(image, pad):
    """``jnp.pad(image, ((0, pad[0]), (0, pad[1]), (0, 0)), mode="reflect")``. A pad wider than the
    image (a 16-pixel strip padded to a 512 tile) is one gather of reflected rows or columns: jnp.pad
    reflects such a pad again and again, a chain of copies that XLA's simplifier choked on ('stuck
    in a circular simplification loop' on the log, and a minute of compilation for a thin strip)."""
    for axis, extra in enumerate(pad):
        size = image.shape[axis]
        if extra == 0:
            continue
        if extra < size:  # one reflection: jnp.pad's own
            widths = [(0, 0)] * image.ndim
            widths[axis] = (0, extra)
            image = jnp.pad(image, widths, mode="reflect")
            continue
        period = 2 * (size - 1)
        index = np.arange(size + extra) % period
        index = np.where(index < size, index, period - index)
        image = jnp.take(image, jnp.asarray(index), axis=axis)
    return image


@program_cache.saved_jit(static_argnames=("shape", "pad", "starts", "tile"))
def _cut(x, shift, *, shape, pad, starts, tile):
    """The flat point as an image rolled by ``shift``, reflect-padded by ``pad``, cut into tiles."""
    image = jnp.roll(jnp.reshape(x, shape), (shift[0], shift[1]), axis=(0, 1))
    if pad != (0, 0):
        image = reflect_pad(image, pad)
    return tuple(lax.dynamic_slice(image, (y, x0, 0), (tile, tile, shape[2])) for y, x0 in starts)


@program_cache.saved_jit(static_argnames=("shape", "pad", "starts"))
def _assemble(values, grads, shift, inverse_coverage, *, shape, pad, starts):
    """The negated mean value of the tiles (minimize minimises), and their gradients put back
    together (overlaps averaged), cropped, rolled back by ``shift``, negated and flattened."""
    height, width = shape[:2]
    grad = jnp.zeros((height + pad[0], width + pad[1], shape[2]), grads[0].dtype)
    for (y, x0), piece in zip(starts, grads):
        grad = lax.dynamic_update_slice(grad, lax.dynamic_slice(grad, (y, x0, 0), piece.shape) + piece, (y, x0, 0))
    grad = grad[:height, :width]
    if inverse_coverage is not None:
        grad = grad * inverse_coverage
    grad = jnp.roll(grad, (-shift[0], -shift[1]), axis=(0, 1))
    return -(sum(values) / len(values)), -jnp.reshape(grad, (-1,))


class Tiling:
    """How an image of a given shape is cut into tiles, and the map back."""

    def __init__(self, shape: tuple[int, int, int], tile: int):
        self.shape = tuple(int(s) for s in shape)
        self.tile = int(tile)
        height, width = self.shape[:2]
        self.pad = (max(self.tile - height, 0), max(self.tile - width, 0))
        padded = (height + self.pad[0], width + self.pad[1])
        self.starts = tuple((y, x) for y in tile_starts(padded[0], self.tile) for x in tile_starts(padded[1], self.tile))
        coverage = np.zeros(padded, dtype=np.float32)
        for y, x in self.starts:
            coverage[y : y + self.tile, x : x + self.tile] += 1.0
        self.overlapping = bool(coverage.max() > 1)
        self._inverse_coverage = jax.device_put(1.0 / coverage[:height, :width, None]) if self.overlapping else None

    def descent(self, tile_objective: TileObjective, x, shift):
        """The negated mean objective over the tiles of the flat image ``x`` rolled by ``shift``, and
        the negated, flat gradient on ``x``: the value and gradient that minimize descends (negated
        inside the compiled program, not by an extra dispatch)."""
        static = dict(shape=self.shape, pad=self.pad, starts=self.starts)
        pieces = _cut(x, shift, tile=self.tile, **static)
        values, grads = zip(*(tile_objective(piece) for piece in pieces))
        return _assemble(values, grads, shift, self._inverse_coverage, **static)

    def value_and_grad(self, tile_objective: TileObjective, image):
        """Mean objective over the tiles and the gradient on ``image`` (same shape)."""
        value, descent = self.descent(tile_objective, jnp.reshape(image, (-1,)), _NO_SHIFT)
        return -value, -jnp.reshape(descent, self.shape)


_NO_SHIFT = np.zeros(2, np.int32)


class TiledGradient(GradientEstimator):
    """Gradient of ``-objective`` (minimize minimises) on a flat image, by jittered tiles.

    ``fun`` and ``evaluate`` from the engine are not used: the estimator differentiates the
    objective it was built with, tile by tile, through its :class:`TileObjective`.

    Args:
      tile_objective: the compiled objective on one tile, shared by every octave.
      shape: the image's (height, width, 3) in this octave.
      jitter: the largest random roll, in pixels, along each axis.
    """

    name = "tiled_autodiff"
    stochastic = True  # the random roll makes each estimate random
    traceable = True   # a JAX objective: no host evaluator, x stays on the device
    uses_fun = False   # differentiates its own tile objective
    pure = True        # computes only: the engine may make the next estimate ahead

    def __init__(self, tile_objective: TileObjective, *, shape, jitter: int):
        self.tile_objective = tile_objective
        self.shape = tuple(int(s) for s in shape)
        self.jitter = int(jitter)
        self.tile = tile_objective.tile
        self._tiling = Tiling(self.shape, tile_objective.tile)

    def estimate(self, fun, x, *, key, iteration, evaluate=None, noise=0.0, scale=None, bounds=None) -> Estimate:
        value, descent = self._tiling.descent(self.tile_objective, x, _random_shift(key, jitter=self.jitter))
        return Estimate(value=value, grad=descent, nfev=1)

    def descent_value(self, x):
        """The negated objective (what minimize minimises) on the whole flat image, without jitter."""
        value, _ = self._tiling.descent(self.tile_objective, x, _NO_SHIFT)
        return value
