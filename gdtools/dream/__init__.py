"""DeepDream on a pretrained EfficientNet-Lite0 in JAX, built from gdtools' own parts.

>>> import gdtools as gd                                            # doctest: +SKIP
>>> from skimage import data                                        # doctest: +SKIP
>>> out = gd.dream.dream(data.chelsea(), "block8", tile=256)        # doctest: +SKIP
>>> gd.dream.classify(data.coffee(), top=1)[0][1]                   # doctest: +SKIP
'espresso'
"""

from gdtools.dream.classification import class_names, classify
from gdtools.dream.deepdream import DEFAULT_LAYER, Dreamer, DreamSettings, Progress, dream
from gdtools.dream.efficientnet import LayerInfo
from gdtools.dream.layer_gallery import gallery
from gdtools.dream.images import load_image, read_metadata, save_image
from gdtools.dream.objectives import Objective, channels, guide, layer
from gdtools.dream.zoom import save_gif, zoom_frames


def layers() -> list[LayerInfo]:
    """The layers one can dream on, with their channels and stride (``stem``, ``block0``..``block15``, ``head``)."""
    from gdtools.dream import efficientnet, weights

    return efficientnet.layer_table(weights.pretrained_params())


__all__ = [
    "DEFAULT_LAYER",
    "Dreamer",
    "DreamSettings",
    "LayerInfo",
    "Objective",
    "Progress",
    "channels",
    "class_names",
    "classify",
    "dream",
    "gallery",
    "guide",
    "layer",
    "layers",
    "load_image",
    "read_metadata",
    "save_gif",
    "save_image",
    "zoom_frames",
]
