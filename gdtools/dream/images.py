"""Images in and out of the dream: load (any mode Pillow reads), resize, save with metadata.

Inside gdtools an image is a float32 array (height, width, 3) of RGB values in [0, 255].
"""

from __future__ import annotations

import io
import json
import numbers
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, JpegImagePlugin, PngImagePlugin

from gdtools.errors import InputError
from gdtools.output_path import written_whole

#: images smaller than this on either side are refused: the network sees nothing in them
MIN_SIDE = 16
#: the metadata key under which the dream's parameters are stored in a PNG
METADATA_KEY = "gdtools"
#: modes Pillow resizes directly (others are converted to float first)
_RESIZABLE_MODES = ("RGB", "RGBA", "L", "LA", "RGBX")


def to_rgb_array(picture: Image.Image) -> np.ndarray:
    """A Pillow image of any mode as float32 RGB in [0, 255] (16-bit scaled down, 32-bit float in
    [0, 1] scaled up, alpha over white)."""
    mode = picture.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        values = np.asarray(picture, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        gray = np.clip(values / top * 255.0, 0, 255)
        return np.repeat(gray[..., None], 3, axis=-1).astype(np.float32)
    if mode == "F":  # 32-bit float: in [0, 1] (img_as_float saved as TIFF) it is scaled up, as an array is
        values = np.asarray(picture, dtype=np.float64)
        gray = np.clip(values * 255.0 if values.max(initial=0) <= 1.0 else values, 0, 255)
        return np.repeat(gray[..., None], 3, axis=-1).astype(np.float32)
    if _has_alpha(picture):
        rgba = np.asarray(_in_srgb(picture.convert("RGBA"), picture.info.get("icc_profile")), dtype=np.float32)
        alpha = rgba[..., 3:] / 255.0
        return (rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.float32)
    return np.asarray(_in_srgb(picture.convert("RGB"), picture.info.get("icc_profile")), dtype=np.float32)


def _has_alpha(picture: Image.Image) -> bool:
    """Whether ``picture`` has transparency (an alpha channel, or a palette's transparent entry)."""
    return picture.mode in ("RGBA", "LA", "PA") or (picture.mode == "P" and "transparency" in picture.info)


def _in_srgb(picture: Image.Image, profile: bytes | None) -> Image.Image:
    """An RGB or RGBA ``picture`` whose file embeds the ICC ``profile`` (a phone's Display P3, a
    camera's Adobe RGB), converted to sRGB: the colours every viewer shows, and what the network
    was trained on. Read as stored, such a photo was dreamed and written with shifted colours. A
    profile that cannot be used here (broken, or not an RGB one: a gray or CMYK profile) leaves the
    pixels as stored, as a viewer does."""
    if not profile:
        return picture
    from PIL import ImageCms

    try:
        return ImageCms.profileToProfile(picture, ImageCms.ImageCmsProfile(io.BytesIO(profile)),
                                         ImageCms.createProfile("sRGB"), outputMode=picture.mode)
    except (OSError, ImageCms.PyCMSError):
        return picture


def load_image(path: str | bytes | os.PathLike, *, max_side: int | None = None, what: str = "image") -> np.ndarray:
    """Read an image file as float32 RGB (height, width, 3) in [0, 255].

    Grayscale, palette, RGBA (composited over white) and 16-bit images are converted, and an EXIF
    Orientation tag (a camera's portrait photo) and an embedded ICC colour profile (converted to
    sRGB) are applied. With
    ``max_side`` the image is shrunk (never enlarged) so that its longer side is at most that.
    ``what`` names it in the messages ("guide image").

    Raises:
      InputError: the file is missing, is not an image Pillow can decode, is truncated, or is
        smaller than :data:`MIN_SIDE` pixels on a side.
    """
    if max_side is not None and (not isinstance(max_side, numbers.Integral) or isinstance(max_side, (bool, np.bool_))
                                 or max_side < MIN_SIDE):
        raise InputError(f"max_side must be an integer >= {MIN_SIDE}, got {max_side!r}")
    max_side = None if max_side is None else int(max_side)
    path = _as_path(path)
    if not path.is_file():
        raise InputError(f"{what} {str(path)!r} does not exist or is not a file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with _open(path, max_side) as picture:
                # (width, height) as the file stores it (before a draft() in _open)
                stored = getattr(picture, "_gdtools_stored_size", picture.size)
                if max_side is not None and max(picture.size) > max_side:
                    # draft() lets JPEG decode at a fraction of its size (down to 1/8 a side): a
                    # 20,000 px JPEG never has to exist in memory at full size (other formats do)
                    picture.draft("RGB", _fitted(picture.size[::-1], max_side)[::-1])
                picture.load()
                # a camera's EXIF Orientation says how to turn the stored pixels upright
                if picture.getexif().get(ExifTags.Base.Orientation) in (5, 6, 7, 8):  # a quarter turn
                    stored = stored[::-1]  # the messages name the size the picture is seen at
                ImageOps.exif_transpose(picture, in_place=True)  # no copy when there is no tag
                if (max_side is not None and max(picture.size) > max_side
                        and picture.mode in ("P", "PA", "1", "CMYK", "YCbCr", "LAB", "HSV")):
                    # made 8-bit RGB(A) as to_rgb_array would, so that they shrink in 8-bit too (a
                    # palette PNG was converted to float32 at full size: 12 bytes a pixel)
                    picture = picture.convert("RGBA" if _has_alpha(picture) else "RGB")
                if max_side is not None and max(picture.size) > max_side and picture.mode in _RESIZABLE_MODES:
                    # shrink in 8-bit before the float conversion, which would be 4x the size
                    picture = picture.resize(_fitted(picture.size[::-1], max_side)[::-1], Image.LANCZOS)
                array = to_rgb_array(picture)
    except Image.DecompressionBombError as exc:
        raise InputError(f"{what} {str(path)!r} is too large to decode safely ({exc}); shrink it first") from None
    except (OSError, SyntaxError, ValueError, Image.UnidentifiedImageError) as exc:
        raise InputError(f"cannot read {what} {str(path)!r}: {exc}") from None
    if min(stored) < MIN_SIDE:
        raise InputError(
            f"{what} {str(path)!r} is {stored[0]}x{stored[1]} pixels; DeepDream needs at least {MIN_SIDE} on each side"
        )
    height, width = array.shape[:2]
    if max_side is not None and max(height, width) > max_side:
        array = resize(array, _fitted((height, width), max_side))
    if min(array.shape[:2]) < MIN_SIDE:  # long and thin, shrunk by max_side
        needed = next(m for m in range(max_side, max(stored) + 1) if min(_fitted(stored, m)) >= MIN_SIDE)
        raise InputError(
            f"{what} {str(path)!r} is {stored[0]}x{stored[1]} pixels, {array.shape[1]}x{array.shape[0]} once "
            f"shrunk to a longer side of max_side={max_side} (--max-side); DeepDream needs at least "
            f"{MIN_SIDE} on each side: a max_side of {needed} or more keeps it")
    return array


def _as_path(path) -> Path:
    """``path`` (str, bytes or path-like) as a Path, or :class:`InputError` for anything else."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise InputError(f"an image file is named by a path, got {type(path).__name__}")
    return Path(os.fsdecode(path))


def _open(path: Path, max_side: int | None) -> Image.Image:
    """``Image.open(path)``; but a JPEG too large for Pillow's decompression-bomb check is opened
    anyway when ``max_side`` lets draft() decode it at a fraction of its size, and that fraction
    passes the check (the check is then on what is actually decoded)."""
    try:
        return Image.open(path)
    except Image.DecompressionBombError:
        if max_side is None:
            raise
        try:
            picture = JpegImagePlugin.JpegImageFile(path)  # no check on the full size
        except (OSError, SyntaxError):
            raise Image.DecompressionBombError(f"{path} is too large and not a JPEG") from None
        stored = picture.size
        picture.draft("RGB", _fitted(picture.size[::-1], max_side)[::-1])
        picture._gdtools_stored_size = stored  # the file's own size, for load_image's messages
        width, height = picture.size
        if Image.MAX_IMAGE_PIXELS is not None and width * height > 2 * Image.MAX_IMAGE_PIXELS:
            picture.close()
            raise Image.DecompressionBombError(f"even decoded at 1/8 a side it is {width}x{height} pixels, "
                                               f"over the limit of {2 * Image.MAX_IMAGE_PIXELS}") from None
        return picture


def _fitted(shape: tuple[int, int], max_side: int) -> tuple[int, int]:
    height, width = shape
    scale = max_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize float RGB ``image`` to ``shape`` (height, width) with a Lanczos filter, per channel."""
    height, width = shape
    channels = [
        np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c], dtype=np.float32), mode="F").resize(
            (width, height), Image.LANCZOS))
        for c in range(image.shape[-1])
    ]
    return np.clip(np.stack(channels, axis=-1), 0, 255).astype(np.float32)


def fit_max_side(image: np.ndarray, max_side: int) -> np.ndarray:
    """``image`` shrunk so that its longer side is at most ``max_side`` (unchanged if it already is)."""
    if max(image.shape[:2]) <= max_side:
        return image
    return resize(image, _fitted(image.shape[:2], max_side))


def is_unit_range(image) -> bool:
    """Whether ``image`` is a float image in [0, 1] (scikit-image's and Lucid's convention) rather
    than on the 0..255 scale: every value at most 1. (A float image on the 0..255 scale that dark,
    all its values at most 1 of 255, would be taken for a [0, 1] one.)"""
    array = np.asarray(image)
    return bool(np.issubdtype(array.dtype, np.floating) and array.size and array.max() <= 1.0)


#: A float image whose largest value lies above 1 and at most this is read on the 0..255 scale
#: (nearly black) with a warning: more likely a [0, 1] image pushed a little over 1.
OVERSHOOT = 2.0


def check_image(image, *, what: str = "image") -> np.ndarray:
    """``image`` as an RGB array (height, width, 3), or :class:`InputError` unless it is an image at
    least :data:`MIN_SIDE` pixels on a side, finite, with values in [0, 255] (or floats in [0, 1]).

    Besides RGB, an image may be grayscale ((height, width) or (height, width, 1): its value is
    copied to the three channels) or carry an alpha channel last ((height, width, 2) gray + alpha,
    (height, width, 4) RGBA: composited over white, as a file with transparency is read); the
    array returned is RGB on the same scale. A Pillow image of any mode is converted as a file is
    read (:func:`to_rgb_array`). ``what`` names it in the messages ("guide image")."""
    if isinstance(image, Image.Image):  # np.asarray gave a palette image's indices, dreamed as gray
        image = as_read(to_rgb_array(image))  # on the 0..255 scale, however dark
    if isinstance(image, (str, bytes, os.PathLike)):  # np.asarray made it a 0-d array: "got shape ()"
        raise InputError(f"{what} must be an image array, got the path {os.fsdecode(image)!r}; "
                         f"read the file with gdtools.dream.load_image first")
    array = np.asarray(image)
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        # (an object array failed in np.isfinite; a boolean one was read as 0 and 1 of 255, black)
        raise InputError(f"{what} must hold numbers (integers 0..255 or floats in [0, 1]), got "
                         f"{array.dtype} values")
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 2, 3, 4):
        raise InputError(f"{what} must be an RGB array (height, width, 3), grayscale (height, width) or with "
                         f"alpha (height, width, 4), got shape {np.shape(image)}")
    if min(array.shape[:2]) < MIN_SIDE:
        raise InputError(f"{what} is {array.shape[1]}x{array.shape[0]} pixels; DeepDream needs at least "
                         f"{MIN_SIDE} on each side")
    if not np.all(np.isfinite(array)):
        raise InputError(f"{what} contains non-finite values")
    low, high = float(array.min()), float(array.max())
    if low < 0 or high > 255:
        raise InputError(f"{what} values lie in [{low:g}, {high:g}]; give RGB values in [0, 255] "
                         f"(or floats in [0, 1])")
    _warn_of_overshoot(array, f"{what} holds", "read", stacklevel=4)
    return _as_rgb(array)


def _warn_of_overshoot(array: np.ndarray, what: str, done: str, *, stacklevel: int) -> None:
    """Warn where ``array`` holds floats a little over 1 (at most :data:`OVERSHOOT`): a [0, 1] image
    a little over 1 (a brightened one) is taken for a 0..255 one, nearly black."""
    if np.issubdtype(array.dtype, np.floating) and array.size and 1.0 < (high := float(array.max())) <= OVERSHOOT:
        warnings.warn(f"{what} floats in [{float(array.min()):g}, {high:g}]: {done} on the 0..255 scale (nearly "
                      f"black), as only floats all at most 1 are a [0, 1] image; for a [0, 1] image, clip it "
                      f"first (np.clip(image, 0, 1))", UserWarning, stacklevel=stacklevel)


def _as_rgb(array: np.ndarray) -> np.ndarray:
    """A checked (height, width, 1 to 4) image as RGB on its own scale: gray copied to three
    channels, a last alpha channel composited over white (1.0 for a [0, 1] float image, else 255)."""
    channels = array.shape[-1]
    if channels == 3:
        return array
    if channels in (2, 4):
        white = 1.0 if is_unit_range(array) else 255.0
        alpha = array[..., -1:].astype(np.float32) / np.float32(white)
        colour = array[..., :-1].astype(np.float32) * alpha + np.float32(white) * (1.0 - alpha)
        array = colour.astype(np.float32) if np.issubdtype(array.dtype, np.floating) \
            else np.rint(colour).astype(array.dtype)
    return np.repeat(array, 3, axis=-1) if array.shape[-1] == 1 else array


def as_read(image) -> np.ndarray:
    """An image read from a file (on the 0..255 scale), safe from the [0, 1] reading of
    :func:`is_unit_range`: one that dark (every value at most 1 of 255) comes back as uint8."""
    return to_uint8(image) if is_unit_range(image) else image


def on_0_255(image) -> np.ndarray:
    """``image`` as float32 on the 0..255 scale (a [0, 1] float image is scaled up)."""
    array = np.asarray(image, dtype=np.float32)
    return array * np.float32(255.0) if is_unit_range(image) else array


def back_to_range_of(image):
    """The map from a result on the 0..255 scale back to ``image``'s range: divided by 255 for a
    [0, 1] float image (:func:`is_unit_range`), unchanged otherwise."""
    if is_unit_range(image):
        return lambda result: result / np.float32(255.0)
    return lambda result: result


def to_uint8(image) -> np.ndarray:
    return np.clip(np.rint(np.asarray(image, dtype=np.float32)), 0, 255).astype(np.uint8)


#: zlib level of the PNGs written: 1 (fastest) instead of Pillow's 6. A 1024 x 1024 dream took
#: 0.27 s to write at level 6 on the H100 machine (8% of a warm `gdtools dream`). Here, a 1024 x
#: 1024 dream (of scikit-image's astronaut) took 0.23 s at level 6 and 0.16 s at level 1, for a
#: file 9% larger (2.22 against 2.04 MB); the photo itself 0.45 and 0.11 s.
PNG_COMPRESS_LEVEL = 1


#: An image to write may lie beyond its scale ([0, 255], or [0, 1] for floats all at most 1) by this
#: fraction of it, clipped: a resampling filter's ringing (Lanczos, bicubic) overshoots an edge by
#: about a tenth. Further out it is on neither scale ([-1, 1], 16 bits), and clipped it would be
#: written as black and white.
RINGING = 0.25


def displayable(image) -> np.ndarray:
    """``image`` (RGB (height, width, 3): uint8, floats in [0, 255], or floats in [0, 1] as
    :func:`~gdtools.dream.dream` gives back for such an input) as uint8 for a file."""
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise InputError(f"an image to write must be an RGB array (height, width, 3), got shape {array.shape}")
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise InputError(f"an image to write must hold numbers, got {array.dtype} values")
    if not np.all(np.isfinite(array)):  # (nan was written as black, with only NumPy's RuntimeWarning)
        raise InputError(f"an image to write holds {int(np.sum(~np.isfinite(array)))} non-finite values "
                         f"(nan or inf)")
    top = 1.0 if is_unit_range(array) else 255.0
    if array.size and (array.min() < -RINGING * top or array.max() > (1 + RINGING) * top):
        raise InputError(f"an image to write holds values in [{float(array.min()):g}, {float(array.max()):g}], "
                         f"too far beyond [0, {top:g}] to clip (they would be written as black and white); "
                         f"give RGB values in [0, 255] (or floats in [0, 1])")
    _warn_of_overshoot(array, "an image to write holds", "written", stacklevel=4)
    return to_uint8(on_0_255(array))


def _json_value(value):
    """NumPy scalars and arrays in metadata, as JSON numbers and lists."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def save_image(path: str | os.PathLike, image, *, metadata: dict | None = None) -> Path:
    """Write ``image``, RGB (height, width, 3): uint8, floats in [0, 255], or floats in [0, 1]
    (scaled up, the [0, 1] reading of :func:`is_unit_range`); a PNG carries ``metadata`` as JSON.

    The metadata is stored under the key :data:`METADATA_KEY` and the version under ``Software``;
    :func:`read_metadata` reads it back.

    Raises:
      InputError: not an RGB array, values too far beyond its scale to clip (:data:`RINGING`),
        metadata that is not JSON data, the format is unknown or the
        file cannot be written (no such folder, no permission, a full disk).
    """
    path = _as_path(path)
    picture = Image.fromarray(displayable(image), mode="RGB")
    try:
        if Image.registered_extensions().get(path.suffix.lower()) == "PNG":  # .png, and .apng
            info = PngImagePlugin.PngInfo()
            from gdtools._version import __version__

            info.add_text("Software", f"gdtools {__version__}")
            if metadata is not None:
                try:
                    text = json.dumps(metadata, sort_keys=True, default=_json_value)
                except (TypeError, ValueError) as exc:
                    raise InputError(f"the metadata for {str(path)!r} is not JSON data: {exc}") from None
                info.add_text(METADATA_KEY, text)
            with written_whole(path) as partial:
                picture.save(partial, format="PNG", pnginfo=info, compress_level=PNG_COMPRESS_LEVEL)
        else:
            image_format = Image.registered_extensions().get(path.suffix.lower())
            if image_format is None:
                raise ValueError(f"unknown file extension: {path.suffix!r}")
            with written_whole(path) as partial:
                picture.save(partial, format=image_format)
    except InputError:  # the metadata's own message (an InputError is a ValueError, not a format's)
        raise
    except (KeyError, ValueError) as exc:
        raise InputError(f"cannot write {str(path)!r}: unknown image format ({exc})") from None
    except OSError as exc:
        raise InputError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None
    return path


def read_metadata(path: str | os.PathLike) -> dict:
    """The parameters a PNG written by :func:`save_image` carries (empty dict if none)."""
    path = _as_path(path)
    try:
        with Image.open(path) as picture:
            text = picture.text.get(METADATA_KEY) if hasattr(picture, "text") else None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"cannot read image {str(path)!r}: {exc}") from None
    if not text:
        return {}
    try:
        metadata = json.loads(text)
    except ValueError:
        metadata = None
    if not isinstance(metadata, dict):
        # another program's text under our key, or one edited by hand
        raise InputError(f"image {str(path)!r} has a {METADATA_KEY!r} text entry that is not gdtools' "
                         f"parameters (not a JSON object): {text[:60]!r}")
    return metadata
