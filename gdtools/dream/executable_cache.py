"""The dream's compiled network saved whole, so that a later process skips tracing it.

JAX's persistent compilation cache (:mod:`gdtools.dream.compilation_cache`) skips XLA's compiler,
but finds its entry by the lowered program, so every process still traces and lowers the whole
network first: seconds of Python on every ``gdtools dream``. This cache keeps the compiled
executable itself (JAX's ``serialize_executable``), under a key made of everything the program
depends on: the objective, the tile, the network's parameter shapes, the compiler options, the
backend and device kind, the jax and jaxlib versions, and the source of the modules that build
the computation. It is switched on with the compilation cache (by :func:`gdtools.dream.dream` and
the CLI), lives beside it in the user's cache directory, and is trusted like it: an executable
loaded from it runs as native code, so the directory must be the user's own. A file that cannot be
read back is deleted and the program compiled again.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import jax

_DIRECTORY: Path | None = None

# the modules whose source decides what the compiled network computes
_SOURCES = ("efficientnet.py", "objectives.py", "tiling.py", "executable_cache.py")


def enable(directory: str | os.PathLike) -> Path | None:
    """Keep compiled networks in ``directory`` from now on (None if it cannot be created)."""
    global _DIRECTORY
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    _DIRECTORY = path
    return path


def disable() -> None:
    global _DIRECTORY
    _DIRECTORY = None


def directory() -> Path | None:
    """Where compiled networks are kept, or None when the cache is off."""
    return _DIRECTORY


#: at most this many programs are kept; the least recently written go first
MAX_FILES = 64


def _source_digest() -> str | None:
    here = Path(__file__).parent
    digest = hashlib.sha256()
    try:
        for name in _SOURCES:
            digest.update((here / name).read_bytes())
    except OSError:  # installed without its sources: nothing to key on, so no caching
        return None
    return digest.hexdigest()


def _host_fingerprint() -> str:
    """What the host's compiled code may depend on beyond the device kind: on a CPU, its
    instruction-set flags (a cache shared between machines must not serve AVX-512 code to a CPU
    without it)."""
    import platform

    flags = ""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((line for line in fh if line.startswith(("flags", "Features"))), "")
    except OSError:
        pass
    return f"{platform.machine()} {platform.processor()} {flags.strip()}"


def key(*parts) -> str | None:
    """A file name for the program that ``parts`` (reprs of what it depends on) describe, on this
    backend, device kind and host, with these jax versions and settings and this gdtools source;
    None when that cannot be pinned down (then nothing is cached)."""
    import jaxlib

    source = _source_digest()
    if source is None:
        return None
    device = jax.devices()[0]
    runtime = getattr(device.client, "platform_version", "")  # e.g. the CUDA and plugin versions
    text = repr((parts, jax.__version__, jaxlib.__version__, runtime, device.platform, device.device_kind,
                 _host_fingerprint(), bool(jax.config.jax_enable_x64), os.environ.get("XLA_FLAGS", ""),
                 source))
    return hashlib.sha256(text.encode()).hexdigest()


def load(name: str, in_tree, out_tree):
    """The compiled program saved as ``name``, or None (not there, or unreadable: then deleted)."""
    if _DIRECTORY is None:
        return None
    path = _DIRECTORY / f"{name}.xla"
    try:
        blob = path.read_bytes()
    except OSError:
        return None
    from jax.experimental import serialize_executable

    try:
        return serialize_executable.deserialize_and_load(blob, in_tree, out_tree)
    except Exception:  # written by another jaxlib, truncated...: compile again
        try:
            path.unlink(missing_ok=True)
        except OSError:  # a read-only cache: leave it, compile anyway
            pass
        return None


def save(name: str, compiled, in_tree, out_tree) -> bool:
    """Save ``compiled`` as ``name`` if its argument and result structures are ``in_tree`` and
    ``out_tree`` (what :func:`load` will rebuild it with); True if saved. Never raises: a program
    that cannot be serialised (one with constants, say) is simply not kept."""
    if _DIRECTORY is None:
        return False
    from jax.experimental import serialize_executable

    temporary = None
    try:
        blob, saved_in, saved_out = serialize_executable.serialize(compiled)
        if saved_in != in_tree or saved_out != out_tree:
            return False
        with tempfile.NamedTemporaryFile(dir=_DIRECTORY, suffix=".tmp", delete=False) as fh:
            temporary = Path(fh.name)
            fh.write(blob)
        os.replace(temporary, _DIRECTORY / f"{name}.xla")  # atomic: a reader sees all of it or nothing
        _evict()
        return True
    except Exception:
        if temporary is not None:
            temporary.unlink(missing_ok=True)
        return False


def _evict() -> None:
    """Delete the oldest programs beyond :data:`MAX_FILES` (each source or version change leaves
    its programs behind)."""
    try:
        files = sorted(_DIRECTORY.glob("*.xla"), key=lambda p: p.stat().st_mtime)
        for old in files[:-MAX_FILES]:
            old.unlink(missing_ok=True)
    except OSError:
        pass
