"""Compiled programs saved whole, so that a later process skips tracing and lowering them.

JAX's persistent compilation cache (:mod:`gdtools.dream.compilation_cache`) skips XLA's compiler,
but finds its entry by the lowered program, so every process still traces and lowers every program
first: seconds of Python on every ``gdtools dream`` (the network, and a few small programs per
octave). This cache keeps the compiled executable itself (JAX's ``serialize_executable``) under a
key made of everything the program depends on: what the caller names (the function, its static
arguments, the shapes and dtypes of its arguments, for the network its objective and form), the
source of the modules that define it, the backend, device kind and host CPU, the jax and jaxlib
versions, x64 mode and ``XLA_FLAGS``.

It is off unless switched on (:func:`enable`; the dream and its CLI do, with the compilation cache),
lives in the user's cache directory, and is trusted like JAX's own cache: an executable loaded from
it runs as native code, so the directory must be the user's own. A file that cannot be read back is
deleted and the program compiled again; at most :data:`MAX_FILES` programs are kept.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import os
import pickle
import tempfile
import threading
from pathlib import Path

import jax

_DIRECTORY: Path | None = None

#: at most this many programs are kept; the least recently written go first
MAX_FILES = 256

# The type of traced values (public as jax.core.Tracer; jax.core's other names are being deprecated).
Tracer = getattr(jax.core, "Tracer", None) or __import__("jax._src.core", fromlist=["Tracer"]).Tracer


def enable(directory: str | os.PathLike) -> Path | None:
    """Keep compiled programs in ``directory`` from now on (None if it cannot be created)."""
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
    """Where compiled programs are kept, or None when the cache is off."""
    return _DIRECTORY


@functools.lru_cache(maxsize=None)
def _source_digest(paths: tuple[str, ...]) -> str | None:
    digest = hashlib.sha256()
    try:
        for path in paths + (__file__,):
            digest.update(Path(path).read_bytes())
    except OSError:  # installed without its sources: nothing to key on, so no caching
        return None
    return digest.hexdigest()


@functools.lru_cache(maxsize=None)
def _host_fingerprint() -> str:
    """What compiled code may depend on beyond the device kind: on a CPU, its instruction-set flags
    (a cache shared between machines must not serve AVX-512 code to a CPU without it)."""
    import platform

    flags = ""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((line for line in fh if line.startswith(("flags", "Features"))), "")
    except OSError:
        pass
    return f"{platform.machine()} {platform.processor()} {flags.strip()}"


def key(*parts, sources: tuple[str, ...] = ()) -> str | None:
    """A file name for the program that ``parts`` (reprs of what it depends on) describe, built
    from the modules in ``sources``, on this backend, device kind and host, with these jax versions
    and settings; None when that cannot be pinned down (then nothing is cached)."""
    import jaxlib

    source = _source_digest(tuple(sources))
    if source is None:
        return None
    device = jax.devices()[0]
    runtime = getattr(device.client, "platform_version", "")  # e.g. the CUDA and plugin versions
    text = repr((parts, jax.__version__, jaxlib.__version__, runtime, device.platform, device.device_kind,
                 _host_fingerprint(), bool(jax.config.jax_enable_x64), os.environ.get("XLA_FLAGS", ""),
                 source))
    return hashlib.sha256(text.encode()).hexdigest()


def load(name: str, in_tree):
    """The compiled program saved as ``name`` for arguments of structure ``in_tree``, or None (not
    there, or unreadable: then deleted)."""
    if _DIRECTORY is None:
        return None
    path = _DIRECTORY / f"{name}.xla"
    try:
        data = path.read_bytes()
    except OSError:
        return None
    from jax.experimental import serialize_executable

    try:
        blob, out_tree = pickle.loads(data)
        return serialize_executable.deserialize_and_load(blob, in_tree, out_tree)
    except Exception:  # written by another jaxlib, truncated...: compile again
        try:
            path.unlink(missing_ok=True)
        except OSError:  # a read-only cache: leave it, compile anyway
            pass
        return None


def save(name: str, compiled, in_tree) -> bool:
    """Save ``compiled`` as ``name`` if its arguments have the structure ``in_tree`` (what
    :func:`load` will rebuild it with); True if saved. Never raises: a program that cannot be
    serialised (one with constants, say) is simply not kept."""
    if _DIRECTORY is None:
        return False
    from jax.experimental import serialize_executable

    temporary = None
    try:
        blob, saved_in, out_tree = serialize_executable.serialize(compiled)
        if saved_in != in_tree:
            return False
        with tempfile.NamedTemporaryFile(dir=_DIRECTORY, suffix=".tmp", delete=False) as fh:
            temporary = Path(fh.name)
            fh.write(pickle.dumps((blob, out_tree)))
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


# A program is compiled here with JAX's persistent cache switched off, and saved only if XLA
# compiled it right then. XLA:CPU serialises an executable that JAX's cache handed back without its
# code ("Function ... not found" when the copy runs), so such a program could not be saved; and
# when this cache misses but JAX's hits (a new gdtools version changes the source digest, not the
# compiled code), it would never be saved again: every later process would trace and lower the
# network anew (1.8 s on this 2-core CPU, every run). The price: a miss here (a new version, an
# XLA_FLAGS change, a program evicted) is a full compilation, as in a first run, and on a GPU
# without XLA's autotuning results, which JAX keeps only while its cache is on. The switch is
# process-wide: compilations in other threads meanwhile neither read nor fill JAX's cache.
#
# JAX reports each backend compilation (also a program its persistent cache served) and each
# persistent-cache hit through jax.monitoring, in the thread that compiles; a program JAX reuses
# from memory reports neither, and may have come from its cache earlier. The counts are kept per
# thread, so that another thread's compilation cannot make a reused program look fresh.
_JAX_CACHE_HIT = "/jax/compilation_cache/cache_hits"
_BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"
_events = threading.local()
_switch = threading.RLock()  # one thread at a time switches JAX's cache off and on again


def _event_counts() -> dict:
    if not hasattr(_events, "counts"):
        _events.counts = {_JAX_CACHE_HIT: 0, _BACKEND_COMPILE: 0}
    return _events.counts


def _count_jax_cache_events(event, *args, **kwargs):
    if event in (_JAX_CACHE_HIT, _BACKEND_COMPILE):
        _event_counts()[event] += 1


jax.monitoring.register_event_listener(_count_jax_cache_events)
jax.monitoring.register_event_duration_secs_listener(_count_jax_cache_events)


@contextlib.contextmanager
def _without_jax_persistent_cache():
    """JAX's persistent compilation cache off for the duration (if it is on, and this JAX can)."""
    with _switch:
        if not (jax.config.jax_compilation_cache_dir and jax.config.jax_enable_compilation_cache):
            yield
            return
        try:
            from jax.experimental.compilation_cache.compilation_cache import reset_cache
        except ImportError:  # a JAX without it: its cache may serve the program, then not saved
            yield
            return
        jax.config.update("jax_enable_compilation_cache", False)
        reset_cache()  # JAX decides once whether its cache is used; make it look again
        try:
            yield
        finally:
            jax.config.update("jax_enable_compilation_cache", True)
            reset_cache()


def _settings() -> tuple:
    """The JAX settings a traced program can depend on (effective values, context managers included)."""
    return (bool(jax.config.jax_enable_x64), bool(jax.config.jax_threefry_partitionable),
            str(jax.config.jax_default_prng_impl), str(jax.config.jax_default_matmul_precision))


def compiled(lower, parts, *, sources, args, options=None):
    """The program that ``lower()`` lowers, loaded whole when saved under the key of ``parts`` and
    ``sources``, else compiled (with XLA ``options``, JAX's persistent cache off) and saved if XLA
    compiled it right then (not a program JAX reused from memory). ``args`` are its arguments."""
    in_tree = jax.tree_util.tree_structure((args, {}))
    name = key(*parts, _settings(), sources=sources) if _DIRECTORY is not None else None
    program = load(name, in_tree) if name else None
    if program is None:
        counts = _event_counts()
        before = dict(counts)
        with _without_jax_persistent_cache() if name else contextlib.nullcontext():
            program = lower().compile(compiler_options=options)
        fresh = (counts[_BACKEND_COMPILE] > before[_BACKEND_COMPILE]
                 and counts[_JAX_CACHE_HIT] == before[_JAX_CACHE_HIT])
        if name and fresh:
            save(name, program, in_tree)
    return program


#: compiled programs one SavedJit keeps in memory (the least recently made go first)
MAX_PROGRAMS_IN_MEMORY = 64


def _signature(leaf):
    if isinstance(leaf, jax.Array):  # where it lives matters too: a program is compiled for a sharding
        return (leaf.shape, leaf.dtype, getattr(leaf, "weak_type", False), leaf.sharding, leaf.committed)
    return str(jax.typeof(leaf))


class SavedJit:
    """``jax.jit(fun)`` whose compiled programs are also kept in the cache directory when the cache
    is on. Static arguments are passed by keyword, the others by position. Inside another trace,
    or with the cache off, it is the plain jit."""

    def __init__(self, fun, static_argnames=()):
        self._fun = fun
        self._static = tuple(static_argnames)
        self._jit = jax.jit(fun, static_argnames=self._static)
        try:
            source = inspect.getsourcefile(fun)
        except TypeError:
            source = None
        qualname = getattr(fun, "__qualname__", "<unnamed>")
        # Saved only when the name and the module's source pin the function down: not a lambda, a
        # closure or a partial, whose names do not tell two of them apart.
        self._sources = (source,) if source and "<" not in qualname else None
        self._name = f"{getattr(fun, '__module__', '?')}.{qualname}"
        self._programs = {}
        functools.update_wrapper(self, fun)

    def __call__(self, *args, **statics):
        if _DIRECTORY is None or self._sources is None:
            return self._jit(*args, **statics)
        leaves, in_tree = jax.tree_util.tree_flatten(args)
        if any(isinstance(leaf, Tracer) for leaf in leaves):
            return self._jit(*args, **statics)
        signature = (in_tree, tuple(map(_signature, leaves)), tuple(sorted(statics.items())), _settings())
        program = self._programs.get(signature)
        if program is None:
            program = compiled(lambda: self._jit.lower(*args, **statics),
                               (self._name, repr(signature)), sources=self._sources, args=args)
            if len(self._programs) >= MAX_PROGRAMS_IN_MEMORY:
                self._programs.pop(next(iter(self._programs)))
            self._programs[signature] = program
        return program(*args)


def saved_jit(fun=None, *, static_argnames=()):
    """Decorator: :class:`SavedJit` (``@saved_jit`` or ``@saved_jit(static_argnames=...)``)."""
    if fun is None:
        return functools.partial(saved_jit, static_argnames=static_argnames)
    return SavedJit(fun, static_argnames)
