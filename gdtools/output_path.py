"""Checks of the files a run or a command will write, made before it spends any time measuring."""

from __future__ import annotations

import os

from gdtools.errors import InputError


def check_output_file(flag: str, path: str) -> None:
    """``path`` can be created: its folder exists and it is not itself a folder. ``flag`` names
    the option or argument that gave it, for the message."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise InputError(f"{flag} {path!r}: {folder!r} is a file, not a folder")
    if not os.path.isdir(folder):
        raise InputError(f"{flag} {path!r}: the folder {folder!r} does not exist")
    if os.path.isdir(path) or path.endswith(os.sep):
        raise InputError(f"{flag} {path!r} names a directory; give a file name")


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
