"""Compiled programs kept whole between processes (gdtools.program_cache.saved_jit)."""

import subprocess
import sys
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gdtools import program_cache


def _draw(key):
    return jax.random.randint(key, (2,), -50, 50)


def _halve_and_sum(x, y, *, scale):
    return jnp.sum(x) * scale, y / 2


# Each test uses shapes of its own: once a test of the session has switched JAX's persistent cache
# on, a program compiled before is served by it and, by design, not saved again.

@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(program_cache, "_DIRECTORY", None)
    program_cache.enable(tmp_path)
    return tmp_path


def test_off_it_is_the_plain_jit(monkeypatch):
    monkeypatch.setattr(program_cache, "_DIRECTORY", None)
    f = program_cache.saved_jit(_halve_and_sum, static_argnames=("scale",))
    total, half = f(jnp.arange(4.0), jnp.ones(6), scale=2.0)
    assert float(total) == 12.0 and np.allclose(half, 0.5)
    assert not f._programs


def test_one_program_per_signature_saved_and_loaded_again(cache_dir):
    f = program_cache.saved_jit(_halve_and_sum, static_argnames=("scale",))
    x, y = jnp.arange(4.0), jnp.ones(3)
    assert float(f(x, y, scale=2.0)[0]) == 12.0
    f(x, y, scale=2.0)
    assert len(f._programs) == 1 and len(list(cache_dir.glob("*.xla"))) == 1
    f(x, y, scale=3.0)                 # another static value
    f(jnp.arange(5.0), y, scale=2.0)   # another shape
    f(np.arange(4, dtype=np.int32), y, scale=2.0)  # another dtype
    assert len(f._programs) == 4 and len(list(cache_dir.glob("*.xla"))) == 4
    # a fresh wrapper (as in a new process) loads the saved program instead of tracing
    traced = []

    def counting(x, y, *, scale):
        traced.append(1)
        return _halve_and_sum(x, y, scale=scale)

    counting.__qualname__ = _halve_and_sum.__qualname__  # the same name: the same key
    g = program_cache.saved_jit(counting, static_argnames=("scale",))
    total, half = g(x, y, scale=2.0)
    assert float(total) == 12.0 and np.allclose(half, 0.5) and traced == []


def test_inside_another_trace_it_traces_as_usual(cache_dir):
    f = program_cache.saved_jit(_halve_and_sum, static_argnames=("scale",))
    out = jax.jit(lambda x: f(x, x, scale=1.0)[0])(jnp.arange(3.0))  # traced: nothing compiled alone
    assert float(out) == 3.0 and not f._programs
    assert float(jax.grad(lambda x: f(x, x, scale=2.0)[0])(jnp.ones(2))[0]) == 2.0


def test_a_second_process_skips_tracing_and_gets_the_same_numbers(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("""
import sys, jax.numpy as jnp
from gdtools import program_cache
program_cache.enable(sys.argv[1])
traced = []
def f(x):
    traced.append(1)
    return jnp.cumsum(x) ** 2
saved = program_cache.saved_jit(f)
out = list(map(float, saved(jnp.arange(4.0))))
print(len(traced), out)
""")
    runs = [subprocess.run([sys.executable, str(probe), str(tmp_path / "cache")], capture_output=True, text=True,
                           check=True).stdout.split(None, 1) for _ in range(2)]
    assert runs[0][0] == "1" and runs[1][0] == "0"  # traced in the first process only
    assert runs[0][1] == runs[1][1]


def test_a_function_without_a_source_file_is_never_saved(cache_dir):
    namespace = {}
    exec("import jax.numpy as jnp\ndef f(x):\n    return x + 1", namespace)
    f = program_cache.saved_jit(namespace["f"])
    assert float(f(jnp.ones(()))) == 2.0
    assert not list(cache_dir.glob("*.xla"))


def test_an_unreadable_file_is_compiled_again(cache_dir):
    f = program_cache.saved_jit(_halve_and_sum, static_argnames=("scale",))
    f(jnp.arange(4.0), jnp.ones(7), scale=2.0)
    (saved,) = cache_dir.glob("*.xla")
    saved.write_bytes(b"garbage")
    g = program_cache.saved_jit(_halve_and_sum, static_argnames=("scale",))
    assert float(g(jnp.arange(4.0), jnp.ones(7), scale=2.0)[0]) == 12.0
    # deleted and compiled again (saved again unless JAX's own cache, on in this session, served it)
    assert not saved.exists() or saved.read_bytes() != b"garbage"


def test_at_most_max_files_are_kept(cache_dir, monkeypatch):
    monkeypatch.setattr(program_cache, "MAX_FILES", 3)
    f = program_cache.saved_jit(_halve_and_sum, static_argnames=("scale",))
    for n in range(1, 6):
        f(jnp.arange(float(n)), jnp.ones(8), scale=1.0)
    assert len(list(cache_dir.glob("*.xla"))) == 3


def test_a_program_in_jax_persistent_cache_is_compiled_afresh_and_saved_in_working_order(tmp_path):
    """XLA:CPU serialises an executable that JAX's persistent cache handed back without its code;
    a copy saved from it failed later with "Function ... not found". Once such programs were not
    saved at all, so with JAX's cache holding a program (as after a gdtools upgrade changes the
    source digest, not the code) every later process traced it anew. Now this cache compiles with
    JAX's cache off: the program is saved, and the third process runs the saved copy."""
    probe = tmp_path / "probe.py"
    probe.write_text("""
import sys, jax, jax.numpy as jnp, numpy as np
jax.config.update("jax_compilation_cache_dir", sys.argv[1] + "/jax")
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
from gdtools import program_cache
if sys.argv[2] == "both":
    program_cache.enable(sys.argv[1] + "/programs")
def f(x, shift):
    x = jnp.roll(jnp.reshape(x, (20, 15)), (shift[0], shift[1]), axis=(0, 1))
    x = jnp.pad(x, ((0, 3), (0, 1)), mode="reflect")
    return sum(jnp.sum(x[i:i + 8, j:j + 8]) for i in (0, 7, 15) for j in (0, 8))
saved = program_cache.saved_jit(f)
print(float(saved(jnp.arange(300.0), np.array([2, -1], np.int32))))
""")
    outputs = []
    for mode in ("jax only", "both", "both"):
        run = subprocess.run([sys.executable, str(probe), str(tmp_path), mode.split()[0]], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr[-2000:]
        outputs.append(run.stdout.strip())
    assert len(set(outputs)) == 1  # the third process ran the saved program: same number, no error
    assert len(list((tmp_path / "programs").glob("*.xla"))) == 1


def test_a_program_jax_reused_from_memory_is_not_saved(tmp_path):
    """The same failure by another road: JAX's cache served the program while this cache was off,
    then this cache was switched on and JAX reused the program from memory."""
    probe = tmp_path / "probe.py"
    probe.write_text("""
import sys, jax, jax.numpy as jnp, numpy as np
jax.config.update("jax_compilation_cache_dir", sys.argv[1] + "/jax")
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
from gdtools import program_cache
def f(x, shift):
    x = jnp.roll(jnp.reshape(x, (20, 15)), (shift[0], shift[1]), axis=(0, 1))
    x = jnp.pad(x, ((0, 3), (0, 1)), mode="reflect")
    return sum(jnp.sum(x[i:i + 8, j:j + 8]) for i in (0, 7, 15) for j in (0, 8))
saved = program_cache.saved_jit(f)
args = (jnp.arange(300.0), np.array([2, -1], np.int32))
first = float(saved(*args))
if sys.argv[2] == "switch":
    program_cache.enable(sys.argv[1] + "/programs")
    first = float(saved(*args))
print(first)
""")
    outputs = []
    for mode in ("off", "switch", "switch"):
        run = subprocess.run([sys.executable, str(probe), str(tmp_path), mode], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr[-2000:]
        outputs.append(run.stdout.strip())
    assert len(set(outputs)) == 1
    assert not list((tmp_path / "programs").glob("*.xla"))


def test_typed_keys_lambdas_and_settings(cache_dir):
    fold = program_cache.saved_jit(jax.random.fold_in)
    typed = jax.random.key(0)
    np.testing.assert_array_equal(jax.random.key_data(fold(typed, np.uint32(3))),
                                  jax.random.key_data(jax.random.fold_in(typed, 3)))
    # lambdas (and closures) are not told apart by their names: never saved
    plus, times = program_cache.saved_jit(lambda x: x + 1), program_cache.saved_jit(lambda x: x * 2)
    assert float(plus(jnp.float32(10))) == 11.0 and float(times(jnp.float32(10))) == 20.0
    assert not list(cache_dir.glob("*.xla"))[1:]  # at most fold_in's program
    # a JAX setting that changes the program changes the signature
    draw = program_cache.saved_jit(_draw)
    key = jax.random.PRNGKey(3)
    for partitionable in (False, True):
        with jax.threefry_partitionable(partitionable):
            np.testing.assert_array_equal(draw(key), jax.jit(lambda k: jax.random.randint(k, (2,), -50, 50))(key))


def test_compilations_are_counted_per_thread():
    """Whether a program was compiled right then (and may be saved) is told by JAX's compile events;
    another thread's compilation must not make a program JAX reused from memory look fresh."""
    before = dict(program_cache._event_counts())
    other = threading.Thread(target=lambda: jax.jit(lambda v: v * 7.0 + 1.0).lower(jnp.ones(3)).compile())
    other.start()
    other.join()
    assert program_cache._event_counts() == before
    jax.jit(lambda v: v * 5.0 + 2.0).lower(jnp.ones(3)).compile()
    assert program_cache._event_counts()[program_cache._BACKEND_COMPILE] == before[program_cache._BACKEND_COMPILE] + 1
