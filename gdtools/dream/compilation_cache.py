"""A persistent JAX compilation cache in the user's cache directory, switched on by the dream.

Compiling the network for a new tile shape takes seconds on a CPU and tens of seconds on a GPU;
with the cache a second run of ``gdtools dream`` loads the compiled program instead. It is enabled
by :func:`gdtools.dream.dream` and the CLI, never by importing gdtools, and never overrides a cache
directory the user configured.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

from gdtools.dream.weights import user_cache_dir


def enable_compilation_cache(path: str | os.PathLike | None = None) -> Path:
    """Point JAX's persistent compilation cache at ``path`` (default ``<user cache>/jax``), unless a
    directory is already configured (``jax_compilation_cache_dir`` or ``JAX_COMPILATION_CACHE_DIR``);
    returns the directory in use. Also keeps whole compiled programs (:mod:`gdtools.program_cache`)
    in ``<user cache>/executables`` (or ``path/executables``), which skips tracing them."""
    from gdtools import program_cache

    program_cache.enable((Path(path) if path is not None else user_cache_dir()) / "executables")
    current = jax.config.jax_compilation_cache_dir
    if current:
        return Path(current)
    directory = Path(path) if path is not None else user_cache_dir() / "jax"
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return directory  # unwritable: run without the cache rather than fail
    jax.config.update("jax_compilation_cache_dir", str(directory))
    # cache every program: besides the network, each octave's shape compiles a handful of small
    # programs (the optax step, rolls, tile cuts, resizes) whose compile times add up per process
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return directory
