"""A layer gallery: the same image dreamed at a range of depths, in one labelled grid.

Low layers paint strokes and textures, middle layers patterns and eye-like shapes, high layers
subtler, finer fur-like textures: the picture that shows what each depth of the network sees.
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from gdtools.dream import efficientnet, weights
from gdtools.dream.deepdream import Dreamer, DreamSettings, Progress
from gdtools.dream.images import back_to_range_of, check_image, on_0_255, to_uint8
from gdtools.dream.objectives import as_objective
from gdtools.errors import InputError

#: from low to high; stride 2, 4, 8, 16, 16, 32, 32
GALLERY_LAYERS = ("stem", "block2", "block4", "block6", "block9", "block12", "block15")


def labelled_grid(cells: Sequence[np.ndarray], labels: Sequence[str], *, columns: int | None = None) -> np.ndarray:
    """Tile equally sized RGB images into a grid with a caption strip under each."""
    if not cells or len(cells) != len(labels):
        raise InputError("labelled_grid needs as many labels as images, and at least one image")
    _check_columns(columns)
    height, width = cells[0].shape[:2]
    columns = columns or math.ceil(math.sqrt(len(cells)))
    rows = math.ceil(len(cells) / columns)
    font = ImageFont.load_default(size=max(12, height // 16))
    widest = max(font.getlength(label) for label in labels)
    if widest > 0.95 * width:  # smaller, so that no caption runs under the neighbouring cells
        font = ImageFont.load_default(size=max(1, int(font.size * 0.95 * width / widest)))
    caption = int(font.size * 1.6)
    sheet = Image.new("RGB", (columns * width, rows * (height + caption)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (cell, label) in enumerate(zip(cells, labels)):
        top, left = (i // columns) * (height + caption), (i % columns) * width
        sheet.paste(Image.fromarray(to_uint8(cell)), (left, top))
        draw.text((left + width // 2, top + height + caption // 2), label, fill="black", font=font, anchor="mm")
    return np.asarray(sheet, dtype=np.float32)


def _check_columns(columns) -> None:
    if columns is not None and (not isinstance(columns, numbers.Integral) or isinstance(columns, bool)
                                or columns < 1):
        raise InputError(f"columns must be a positive integer, got {columns!r}")


def check_layers(layers: Sequence[str], params) -> None:
    """Raise :class:`InputError` unless ``layers`` is a non-empty list of the network's layer names,
    all of them checked before any is dreamed (a typo in the last must not wait for the others)."""
    if isinstance(layers, str) or not layers:
        raise InputError(f"layers must be a non-empty list of layer names, got {layers!r}")
    table = efficientnet.layer_table(params)
    for name in layers:
        if not isinstance(name, str):  # an Objective would be dreamed, then fail as a caption
            raise InputError(f"a gallery's layers are layer names such as 'block4', got {name!r}")
        as_objective(name).check(table)
    repeated = [name for i, name in enumerate(layers) if name in list(layers)[:i]]
    if repeated:  # the same dream twice (same seed), and an interrupted run's record lost track of which
        raise InputError(f"a gallery's layers name {repeated[0]!r} more than once: {', '.join(layers)}")


def gallery(image, *, layers: Sequence[str] = GALLERY_LAYERS, columns: int | None = None,
            settings: DreamSettings | None = None, params=None,
            callback: Callable[[str, Progress], bool | None] | None = None, **setting_overrides) -> np.ndarray:
    """Dream ``image`` once per layer and return the labelled grid (input first) as float RGB in
    the image's range ([0, 255], or [0, 1] for a float ``image`` in [0, 1], as
    :func:`~gdtools.dream.dream` gives back).

    ``callback(layer, progress)`` is called after every step of every dream; returning True stops
    the gallery: the layer being dreamed keeps what it has (see :class:`~gdtools.dream.Dreamer`;
    labelled "(partly)" unless its last step was done) and the grid holds the layers dreamed so far.
    """
    params = params if params is not None else weights.pretrained_params()
    check_layers(layers, params)
    _check_columns(columns)
    image = check_image(image)
    back = back_to_range_of(image)
    image = on_0_255(image)
    cells, labels = [image], ["input"]
    stopped, last = False, None

    def hook(name, progress):
        nonlocal stopped, last
        stopped, last = stopped or bool(callback(name, progress)), progress
        return stopped

    for name in layers:
        dreamer = Dreamer(name, settings=settings, params=params, **setting_overrides)
        cells.append(dreamer.dream_on_0_255(image, callback=None if callback is None
                                            else functools.partial(hook, name)))
        finished = last is None or (last.octave + 1 == last.octaves and last.step + 1 == last.steps)
        labels.append(name if not stopped or finished else f"{name} (partly)")
        if stopped:
            break
    return back(labelled_grid(cells, labels, columns=columns))
