import jax.numpy as jnp
import numpy as np
import pytest

from gdtools import program_cache
from gdtools.dream.objectives import Objective, channels, layer
from gdtools.dream.tiling import TileObjective


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(program_cache, "_DIRECTORY", None)
    assert program_cache.enable(tmp_path / "executables") == tmp_path / "executables"
    return tmp_path / "executables"


# Each test has a tile side of its own: once any test of the session has switched JAX's persistent
# compilation cache on, a network it compiled before is served by that cache and, by design, not
# saved again (see gdtools.program_cache.compiled), so a shared side would make file counts depend
# on the order of the tests.
def _piece(side):
    return jnp.asarray(np.random.default_rng(0).uniform(0, 255, (side, side, 3)), jnp.float32)


def test_a_second_objective_loads_the_saved_network_without_tracing_it(params, cache_dir):
    piece = _piece(33)
    first = TileObjective(layer("block1"), params=params, tile=33)
    value, grad = first(piece)
    assert first.traces == 1 and len(list(cache_dir.glob("*.xla"))) == 1
    second = TileObjective(layer("block1"), params=params, tile=33)
    value2, grad2 = second(piece)
    assert second.traces == 0
    assert float(value2) == float(value)
    np.testing.assert_array_equal(np.asarray(grad2), np.asarray(grad))


def test_another_objective_or_form_is_another_program(params, cache_dir):
    piece = _piece(35)
    TileObjective(layer("block1"), params=params, tile=35)(piece)
    for other in (TileObjective(channels("block1", [0, 3]), params=params, tile=35),
                  TileObjective(layer("block2"), params=params, tile=35),
                  TileObjective(layer("block1"), params=params, tile=35, depthwise="conv")):
        other(piece)
        assert other.traces == 1
    assert len(list(cache_dir.glob("*.xla"))) == 4


def test_an_unreadable_file_is_replaced_by_a_fresh_compilation(params, cache_dir):
    piece = _piece(37)
    expected = TileObjective(layer("block1"), params=params, tile=37)(piece)
    (saved,) = cache_dir.glob("*.xla")
    saved.write_bytes(b"not an executable")
    again = TileObjective(layer("block1"), params=params, tile=37)
    value, grad = again(piece)
    assert again.traces == 1
    assert float(value) == float(expected[0])
    # deleted and compiled again (saved again unless JAX's own cache, on in this session, served it)
    assert not saved.exists() or saved.read_bytes() != b"not an executable"


def test_off_means_nothing_is_written(params, tmp_path, monkeypatch):
    piece = _piece(39)
    monkeypatch.setattr(program_cache, "_DIRECTORY", None)
    objective = TileObjective(layer("block1"), params=params, tile=39)
    objective(piece)
    assert objective.traces == 1 and program_cache.directory() is None
    assert program_cache.load("anything", None) is None


def test_a_guide_with_the_same_name_but_other_pixels_is_another_program(params, cache_dir):
    piece = _piece(41)
    from gdtools.dream.deepdream import Dreamer
    from gdtools.dream.objectives import guide

    rng = np.random.default_rng(1)
    first, second = (rng.uniform(0, 255, (40, 40, 3)).astype(np.float32) for _ in range(2))
    a = Dreamer(guide("block1", first, label="guide.png"), params=params, tile=41)
    a.tile_objective(piece)
    b = Dreamer(guide("block1", second, label="guide.png"), params=params, tile=41)
    value, _ = b.tile_objective(piece)
    assert b.tile_objective.traces == 1  # not loaded from the first guide's program
    fresh = TileObjective(b.objective, params=params, tile=41)
    program_cache.disable()
    assert float(fresh(piece)[0]) == pytest.approx(float(value), rel=1e-5)


def test_a_read_only_cache_with_a_bad_file_still_dreams(params, cache_dir):
    piece = _piece(43)
    TileObjective(layer("block1"), params=params, tile=43)(piece)
    (saved,) = cache_dir.glob("*.xla")
    saved.write_bytes(b"garbage")
    cache_dir.chmod(0o500)
    try:
        again = TileObjective(layer("block1"), params=params, tile=43)
        value, _ = again(piece)
        assert again.traces == 1 and np.isfinite(float(value))
    finally:
        cache_dir.chmod(0o700)


class _Signed(Objective):
    """An objective written by a user: its describe() does not tell its instances apart (nor would
    it change with its code)."""

    layers = ("block1",)

    def __init__(self, sign):
        self.sign = sign

    def __call__(self, activations):
        return self.sign * jnp.mean(jnp.square(activations["block1"]))

    def describe(self):
        return {"custom": "energy"}


def test_an_objective_defined_outside_gdtools_is_never_served_another_ones_program(params, cache_dir):
    # the saved network was keyed by describe(): _Signed(-1) got _Signed(+1)'s program, and dreamed
    # exactly the same image (up the objective instead of down), in this process or any later one
    piece = _piece(39)
    up = TileObjective(_Signed(1.0), params=params, tile=39)(piece)
    down = TileObjective(_Signed(-1.0), params=params, tile=39)(piece)
    assert float(down[0]) == pytest.approx(-float(up[0]), rel=1e-6)
    np.testing.assert_allclose(np.asarray(down[1]), -np.asarray(up[1]), rtol=1e-5, atol=1e-8)
    for mixed in (_Signed(1.0) + layer("block2"), 2.0 * _Signed(1.0)):
        assert mixed.key() is None
    assert list(cache_dir.glob("*.xla")) == []
