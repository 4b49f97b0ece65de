"""``classify``: what EfficientNet-Lite0 sees in an image, as ImageNet classes with probabilities."""

from __future__ import annotations

import functools
import numbers
from importlib import resources

import jax
import jax.numpy as jnp
import numpy as np

from gdtools.dream import efficientnet, images, weights
from gdtools.errors import InputError

#: the network was trained on 224 x 224 images
INPUT_SIDE = 224


@functools.lru_cache(maxsize=1)
def class_names() -> tuple[str, ...]:
    """The 1000 ImageNet class names, in the classifier's order (index 281 is "tabby cat")."""
    text = resources.files("gdtools.dream").joinpath("imagenet_classes.txt").read_text(encoding="utf-8")
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(names) != 1000:
        raise RuntimeError(f"imagenet_classes.txt holds {len(names)} names, expected 1000")
    return names


@functools.partial(jax.jit, static_argnames=("depthwise",))
def _probabilities(params, image, *, depthwise):
    scores = efficientnet.logits(params, efficientnet.preprocess(image)[None], depthwise=depthwise)
    return jax.nn.softmax(scores[0])


def classify(image, *, top: int = 5, params=None, depthwise: str = "auto") -> list[tuple[int, str, float]]:
    """The ``top`` most likely ImageNet classes of ``image``.

    Args:
      image: an RGB array (height, width, 3) with values in [0, 255], a float array with values in
        [0, 1] (as :func:`gdtools.dream.dream` takes), or a path to an image file (str, bytes or
        path-like).
      top: how many classes to return (1..1000).

    Returns:
      ``[(class index, name, probability), ...]``, most likely first.
    """
    if not isinstance(top, numbers.Integral) or isinstance(top, (bool, np.bool_)) or not 1 <= top <= 1000:
        raise InputError(f"top must be an integer from 1 to 1000, got {top!r}")
    top = int(top)
    if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__"):
        image = images.as_read(images.load_image(image))
    array = images.on_0_255(images.check_image(image))
    if array.shape[:2] != (INPUT_SIDE, INPUT_SIDE):
        array = images.resize(array, (INPUT_SIDE, INPUT_SIDE))
    params = params if params is not None else weights.pretrained_params()
    probabilities = np.asarray(_probabilities(params, jnp.asarray(array),
                                              depthwise=efficientnet.resolve_depthwise(depthwise)))
    order = np.argsort(-probabilities)[:top]
    names = class_names()
    return [(int(i), names[i], float(probabilities[i])) for i in order]
