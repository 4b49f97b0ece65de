"""DeepDream: octaves of normalised gradient ascent on a layer objective, run by ``gd.minimize``.

For each octave, coarse to fine (each ``octave_scale`` times larger than the last): the image is the
octave's base plus the detail the previous octaves dreamed (detail reinjection), and ``steps``
iterations of ``gd.minimize`` move it, with

* ``fun``: minus the objective on the whole image,
* ``gradient``: a :class:`~gdtools.dream.tiling.TiledGradient` (random roll, fixed-shape tiles,
  the network's autodiff gradient on each),
* ``optimizer``: normalised ascent, ``x <- x + step_size * g / mean(|g|)``
  (:func:`gdtools.transforms.normalized_sgd` on ``-objective``), optionally after a Laplacian
  pyramid normalisation of ``g``,
* ``bounds``: the valid pixel range [0, 255].

A :class:`Dreamer` holds the compiled tile objective, so dreaming many images or frames with the
same objective and tile size compiles once.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gdtools.dream import efficientnet, images, weights
from gdtools import program_cache
from gdtools.dream.compilation_cache import enable_compilation_cache
from gdtools.dream.laplacian import scale_by_laplacian_pyramid
from gdtools.dream.objectives import Objective, as_objective
from gdtools.dream.tiling import TiledGradient, TileObjective
from gdtools.errors import InputError

DEFAULT_LAYER = "block8"
NORMALIZATIONS = ("mean_abs", "laplacian")
PIXEL_RANGE = (0.0, 255.0)
#: the guide image is shrunk to at most this size before its features are taken
GUIDE_MAX_SIDE = 512
#: the largest jitter: the random roll is drawn as a 32-bit integer up to jitter + 1 (a roll by more
#: than the image's side is a roll by the remainder)
MAX_JITTER = 2**31 - 2


def settings_with(settings, overrides: dict) -> "DreamSettings":
    """``settings`` (a :class:`DreamSettings`, or None for the defaults) with ``overrides``; an
    InputError names a setting that does not exist (it was Python's TypeError on a keyword, or an
    AttributeError deep inside for settings given as a dict)."""
    if settings is not None and not isinstance(settings, DreamSettings):
        raise InputError(f"settings must be a DreamSettings, got {type(settings).__name__}; give the "
                         f"settings as keywords instead (Dreamer(objective, octaves=3, ...))")
    known = {field.name for field in dataclasses.fields(DreamSettings)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise InputError(f"unknown dream setting {unknown[0]!r}; the settings are: {', '.join(sorted(known))}")
    if settings is None:
        return DreamSettings(**overrides)
    return dataclasses.replace(settings, **overrides) if overrides else settings


@dataclasses.dataclass(frozen=True)
class DreamSettings:
    """How to dream; validated when built (see :func:`dream` for the meaning of each field)."""

    octaves: int = 4
    octave_scale: float = 1.4
    steps: int = 10
    step_size: float = 1.5
    jitter: int = 32
    tile: int = 512
    normalize: str = "mean_abs"
    seed: int = 0
    depthwise: str = "auto"
    precision: str = "float32"

    def __post_init__(self):
        def positive_int(name, value, minimum=1):
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
                raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")

        positive_int("octaves", self.octaves)
        positive_int("steps", self.steps)
        positive_int("tile", self.tile, minimum=32)
        positive_int("jitter", self.jitter, minimum=0)
        if self.jitter > MAX_JITTER:  # was an OverflowError from jax.random.randint at the first step
            raise InputError(f"jitter must be at most {MAX_JITTER} pixels, got {self.jitter!r}")
        positive_int("seed", self.seed, minimum=0)  # NumPy's SeedSequence takes no negative seed
        for name in ("octave_scale", "step_size"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Real) or not np.isfinite(value) or value <= 0:
                raise InputError(f"{name} must be a positive number, got {value!r}")
        if self.octave_scale <= 1.0 and self.octaves > 1:
            raise InputError(f"octave_scale must be > 1 when octaves > 1, got {self.octave_scale!r}")
        if self.normalize not in NORMALIZATIONS:
            raise InputError(f"normalize={self.normalize!r}; choose one of {', '.join(NORMALIZATIONS)}")
        if self.depthwise not in efficientnet.DEPTHWISE_METHODS:
            raise InputError(f"depthwise={self.depthwise!r}; choose one of {', '.join(efficientnet.DEPTHWISE_METHODS)}")
        efficientnet.check_precision(self.precision)


@dataclasses.dataclass(frozen=True)
class Progress:
    """What a dream's callback is told after each step."""

    octave: int       # from 0, coarse to fine
    octaves: int
    step: int         # from 0 within the octave
    steps: int
    objective: float  # the objective's value on the (jittered) image before this step
    shape: tuple      # this octave's image shape


def octave_shapes(shape: tuple[int, int], *, octaves: int, octave_scale: float) -> list[tuple[int, int]]:
    """Image sizes from coarse to fine; the finest is ``shape``, none smaller than 16 px a side.

    An octave is the image shrunk by one factor on both sides; where that would take the shorter
    side below 16 px, the factor stops at the one that makes it 16, so the octave keeps the image's
    shape (each side clamped on its own, a 256 x 20 strip's coarse octaves were 16 x 16 squares: the
    strip squashed, dreamed stretched)."""
    height, width = shape
    largest = max(1.0, min(height, width) / images.MIN_SIDE)
    sizes = []
    for i in reversed(range(octaves)):
        try:
            factor = octave_scale**i
        except OverflowError:  # (--octave-scale 1e10 --octaves 40): so coarse that each side is the smallest
            factor = math.inf
        factor = min(factor, largest)
        sizes.append((max(images.MIN_SIDE, round(height / factor)), max(images.MIN_SIDE, round(width / factor))))
    return sizes


def _resize(image, shape):
    if tuple(shape) == image.shape[:2]:
        return image
    return jax.image.resize(image, (shape[0], shape[1], image.shape[2]), "linear")


@program_cache.saved_jit(static_argnames=("shape", "previous_shape"))
def _octave_start(base, dreamed, *, shape, previous_shape):
    """The image an octave starts from, flat: the original at this octave's ``shape``, plus the
    detail the previous octave dreamed into it (``dreamed``, flat, minus the original at
    ``previous_shape``), clipped to the pixel range. One compiled program per octave.

    Octaves run on the flat image, the vector minimize works on, so that minimize needs no program
    of its own to flatten the start and reshape the result: each distinct program costs a load
    (about 10 ms, measured on the CPU and on an H100) in every process."""
    current = _resize(base, shape)
    if dreamed is not None:
        previous = jnp.reshape(dreamed, (*previous_shape, base.shape[2]))
        current = current + _resize(previous - _resize(base, previous_shape), shape)
    return jnp.reshape(jnp.clip(current, *PIXEL_RANGE), (-1,))


@functools.lru_cache(maxsize=32)
def _ascent(shape, step_size: float, normalize: str) -> optax.GradientTransformation:
    from gdtools.transforms import normalized_sgd, plain

    ascent = normalized_sgd(step_size)
    if normalize == "laplacian":
        return plain(optax.chain(scale_by_laplacian_pyramid(shape), ascent))
    return ascent


class Dreamer:
    """An objective compiled for one tile size, ready to dream any number of images.

    Args:
      objective: an :class:`~gdtools.dream.objectives.Objective` or a layer name.
      settings: :class:`DreamSettings` (or keyword arguments for one).
      params: the network's parameters (default: the pretrained EfficientNet-Lite0).
    """

    def __init__(self, objective: Objective | str = DEFAULT_LAYER, *, settings: DreamSettings | None = None,
                 params=None, **setting_overrides):
        settings = settings_with(settings, setting_overrides)
        self.settings = settings
        self.params = params if params is not None else weights.pretrained_params()
        objective = as_objective(objective)
        objective.check(efficientnet.layer_table(self.params))
        self.objective = objective.resolve(self._guide_features)
        self.tile_objective = TileObjective(self.objective, params=self.params, tile=settings.tile,
                                            depthwise=settings.depthwise, precision=settings.precision)
        # tile objectives for images smaller than the tile, by side (see tile_objective_for): made
        # here, so that with_seed twins made before the first dream share them
        self._fitted_tiles: dict[int, TileObjective] = {}

    def _guide_features(self, layer: str, guide_image) -> np.ndarray:
        guide_image = images.check_image(guide_image, what="guide image").astype(np.float32)
        # shrunk to GUIDE_MAX_SIDE, but a long thin guide no further than its shorter side's 16 px
        # (a 2000 x 16 guide, accepted at load, went to the network 512 x 4)
        short, long = sorted(guide_image.shape[:2])
        guide_image = images.fit_max_side(guide_image, max(GUIDE_MAX_SIDE, math.ceil(images.MIN_SIDE * long / short)))
        x = efficientnet.preprocess(jnp.asarray(guide_image))[None]
        return np.asarray(efficientnet.features(self.params, x, layer=layer, depthwise=self.settings.depthwise)[0])

    def with_seed(self, seed: int) -> "Dreamer":
        """The same compiled objective with another seed (no recompilation)."""
        return self.with_settings(seed=int(seed))

    def with_settings(self, **changes) -> "Dreamer":
        """Other settings, same objective; the compiled tile objective is shared unless ``tile``,
        ``depthwise`` or ``precision`` change."""
        settings = settings_with(self.settings, changes)
        compiled = lambda s: (s.tile, s.depthwise, s.precision)  # noqa: E731
        if compiled(settings) != compiled(self.settings):
            return Dreamer(self.objective, settings=settings, params=self.params)
        twin = object.__new__(Dreamer)
        twin.__dict__.update(self.__dict__)
        twin.settings = settings
        return twin

    @staticmethod
    def describe_settings(settings: DreamSettings) -> dict:
        """The settings, the gdtools version, the network and the backend, as plain data."""
        from gdtools._version import __version__

        return {"gdtools_version": __version__, "network": "efficientnet-lite0",
                **dataclasses.asdict(settings), "backend": jax.default_backend()}

    def metadata(self) -> dict:
        """Everything needed to reproduce a dream, for the PNG metadata."""
        return {**self.describe_settings(self.settings), "objective": self.objective.describe()}

    def optimizer(self, shape) -> optax.GradientTransformation:
        """The normalised ascent for an image of ``shape``; the same object for the same settings, so
        that its compiled update is reused across octaves, images and frames."""
        return _ascent(tuple(shape) if self.settings.normalize == "laplacian" else None,
                       self.settings.step_size, self.settings.normalize)

    def tile_objective_for(self, shape) -> TileObjective:
        """The compiled tile objective for an image of ``shape``: tiles of the settings' side, or
        smaller ones for a smaller image (see :func:`fitting_tile`), compiled once per side and
        kept (shared with this Dreamer's :meth:`with_seed` twins)."""
        tile = fitting_tile(self.settings.tile, shape)
        if tile == self.settings.tile:
            return self.tile_objective
        fitted = self._fitted_tiles
        if tile not in fitted:
            fitted[tile] = TileObjective(self.objective, params=self.params, tile=tile,
                                         depthwise=self.settings.depthwise, precision=self.settings.precision)
        return fitted[tile]

    def run_octave(self, image, *, seed: int, shape=None, callback: Callable | None = None,
                   steps: int | None = None, tile_objective: TileObjective | None = None):
        """``steps`` iterations of ``gd.minimize`` on ``image``, a JAX array: an (H, W, 3) image, or
        the flat image of ``shape`` (H, W, 3). Returns the new image, in the same form.
        ``tile_objective``: the one to use (default: that of the settings' tile)."""
        import gdtools as gd

        flat = shape is not None
        shape = tuple(int(s) for s in shape) if flat else tuple(image.shape)
        estimator = TiledGradient(tile_objective or self.tile_objective, shape=shape, jitter=self.settings.jitter)
        result = gd.minimize(estimator.descent_value, image, gradient=estimator, optimizer=self.optimizer(shape),
                             bounds=PIXEL_RANGE, max_iters=steps or self.settings.steps, seed=int(seed),
                             callback=callback)
        return result.x

    def __call__(self, image, *, callback: Callable[[Progress], bool | None] | None = None) -> np.ndarray:
        """Dream ``image`` (RGB (H, W, 3) in [0, 255], or floats in [0, 1]; grayscale or RGBA is made
        RGB first, see :func:`~gdtools.dream.images.check_image`); returns the dreamed RGB image,
        same height, width and range. An image smaller than the settings' tile is dreamed in tiles of
        its own size (see :func:`fitting_tile`): the settings' tile is the largest.

        ``callback(progress)`` is called after every step with a :class:`Progress`; returning True
        stops the dream early: the full-size image plus the detail dreamed so far is returned.
        """
        array = images.check_image(image)
        unit = images.is_unit_range(array)  # dreamed on the 0..255 scale, given back in [0, 1]
        back = images.back_to_range_of(array)
        return back(self.dream_on_0_255(np.asarray(array * 255.0 if unit else array, dtype=np.float32),
                                        callback=callback))

    def dream_on_0_255(self, image: np.ndarray, *, callback: Callable[[Progress], bool | None] | None = None
                       ) -> np.ndarray:
        """As :meth:`__call__`, for a checked RGB float32 ``image`` known to be on the 0..255 scale,
        returned on it: no [0, 1] reading (:func:`~gdtools.dream.images.is_unit_range`). For the
        frames and cells that :func:`~gdtools.dream.zoom_frames` and
        :func:`~gdtools.dream.gallery` have scaled already: a nearly black picture (every value at
        most 1 of 255) was taken for a [0, 1] one there, and its dream came back divided by 255."""
        s = self.settings
        base = jax.device_put(np.asarray(image, dtype=np.float32))
        shapes = octave_shapes(base.shape[:2], octaves=s.octaves, octave_scale=s.octave_scale)
        seeds = np.random.SeedSequence(s.seed).generate_state(len(shapes))
        tile_objective = self.tile_objective_for(base.shape)
        dreamed = None
        stopped = False
        for octave, shape in enumerate(shapes):
            current = _octave_start(base, dreamed, shape=tuple(shape),
                                    previous_shape=tuple(shapes[octave - 1]) if octave else None)

            def on_step(state, octave=octave, shape=(*shape, 3)):
                nonlocal stopped
                stop = callback(Progress(octave=octave, octaves=len(shapes), step=state.iteration, steps=s.steps,
                                         objective=-float(state.fun), shape=tuple(shape)))
                stopped = stopped or bool(stop)
                return stop

            dreamed = self.run_octave(current, seed=int(seeds[octave]), shape=(*shape, base.shape[2]),
                                      callback=on_step if callback is not None else None,
                                      tile_objective=tile_objective)
            if stopped:
                if octave < len(shapes) - 1:
                    # what the finished octaves would start from: the full-size original plus the
                    # detail dreamed so far (not a blurry upsample of the coarse octave), clipped
                    dreamed = _octave_start(base, dreamed, shape=tuple(shapes[-1]), previous_shape=tuple(shape))
                break
        return np.clip(np.asarray(dreamed), *PIXEL_RANGE).reshape(base.shape)


#: Tiles are a whole number of the network's largest stride (32 pixels) on a side.
TILE_MULTIPLE = 32


def fitting_tile(tile: int, shape) -> int:
    """``tile``, or the image's longer side rounded up to a multiple of 32 when that is smaller: an
    image smaller than a tile is padded up to it, so a 256-pixel dream in 512-pixel tiles made the
    network do four times the work (3.2x the time of 256-pixel tiles on a CPU)."""
    side = max(int(shape[0]), int(shape[1]))
    return int(min(tile, max(TILE_MULTIPLE, -(-side // TILE_MULTIPLE) * TILE_MULTIPLE)))


def dream(image, objective: Objective | str = DEFAULT_LAYER, *, octaves: int = 4, octave_scale: float = 1.4,
          steps: int = 10, step_size: float = 1.5, jitter: int = 32, tile: int = 512,
          normalize: str = "mean_abs", seed: int = 0, depthwise: str = "auto", precision: str = "float32",
          params=None, callback: Callable[[Progress], bool | None] | None = None,
          compilation_cache: bool = True) -> np.ndarray:
    """Dream on ``image``: make what ``objective`` sees in it stronger.

    Args:
      image: float or uint8 RGB array (height, width, 3) with values in [0, 255], or a float array
        with values in [0, 1] (scikit-image's ``img_as_float``, Lucid's convention), whose result is
        then in [0, 1] too (see :func:`gdtools.dream.images.is_unit_range`). Grayscale (height,
        width) and arrays with alpha last (RGBA) are made RGB first (see
        :func:`gdtools.dream.images.check_image`); the result is RGB.
      objective: a layer name (``"stem"``, ``"block0"``..``"block15"``, ``"head"``; its energy is
        maximised) or an objective from :mod:`gdtools.dream.objectives`.
      octaves: number of scales, coarse to fine; each is ``octave_scale`` times the previous.
      steps: gradient steps per octave.
      step_size: mean change of a pixel value per step (on the 0..255 scale).
      jitter: largest random roll in pixels per step (hides tile seams, smooths the result).
      tile: side of the square tiles the network sees; one compilation per tile size. An image
        smaller than it gets tiles of its own longer side (rounded up to a multiple of 32) instead:
        see :func:`fitting_tile`.
      normalize: ``"mean_abs"`` (g / mean |g|) or ``"laplacian"`` (Laplacian pyramid bands, then mean |g|).
      seed: seeds the jitter (an integer >= 0); the same seed gives the same image on the same backend.
      depthwise: how depthwise convolutions are computed (``auto`` picks per backend).
      precision: the network's number format, ``float32`` or ``bfloat16`` (less memory traffic; a
        slightly different gradient, see :func:`gdtools.dream.efficientnet.check_precision`). The
        objective and the image stay float32.
      params: network parameters (default: pretrained EfficientNet-Lite0).
      callback: ``callback(progress) -> bool | None`` after every step; True stops.
      compilation_cache: use the persistent JAX compilation cache in the user's cache directory,
        so that a second run skips compilation (only if no cache directory is configured yet).

    Returns:
      the dreamed image, float32 (height, width, 3) in [0, 255] (in [0, 1] for a [0, 1] image).
    """
    if compilation_cache:
        enable_compilation_cache()
    dreamer = Dreamer(objective, params=params, octaves=octaves, octave_scale=octave_scale, steps=steps,
                      step_size=step_size, jitter=jitter, tile=tile,
                      normalize=normalize, seed=seed, depthwise=depthwise, precision=precision)
    return dreamer(image, callback=callback)
