"""Seconds JAX has spent compiling in this thread: tracing, lowering and XLA's compilation.

A compiled run's times start when its program has been compiled. The host loop leaves JAX's
compilation out of a run's time and of ``max_time`` in the same way, so that a process that
compiles (a first call) and one that finds its programs compiled (a second call) spend a time
budget on the same iterations. Only gdtools' own compilation is left out: an objective or a
callback that compiles JAX code of its own runs inside :func:`not_counted`, and that time counts
as the objective's. JAX reports each stage's duration through ``jax.monitoring``, in the
thread that compiles; the sum is kept per thread, so that another thread's compilation (an
evaluation on a thread pool) is not taken out of this one's time.
"""

from __future__ import annotations

import contextlib
import threading

import jax

#: The stages of a compilation JAX reports, one after another.
STAGES = ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/jaxpr_to_mlir_module_duration",
          "/jax/core/compile/backend_compile_duration")

_thread = threading.local()


def _add(event: str, duration: float, **kwargs) -> None:
    if event in STAGES:
        _thread.stages = getattr(_thread, "stages", 0) + 1
        if not getattr(_thread, "paused", 0):
            _thread.seconds = getattr(_thread, "seconds", 0.0) + duration


jax.monitoring.register_event_duration_secs_listener(_add)


def seconds() -> float:
    """Seconds spent compiling in this thread since the process started (differences count), but
    for compilation inside :func:`not_counted`."""
    return getattr(_thread, "seconds", 0.0)


def stages() -> int:
    """Compilation stages JAX has reported in this thread (all of them): a difference says whether
    something was traced or compiled meanwhile."""
    return getattr(_thread, "stages", 0)


@contextlib.contextmanager
def not_counted():
    """Compilation inside is the user's own (an objective or a callback that compiles JAX code
    of its own): part of the run's time, not left out of it."""
    _thread.paused = getattr(_thread, "paused", 0) + 1
    try:
        yield
    finally:
        _thread.paused -= 1
