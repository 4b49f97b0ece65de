"""fingerprint: what a JAX objective reads besides its arguments, so that stale programs are not reused."""

import functools
import logging
import warnings

import jax.numpy as jnp
import numpy as np
import pytest

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
    huge = lambda x: jnp.sum(x) * many[0]  # noqa: E731
    with pytest.warns(UserWarning, match="cannot follow all the data .* compiles the objective anew"):
        first = key(huge)
    assert len(str(first)) < 40 * free_data.MAX_VALUES


def test_data_left_unread_gives_a_key_that_matches_nothing():
    # Past the depth or the number of values read, a change went unseen and the program compiled
    # for the old data was reused: a silently wrong result. Such a key now matches no other.
    deep = {"a": {"b": {"c": {"d": {"e": {"f": {"g": [1.0]}}}}}}}
    data = list(np.linspace(0.0, 1.0, 2 * free_data.MAX_VALUES))
    for fun in (lambda x: jnp.sum(x) * deep["a"]["b"]["c"]["d"]["e"]["f"]["g"][0],
                lambda x: jnp.sum(x) * data[-1]):
        with pytest.warns(UserWarning, match="cannot follow"):
            assert key(fun) != key(fun)
    shallow = {"a": {"b": [1.0]}}
    fun = lambda x: jnp.sum(x) * shallow["a"]["b"][0]  # noqa: E731
    assert key(fun) == key(fun)


LOGGER = logging.getLogger("gdtools-test-objective")


def test_an_objective_holding_a_library_object_keeps_a_key_that_matches():
    # a logger's manager reaches every logger of the process, far past the depth and the values
    # read: that made an ordinary objective compile on every call, with a warning each time
    LOGGER.addHandler(logging.NullHandler())
    data = np.arange(3.0)

    def fun(x):
        LOGGER.debug("called")
        return jnp.sum(x * data)

    class Holder:
        def __init__(self):
            self.logger, self.log = LOGGER, logging.getLogger("gdtools-test-other")

        def loss(self, x):
            self.logger.debug("x")
            return jnp.sum(x)

    holder = Holder()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert key(fun) == key(fun) and key(holder.loss) == key(holder.loss)
        first = key(fun)
        data[1] = 5.0  # the user's data is still read, next to the logger
        assert key(fun) != first


def test_numbers_in_lists_dicts_and_pairs_are_read():
    points, params, config = [(0, 1), (1, 3)], {"t": 1.0}, {"a": np.zeros(2), "b": np.zeros(2), "c": np.zeros(2)}
    fun = lambda x: jnp.sum(x * points[0][1] * params["t"] + config["c"])  # noqa: E731
    keys = {key(fun)}
    for change in (lambda: points.__setitem__(0, (0, -1)), lambda: params.__setitem__("t", 5.0),
                   lambda: config["c"].__setitem__(0, 3.0)):  # the third of three arrays in a dict, too
        change()
        keys.add(key(fun))
    assert len(keys) == 4


def test_a_user_modules_attributes_a_class_attribute_and_slots_are_read(tmp_path, monkeypatch):
    import importlib

    (tmp_path / "my_data_module.py").write_text("import numpy as np\nTARGET = np.array([1.0, 2.0])\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    my_data_module = importlib.import_module("my_data_module")
    reads_module = lambda x: jnp.sum(x - my_data_module.TARGET)  # noqa: E731
    before = key(reads_module)
    my_data_module.TARGET = np.array([5.0, 6.0])
    assert key(reads_module) != before

    class Shift:
        shift = 1.0

        def loss(self, x):
            return jnp.sum(x - self.shift)

    class Slotted:
        __slots__ = ("w",)

        def __init__(self):
            self.w = np.ones(2)

        def __call__(self, x):
            return jnp.sum(x * self.w)

    shifted, slotted = Shift(), Slotted()
    before = key(shifted.loss), key(slotted)
    Shift.shift = 2.0
    slotted.w[0] = 3.0
    after = key(shifted.loss), key(slotted)
    assert before[0] != after[0] and before[1] != after[1]


def test_an_object_that_cannot_be_read_is_taken_by_identity_not_a_crash():
    class Proxy:  # a lazy proxy whose every attribute raises outside its context
        def __getattribute__(self, name):
            raise RuntimeError("working outside of context")

    proxy = Proxy()

    def fun(x):
        if False:
            proxy.log(x)
        return jnp.sum(x)

    first, keep = fingerprint(fun)
    assert key(fun) == first and any(item is proxy for item in keep)


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


def test_an_optimizer_s_data_is_read_through_optax_s_closures():
    """optax's functions are a library's, taken by identity for an objective; an optimizer's key
    reads their closures, which hold its settings and the user's schedule (found by h72)."""
    import optax

    rate = [0.1]
    optimizer = optax.sgd(lambda count: rate[0])
    before = free_data.optimizer_data(optimizer)
    assert free_data.optimizer_data(optimizer) == before and hash(before) is not None
    rate[0] = 0.01
    assert free_data.optimizer_data(optimizer) != before
    assert free_data.optimizer_data(optax.adam(1e-3)) == free_data.optimizer_data(optax.adam(1e-3))
    assert free_data.optimizer_data(optax.adam(1e-3)) != free_data.optimizer_data(optax.adam(1e-2))
