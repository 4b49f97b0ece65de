import threading

import jax
import jax.numpy as jnp

from gdtools import compile_time


def test_counts_this_threads_compilation_only():
    before = compile_time.seconds()
    jax.jit(lambda x: jnp.sin(x) * 3.0 + 1.25)(jnp.ones(7)).block_until_ready()
    spent = compile_time.seconds() - before
    assert spent > 0

    elsewhere = {}

    def compile_in_a_thread():
        start = compile_time.seconds()
        jax.jit(lambda x: jnp.cos(x) * 5.0 - 0.5)(jnp.ones(9)).block_until_ready()
        elsewhere["spent"] = compile_time.seconds() - start

    mine = compile_time.seconds()
    thread = threading.Thread(target=compile_in_a_thread)
    thread.start()
    thread.join()
    assert elsewhere["spent"] > 0 and compile_time.seconds() == mine


def test_compilation_inside_not_counted_is_not_taken_out():
    before, stages = compile_time.seconds(), compile_time.stages()
    with compile_time.not_counted():
        jax.jit(lambda x: jnp.tan(x) * 7.0 + 0.75)(jnp.ones(5)).block_until_ready()
    assert compile_time.seconds() == before and compile_time.stages() > stages


def test_an_objectives_own_compilation_counts_as_its_time():
    import time

    import numpy as np

    import gdtools as gd

    def compiles_each_time(x):  # a black box that builds and compiles a new JAX program per call
        scale = float(np.sum(x)) + 1.0
        return float(jax.jit(lambda v: jnp.sum((v - 0.5) ** 2) * scale / scale)(jnp.asarray(x)))

    started = time.perf_counter()
    res = gd.minimize(compiles_each_time, np.zeros(2), gradient="spsa", max_evals=12)
    wall = time.perf_counter() - started
    assert res.history.column("time")[-1] > 0.5 * wall
