"""Checks of where a dream will be written, made before the dream runs (a dream takes minutes; a
path that cannot be written should not be found out afterwards)."""

from __future__ import annotations

import os
import tempfile

from gdtools.errors import InputError
from gdtools.output_path import check_output_file


def check_image_file(flag: str, path: str | os.PathLike) -> None:
    """An image file can be written at ``path``: its folder exists, is a folder and takes a new
    file, and ``path`` is not a folder. ``flag`` names the option that gave it, for the message."""
    path = os.fsdecode(path)
    check_output_file(flag, path)
    folder = os.path.dirname(os.path.abspath(path))
    _check_writable_folder(flag, path, folder)
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise InputError(f"{flag} {path!r}: the file exists and is not writable")


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
    _check_writable_folder(flag, path, existing)


def _check_writable_folder(flag: str, path: str, folder: str) -> None:
    # os.access says yes to root even where no file can be made (/proc): try to make one
    try:
        handle, probe = tempfile.mkstemp(dir=folder, prefix=".gdtools-write-test-")
    except OSError as exc:
        raise InputError(f"{flag} {path!r}: cannot write into {folder!r} ({exc.strerror or exc})") from None
    os.close(handle)
    os.remove(probe)
