"""Where a dream is written: checks made before the dream runs (a dream takes minutes; a path
that cannot be written should not be found out afterwards). Its files are written whole or not at
all (output_path.written_whole)."""

from __future__ import annotations

import io
import os

from gdtools.errors import InputError
from gdtools.output_path import check_output_file, check_writable_folder


def check_image_file(flag: str, path: str | os.PathLike) -> None:
    """An image file can be written at ``path``: its folder exists, is a folder and takes a new
    file, and ``path`` is not a folder. ``flag`` names the option that gave it, for the message."""
    path = os.fsdecode(path)
    check_output_file(flag, path)
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise InputError(f"{flag} {path!r}: the file exists and is not writable")


def check_image_format(flag: str, path: str | os.PathLike) -> None:
    """Pillow can write an RGB image in the format of ``path``'s extension: it knows the extension
    and has a writer for that format that takes RGB (it reads PSD but never writes it; XBM is black
    and white only). Tried on a small image in memory."""
    from PIL import Image

    path = os.fsdecode(path)
    image_format = Image.registered_extensions().get(os.path.splitext(path)[1].lower())
    if image_format is None:
        raise InputError(f"cannot tell the image format of {flag} {path!r} from its extension; "
                         "use .png (keeps the parameters) or .jpg")
    try:
        Image.new("RGB", (16, 16)).save(io.BytesIO(), format=image_format)
    except (KeyError, OSError, ValueError) as exc:
        raise InputError(f"cannot write {flag} {path!r} as {image_format}: "
                         f"{'Pillow has no writer for it' if isinstance(exc, KeyError) else exc}; "
                         "use .png (keeps the parameters) or .jpg") from None


def check_folder(flag: str, path: str | os.PathLike) -> None:
    """A folder at ``path`` exists or can be made, and takes new files; nothing is created."""
    path = os.fsdecode(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise InputError(f"{flag} {path!r} is an existing file, not a folder; give a folder for the frames")
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise InputError(f"{flag} {path!r}: {existing!r} is a file, not a folder")
    check_writable_folder(flag, path, existing)
