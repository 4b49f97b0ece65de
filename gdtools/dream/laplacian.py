"""Laplacian-pyramid gradient normalisation, as an optax transformation on a flat image gradient.

The gradient is split into a Laplacian pyramid (each band the detail lost by halving the
resolution), every band is divided by its root-mean-square and the bands are added back. Low
frequencies then get as much say as high ones, which gives smoother, larger dream structures than
plain normalisation (the ``lap_normalize`` of the TensorFlow DeepDream notebook, Mordvintsev 2015).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from gdtools.errors import InputError


def laplacian_normalize(image_grad, *, levels: int = 4, eps: float = 1e-8):
    """``image_grad`` (H, W, C) with each Laplacian band scaled to unit root-mean-square."""
    bands = []
    current = image_grad
    for _ in range(levels - 1):
        height, width, channels = current.shape
        if min(height, width) < 4:
            break
        low = jax.image.resize(current, ((height + 1) // 2, (width + 1) // 2, channels), "linear")
        bands.append(current - jax.image.resize(low, current.shape, "linear"))
        current = low
    bands.append(current)
    bands = [band / (jnp.sqrt(jnp.mean(jnp.square(band))) + eps) for band in bands]
    merged = bands[-1]
    for band in reversed(bands[:-1]):
        merged = jax.image.resize(merged, band.shape, "linear") + band
    return merged


def scale_by_laplacian_pyramid(shape, *, levels: int = 4) -> optax.GradientTransformation:
    """Optax transformation: reshape the flat update to ``shape`` (H, W, C), normalise each band of
    its Laplacian pyramid (:func:`laplacian_normalize`) and flatten it again."""
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3:
        raise InputError(f"shape must be (height, width, channels), got {shape}")
    if not isinstance(levels, int) or levels < 1:
        raise InputError(f"levels must be a positive integer, got {levels!r}")

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        del params
        normalized = laplacian_normalize(jnp.reshape(updates, shape), levels=levels)
        return jnp.reshape(normalized, jnp.shape(updates)), state

    return optax.GradientTransformation(init_fn, update_fn)
