"""Checks of the files a run or a command will write, made before it spends any time measuring, and
a file written whole or not at all."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from typing import Iterator

from gdtools.errors import InputError


def check_output_file(flag: str, path: str) -> None:
    """``path`` can be written: it is a file that can be, or its folder exists and takes a new file;
    and ``path`` is not itself a folder. ``flag`` names the option or argument that gave it, for
    the message."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise InputError(f"{flag} {path!r}: {folder!r} is a file, not a folder")
    if not os.path.isdir(folder):
        raise InputError(f"{flag} {path!r}: the folder {folder!r} does not exist")
    if os.path.isdir(path) or path.endswith(os.sep):
        raise InputError(f"{flag} {path!r} names a directory; give a file name")
    if os.path.isfile(path) and os.access(path, os.W_OK):
        return  # (a history resumed is appended to: its folder need take no new file)
    check_writable_folder(flag, path, folder)


def check_writable_folder(flag: str, path: str, folder: str) -> None:
    """A new file can be made in ``folder`` (where ``path``, given by ``flag``, goes)."""
    # os.access says yes to root even where no file can be made (/proc): try to make one
    try:
        handle, probe = tempfile.mkstemp(dir=folder, prefix=".gdtools-write-test-")
    except OSError as exc:
        raise InputError(f"{flag} {path!r}: cannot write into {folder!r} ({exc.strerror or exc})") from None
    os.close(handle)
    os.remove(probe)


def figure_file(flag: str, path: str) -> str:
    """The file Matplotlib's ``savefig(path)`` writes (it adds ``.png`` to a name without an
    extension), checked as :func:`check_output_file` does, with a format Matplotlib can write."""
    check_output_file(flag, path)
    from matplotlib.figure import Figure

    extension = os.path.splitext(path)[1].lstrip(".").lower()
    if not extension:
        return path + ".png"
    formats = Figure().canvas.get_supported_filetypes()
    if extension not in formats:
        raise InputError(f"{flag} {path!r}: unknown image format {extension!r}; use one of "
                         f"{', '.join(sorted(formats))}")
    if extension == "pgf":
        import shutil

        import matplotlib

        # Matplotlib lays out PGF's text with LaTeX: without it, savefig fails once all is drawn
        # (after a whole gdtools tune search)
        tex = matplotlib.rcParams["pgf.texsystem"]
        if shutil.which(tex) is None:
            raise InputError(f"{flag} {path!r}: Matplotlib writes PGF with {tex} (LaTeX), which is not "
                             f"installed; use pdf or svg for a figure that scales")
    return path


@contextlib.contextmanager
def written_whole(path: str | os.PathLike) -> Iterator[str]:
    """A partial file beside ``path`` to write into, moved onto ``path`` (os.replace) once the block
    ends without error: a write cut short (a second Ctrl-C while a dream is saved, a full disk, a
    record History.save cannot write) leaves no truncated file, and the file ``path`` held before
    as it was. The partial file
    never outlives the block. A link at ``path`` keeps pointing where it did; its target is replaced,
    and keeps its permissions (a 0640 file stays 0640, not the default mode of a new file). A file
    that is not a regular one (/dev/stdout, a FIFO) is written in place."""
    try:
        regular = stat.S_ISREG(os.stat(path).st_mode)
    except FileNotFoundError:
        regular = True  # a new file
    if not regular:
        # a device or a pipe (/dev/stdout, a FIFO) is written where it is: nothing can replace it
        # (and /dev/stdout's real path, /proc/…/fd/pipe:[…], names no file)
        yield os.fspath(path)
        return
    target = os.path.realpath(path)
    partial = f"{target}.{os.getpid()}.tmp"
    try:
        yield partial
        with contextlib.suppress(FileNotFoundError):
            os.chmod(partial, stat.S_IMODE(os.stat(target).st_mode))
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
