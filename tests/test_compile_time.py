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
