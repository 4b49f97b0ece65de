"""fingerprint: what a JAX objective reads besides its arguments, so that stale programs are not reused."""

import functools

import jax.numpy as jnp
import numpy as np

from gdtools import free_data
from gdtools.free_data import fingerprint

DATA = np.array([1.0, 2.0])


def reads_a_global(x):
    return jnp.sum((x - DATA) ** 2)


def key(fun):
    return fingerprint(fun)[0]


def test_a_global_array_changed_in_place_or_rebound_changes_the_key():
    global DATA
    before = key(reads_a_global)
    assert key(reads_a_global) == before and hash(before) is not None
    DATA[0] = 5.0
    changed = key(reads_a_global)
    assert changed != before
    DATA = np.array([1.0, 2.0])  # the first values again: the first key again
    assert key(reads_a_global) == before


def test_closures_defaults_partials_methods_and_objects_are_read():
    data = np.ones(2)
    closure = lambda x: jnp.sum(x * data)  # noqa: E731
    with_default = lambda x, c=np.ones(2): jnp.sum(x * c)  # noqa: E731
    partial = functools.partial(lambda x, c: jnp.sum(x * c), c=np.ones(2))

    class Model:
        def __init__(self):
            self.w = np.ones(2)

        def __call__(self, x):
            return jnp.sum(x * self.w)

        def loss(self, x):
            return jnp.sum(x * self.w)

    model = Model()
    keys = [key(f) for f in (closure, with_default, partial, model, model.loss)]
    data[0] = with_default.__defaults__[0][0] = partial.keywords["c"][0] = model.w[0] = 3.0
    assert all(key(f) != k for f, k in zip((closure, with_default, partial, model, model.loss), keys))


def test_a_jax_array_is_read_by_identity_and_kept_alive_with_the_key():
    data = jnp.ones(3)
    fun = lambda x: jnp.sum(x * data)  # noqa: E731
    first, keep = fingerprint(fun)
    assert any(item is data for item in keep)  # its id cannot pass to another array while keyed
    assert key(fun) == first
    data = jnp.ones(3)  # equal values, another array: another key (identity, not a device read)
    assert key(fun) != first


def test_functions_it_calls_are_followed_and_libraries_are_not():
    def helper(x):
        return jnp.sum(x * DATA)

    def outer(x):
        return helper(x) + jnp.mean(x)

    before = key(outer)
    DATA[1] += 1.0
    assert key(outer) != before  # the global DATA reached through helper
    library = key(jnp.sum)
    assert library[0] == "library"


def test_cycles_and_huge_containers_end_quickly():
    ring = []
    ring.append(ring)
    fun = lambda x: jnp.sum(x) + len(ring)  # noqa: E731
    assert key(fun) == key(fun)
    many = list(range(10 * free_data.MAX_VALUES))
    assert len(str(key(lambda x: jnp.sum(x) * many[0]))) < 40 * free_data.MAX_VALUES


def test_numbers_in_lists_and_dicts_are_fixed_so_a_trace_counter_does_not_change_the_key():
    traces, config = [], {"scale": np.ones(2), "name": "a"}

    def counted(x):
        traces.append(1)  # runs while JAX traces it
        return jnp.sum(x * config["scale"])

    before = key(counted)
    traces.append(1)
    config["name"] = "b"
    assert key(counted) == before
    config["scale"][0] = 2.0  # arrays in them are read
    assert key(counted) != before


def test_an_objects_numbers_are_read():
    class Scaled:
        def __init__(self):
            self.scale = 1.0

        def __call__(self, x):
            return self.scale * jnp.sum(x)

    model = Scaled()
    before = key(model)
    model.scale = 2.0
    assert key(model) != before
