"""Seconds JAX has spent compiling in this thread: tracing, lowering and XLA's compilation.

A compiled run's times start when its program has been compiled. The host loop leaves JAX's
compilation out of a run's time and of ``max_time`` in the same way, so that a process that
compiles (a first call) and one that finds its programs compiled (a second call) spend a time
budget on the same iterations. JAX reports each stage's duration through ``jax.monitoring``, in the
thread that compiles; the sum is kept per thread, so that another thread's compilation (an
evaluation on a thread pool) is not taken out of this one's time.
"""

from __future__ import annotations

import threading

import jax

#: The stages of a compilation JAX reports, one after another.
STAGES = ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/jaxpr_to_mlir_module_duration",
          "/jax/core/compile/backend_compile_duration")

_thread = threading.local()


def _add(event: str, duration: float, **kwargs) -> None:
    if event in STAGES:
        _thread.seconds = getattr(_thread, "seconds", 0.0) + duration


jax.monitoring.register_event_duration_secs_listener(_add)


def seconds() -> float:
    """Seconds spent compiling in this thread since the process started (differences count)."""
    return getattr(_thread, "seconds", 0.0)
