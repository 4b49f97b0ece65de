import jax.numpy as jnp
import numpy as np
import pytest

from gdtools import program_cache
from gdtools.dream.objectives import channels, layer
from gdtools.dream.tiling import TileObjective


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(program_cache, "_DIRECTORY", None)
    assert program_cache.enable(tmp_path / "executables") == tmp_path / "executables"
    return tmp_path / "executables"


@pytest.fixture(scope="module")
def piece():
    return jnp.asarray(np.random.default_rng(0).uniform(0, 255, (32, 32, 3)), jnp.float32)


def test_a_second_objective_loads_the_saved_network_without_tracing_it(params, piece, cache_dir):
    first = TileObjective(layer("block1"), params=params, tile=32)
    value, grad = first(piece)
    assert first.traces == 1 and len(list(cache_dir.glob("*.xla"))) == 1
    second = TileObjective(layer("block1"), params=params, tile=32)
    value2, grad2 = second(piece)
    assert second.traces == 0
    assert float(value2) == float(value)
    np.testing.assert_array_equal(np.asarray(grad2), np.asarray(grad))


def test_another_objective_or_form_is_another_program(params, piece, cache_dir):
    TileObjective(layer("block1"), params=params, tile=32)(piece)
    for other in (TileObjective(channels("block1", [0, 3]), params=params, tile=32),
                  TileObjective(layer("block2"), params=params, tile=32),
                  TileObjective(layer("block1"), params=params, tile=32, depthwise="conv")):
        other(piece)
        assert other.traces == 1
    assert len(list(cache_dir.glob("*.xla"))) == 4


def test_an_unreadable_file_is_replaced_by_a_fresh_compilation(params, piece, cache_dir):
    expected = TileObjective(layer("block1"), params=params, tile=32)(piece)
    (saved,) = cache_dir.glob("*.xla")
    saved.write_bytes(b"not an executable")
    again = TileObjective(layer("block1"), params=params, tile=32)
    value, grad = again(piece)
    assert again.traces == 1
    assert float(value) == float(expected[0])
    assert saved.read_bytes() != b"not an executable"  # compiled again and saved again


def test_off_means_nothing_is_written(params, piece, tmp_path, monkeypatch):
    monkeypatch.setattr(program_cache, "_DIRECTORY", None)
    objective = TileObjective(layer("block1"), params=params, tile=32)
    objective(piece)
    assert objective.traces == 1 and program_cache.directory() is None
    assert program_cache.load("anything", None) is None


def test_a_guide_with_the_same_name_but_other_pixels_is_another_program(params, piece, cache_dir):
    from gdtools.dream.deepdream import Dreamer
    from gdtools.dream.objectives import guide

    rng = np.random.default_rng(1)
    first, second = (rng.uniform(0, 255, (40, 40, 3)).astype(np.float32) for _ in range(2))
    a = Dreamer(guide("block1", first, label="guide.png"), params=params, tile=32)
    a.tile_objective(piece)
    b = Dreamer(guide("block1", second, label="guide.png"), params=params, tile=32)
    value, _ = b.tile_objective(piece)
    assert b.tile_objective.traces == 1  # not loaded from the first guide's program
    fresh = TileObjective(b.objective, params=params, tile=32)
    program_cache.disable()
    assert float(fresh(piece)[0]) == pytest.approx(float(value), rel=1e-5)


def test_a_read_only_cache_with_a_bad_file_still_dreams(params, piece, cache_dir):
    TileObjective(layer("block1"), params=params, tile=32)(piece)
    (saved,) = cache_dir.glob("*.xla")
    saved.write_bytes(b"garbage")
    cache_dir.chmod(0o500)
    try:
        again = TileObjective(layer("block1"), params=params, tile=32)
        value, _ = again(piece)
        assert again.traces == 1 and np.isfinite(float(value))
    finally:
        cache_dir.chmod(0o700)
