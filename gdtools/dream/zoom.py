"""Zoom frames: each frame dreams on a slightly zoomed-in copy of the previous one."""

from __future__ import annotations

import numbers
import os
import re
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
from PIL import Image

from gdtools.dream.deepdream import Dreamer, DreamSettings, Progress
from gdtools.dream.images import _as_path, back_to_range_of, check_image, displayable, on_0_255, resize
from gdtools.errors import InputError
from gdtools.output_path import written_whole

#: how much each frame zooms into the previous one
DEFAULT_ZOOM = 1.05


def zoom_in(image: np.ndarray, factor: float) -> np.ndarray:
    """The central 1/``factor`` of ``image`` scaled back up to the full size."""
    height, width = image.shape[:2]
    crop_h, crop_w = max(1, round(height / factor)), max(1, round(width / factor))
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    return resize(image[top : top + crop_h, left : left + crop_w], (height, width))


def check_zoom(*, frames, zoom, flags: tuple[str, str] = ("frames", "zoom")) -> None:
    """Raise :class:`InputError` unless ``frames`` is a positive integer and ``zoom`` a number from
    1 to 2; ``flags`` name them in the message."""
    if not isinstance(frames, numbers.Integral) or isinstance(frames, (bool, np.bool_)) or frames < 1:
        raise InputError(f"{flags[0]} must be a positive integer, got {frames!r}")
    if not isinstance(zoom, numbers.Real) or isinstance(zoom, (bool, np.bool_)) or not 1.0 <= zoom <= 2.0:
        raise InputError(f"{flags[1]} must be a number from 1 to 2, got {zoom!r}")


def zoom_frames(image, objective="block8", *, frames: int = 60, zoom: float = DEFAULT_ZOOM,
                settings: DreamSettings | None = None, params=None,
                callback: Callable[[int, Progress], bool | None] | None = None,
                **setting_overrides) -> Iterator[np.ndarray]:
    """Yield ``frames`` dreamed frames, float RGB in the image's range ([0, 255], or [0, 1] for a
    float ``image`` in [0, 1], as :func:`~gdtools.dream.dream` gives back); frame k+1 dreams on
    frame k zoomed by ``zoom``.

    Every frame has the image's shape, so the network compiles once for the whole sequence. Each
    frame uses its own seed (``settings.seed + k``). ``callback(frame, progress)`` after every step;
    returning True stops: the frame being dreamed is yielded with what it has, and it is the last.
    """
    # checked at the call, not at the first frame asked for (a generator's body waits for that)
    check_zoom(frames=frames, zoom=zoom)
    dreamer = Dreamer(objective, settings=settings, params=params, **setting_overrides)
    image = check_image(image)
    return _frames(dreamer, image, frames=int(frames), zoom=float(zoom), callback=callback)


def _frames(dreamer: Dreamer, image: np.ndarray, *, frames: int, zoom: float, callback) -> Iterator[np.ndarray]:
    """:func:`zoom_frames`' frames, its inputs checked."""
    base_seed = dreamer.settings.seed
    back = back_to_range_of(image)
    current = on_0_255(image)
    for k in range(frames):
        if k > 0:
            current = zoom_in(current, zoom)
        frame_dreamer = dreamer.with_seed(base_seed + k)
        stopped = False

        def hook(progress, k=k):
            nonlocal stopped
            stopped = stopped or bool(callback(k, progress))
            return stopped

        current = frame_dreamer.dream_on_0_255(current, callback=None if callback is None else hook)
        yield back(current)
        if stopped:
            return


def frame_file(folder: str | os.PathLike, k: int) -> Path:
    """Where frame ``k`` of a zoom run is written in ``folder``."""
    return Path(folder) / f"frame_{k:04d}.png"


#: the name of a frame file (:func:`frame_file`), its number in the group
FRAME_NAME = r"frame_(\d{4,})\.png"
#: the name of the GIF a zoom run writes beside its frames
GIF_NAME = "zoom.gif"


def is_written_by_zoom(folder: str | os.PathLike, path: str | os.PathLike) -> bool:
    """Whether a zoom run into ``folder`` may write over or delete ``path``: a frame file (a stale
    one is deleted, see :func:`remove_stale_frames`) or the GIF in that folder."""
    path = Path(path).resolve()
    return path.parent == Path(folder).resolve() and (path.name == GIF_NAME
                                                      or re.fullmatch(FRAME_NAME, path.name) is not None)


def remove_stale_frames(folder: str | os.PathLike, *, keep: int) -> int:
    """Delete the frame files numbered ``keep`` and up in ``folder``: left by an earlier, longer run,
    they would pass for frames of this one. Returns how many were deleted."""
    removed = 0
    for path in Path(folder).iterdir():
        match = re.fullmatch(FRAME_NAME, path.name)
        if match and int(match.group(1)) >= keep and path.is_file():
            path.unlink()
            removed += 1
    return removed


def save_gif(path: str | os.PathLike, frames: Sequence[np.ndarray], *, frame_ms: int = 80) -> None:
    """Write ``frames`` (RGB: uint8, floats in [0, 255] or floats in [0, 1]) as a looping animated GIF
    (a GIF whatever ``path``'s extension)."""
    path = _as_path(path)  # (None, a number: an InputError, not Pillow's AttributeError after the frames)
    pictures = []
    for frame in frames:  # (a loop: a comprehension's frame would take the warnings' blame)
        pictures.append(Image.fromarray(displayable(frame)))
    if not pictures:
        raise InputError("save_gif needs at least one frame")
    for k, picture in enumerate(pictures):  # a GIF has one size: Pillow cropped the others to the first's
        if picture.size != pictures[0].size:
            raise InputError(f"a GIF's frames have one size: frame {k} is {picture.width}x{picture.height} "
                             f"pixels, frame 0 {pictures[0].width}x{pictures[0].height}")
    try:
        with written_whole(path) as partial:
            pictures[0].save(partial, save_all=True, append_images=pictures[1:], duration=frame_ms, loop=0,
                             optimize=True, format="GIF")
    except OSError as exc:
        raise InputError(f"cannot write {os.fsdecode(path)!r}: {exc.strerror or exc}") from None
