import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gdtools as gd
from gdtools import program_cache
from gdtools.dream import deepdream, laplacian, tiling
from gdtools.dream.deepdream import Dreamer, DreamSettings, dream
from gdtools.errors import InputError


@pytest.fixture(scope="module")
def dreamer(params):
    """One compiled objective (block3 on 64 px tiles) shared by the tests of this module."""
    return Dreamer("block3", params=params, tile=64, octaves=2, steps=3, jitter=8, step_size=2.0)


def test_compiles_once_whatever_the_image_size_and_octaves(params, cat_small, monkeypatch):
    monkeypatch.setattr(program_cache, "_DIRECTORY", None)  # count traces, not loads of a saved network
    fresh = Dreamer("stem", params=params, tile=64, octaves=3, steps=1, jitter=8)
    fresh(cat_small)                                                    # 96 x 64: two tiles, padded octaves
    fresh.with_seed(1)(np.full((150, 130, 3), 120.0, np.float32))       # another size, more tiles
    assert fresh.tile_objective.traces == 1
    fresh.with_settings(octaves=1, steps=2, normalize="laplacian")(cat_small)
    assert fresh.tile_objective.traces == 1


def test_an_octave_adds_five_programs(params, tmp_path, monkeypatch):
    """Each distinct compiled program costs a load (or a trace) in every process; a warm dream on
    an H100 loaded 35 (8 an octave) in 0.35 s. An octave's own are: its start, minimize's check of
    x0, the tile cut, the reassembly and the largest gradient component."""
    monkeypatch.setattr(program_cache, "_DIRECTORY", None)
    program_cache.enable(tmp_path)
    names = []
    real = program_cache.compiled
    monkeypatch.setattr(program_cache, "compiled",
                        lambda lower, parts, **kw: names.append(parts[0]) or real(lower, parts, **kw))
    image = np.full((89, 71, 3), 100.0, np.float32)  # a size no other test dreams: three new shapes
    Dreamer("stem", params=params, tile=64, octaves=3, steps=2, jitter=8)(image)
    counts = collections.Counter(names)
    per_octave = sorted(name for name, count in counts.items() if count == 3)
    assert len(per_octave) == 5 and all(count in (1, 3) for count in counts.values()), counts


def test_each_octave_runs_through_gd_minimize(dreamer, cat_small, monkeypatch):
    calls = []
    real = gd.minimize

    def spy(fun, x0, **kwargs):
        calls.append((x0.shape, kwargs["max_iters"], type(kwargs["gradient"]).__name__, kwargs["bounds"]))
        return real(fun, x0, **kwargs)

    monkeypatch.setattr(gd, "minimize", spy)
    dreamer(cat_small)
    assert [c[0] for c in calls] == [(46 * 69 * 3,), (64 * 96 * 3,)]  # the flat image of each octave
    assert all(c[1:] == (3, "TiledGradient", (0.0, 255.0)) for c in calls)


def test_dream_raises_the_objective_and_stays_in_range(dreamer, cat_small):
    seen = []
    out = dreamer(cat_small, callback=seen.append)
    assert out.shape == cat_small.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 255.0
    assert np.abs(out - cat_small).mean() > 1.0
    per_octave = [[p.objective for p in seen if p.octave == k] for k in range(2)]
    assert all(len(values) == 3 for values in per_octave)
    assert per_octave[1][-1] > per_octave[1][0]
    estimator = tiling.TiledGradient(dreamer.tile_objective, shape=cat_small.shape, jitter=0)
    descent_value = lambda image: float(estimator.descent_value(jnp.asarray(image).reshape(-1)))  # noqa: E731
    assert descent_value(out) < descent_value(cat_small)  # minimize's value: the objective negated


def test_same_seed_same_image_other_seed_other_image(dreamer, cat_small):
    a = dreamer(cat_small)
    np.testing.assert_array_equal(a, dreamer(cat_small))
    assert np.abs(a - dreamer.with_seed(7)(cat_small)).mean() > 0.1


def test_a_grayscale_array_is_dreamed_as_its_rgb_copy(dreamer, cat_small):
    gray = cat_small.mean(axis=-1)
    out = dreamer(gray)
    assert out.shape == cat_small.shape  # the dream is in colour
    np.testing.assert_array_equal(out, dreamer(np.repeat(gray[..., None], 3, axis=-1)))


def test_a_dreamer_uses_tiles_no_larger_than_the_image(dreamer, cat_small):
    # Dreamer(tile=512), its gallery and its zoom padded a small image up to 512-pixel tiles (the
    # CLI and dream() fitted the tile): the same dream for several times the network's work.
    small = cat_small[:40, :60]
    roomy = dreamer.with_settings(tile=512)
    assert roomy.tile_objective_for(small.shape).tile == 64 and roomy.settings.tile == 512
    np.testing.assert_array_equal(roomy(small), dreamer(small))
    twin = roomy.with_seed(5)
    assert twin.tile_objective_for(small.shape) is roomy.tile_objective_for(small.shape)  # compiled once
    # twins made before the first dream (zoom_frames makes one a frame) share them too
    fresh = dreamer.with_settings(tile=256)
    early_twins = [fresh.with_seed(k) for k in range(3)]
    assert len({id(t.tile_objective_for(small.shape)) for t in early_twins}) == 1


def test_callback_can_stop_the_dream(dreamer, cat_small):
    seen = []
    out = dreamer(cat_small, callback=lambda p: seen.append(p) or True)
    assert len(seen) == 1 and out.shape == cat_small.shape


def test_a_pad_wider_than_the_image_reflects_as_numpy_does_without_a_chain_of_copies():
    # jnp.pad reflects a pad wider than the image again and again: a 16-px strip padded to a tile
    # gave XLA's simplifier a chain of copies it logged as 'stuck in a circular simplification loop'
    rng = np.random.default_rng(0)
    for shape, pad in [((16, 205, 3), (496, 307)), ((20, 5, 3), (3, 100)), ((16, 16, 3), (15, 0))]:
        image = rng.random(shape).astype(np.float32)
        expected = np.pad(image, ((0, pad[0]), (0, pad[1]), (0, 0)), mode="reflect")
        np.testing.assert_array_equal(np.asarray(tiling.reflect_pad(jnp.asarray(image), pad)), expected)
    hlo = jax.jit(lambda im: tiling.reflect_pad(im, (496, 307))).lower(jnp.zeros((16, 205, 3))).as_text()
    assert hlo.count("concatenate") <= 1 and hlo.count("reverse") == 0


def test_tiles_cover_the_image_and_overlaps_are_averaged(dreamer):
    assert tiling.tile_starts(50, 64) == [0]
    assert tiling.tile_starts(64, 64) == [0]
    assert tiling.tile_starts(150, 64) == [0, 43, 86]
    cut = tiling.Tiling((150, 40, 3), 64)
    assert cut.pad == (0, 24) and cut.overlapping
    # the tiled gradient equals the tile gradient where a single tile covers the image
    image = jnp.asarray(np.random.default_rng(0).uniform(0, 255, (64, 64, 3)), jnp.float32)
    value, grad = tiling.Tiling((64, 64, 3), 64).value_and_grad(dreamer.tile_objective, image)
    direct_value, direct_grad = dreamer.tile_objective(image)
    np.testing.assert_allclose(grad, direct_grad, rtol=1e-6)
    assert float(value) == pytest.approx(float(direct_value))


def test_no_seams_at_tile_borders(dreamer):
    """Dream a flat grey image larger than a tile: the change at the (fixed) tile borders of the
    un-jittered grid is no stronger than elsewhere, because the jitter moves the borders."""
    flat = np.full((128, 128, 3), 128.0, np.float32)
    result = dreamer.with_settings(octaves=1, steps=6)(flat)
    rows = np.abs(np.diff(result, axis=0)).mean(axis=(1, 2))
    cols = np.abs(np.diff(result, axis=1)).mean(axis=(0, 2))
    for profile in (rows, cols):
        border = profile[[63]]  # between the two 64 px tiles of the un-jittered grid
        assert border.max() < 2.0 * np.median(profile), (border, np.median(profile))


def test_laplacian_normalisation(dreamer, cat_small):
    rng = np.random.default_rng(0)
    g = jnp.asarray(rng.normal(size=(37, 50, 3)) * np.linspace(0.1, 10, 50)[None, :, None], jnp.float32)
    out = laplacian.laplacian_normalize(g, levels=4)
    assert out.shape == g.shape and bool(jnp.all(jnp.isfinite(out)))
    transform = laplacian.scale_by_laplacian_pyramid((37, 50, 3))
    flat, _ = transform.update(g.reshape(-1), transform.init(None))
    np.testing.assert_allclose(flat.reshape(g.shape), out, rtol=1e-5)
    assert np.asarray(laplacian.laplacian_normalize(g * 1000.0)) == pytest.approx(np.asarray(out), rel=1e-3, abs=1e-3)
    lap = dreamer.with_settings(octaves=1, steps=2, normalize="laplacian")
    assert lap.tile_objective is dreamer.tile_objective
    assert np.abs(lap(cat_small) - cat_small).mean() > 0.5


@pytest.mark.parametrize("bad,match", [
    (dict(octaves=0), "octaves"), (dict(steps=1.5), "steps"), (dict(step_size=-1.0), "step_size"),
    (dict(octave_scale=1.0), "octave_scale"), (dict(normalize="l2"), "normalize"), (dict(tile=8), "tile"),
    (dict(jitter=-1), "jitter"), (dict(depthwise="fft"), "depthwise"),
    (dict(jitter=2**31 - 1), "jitter must be at most 2147483646 pixels"), (dict(jitter=10**20), "jitter"),
    (dict(precision="float16"), "precision='float16'; choose one of float32, bfloat16"),
    (dict(precision="auto"), "precision='auto'; choose one of float32, bfloat16"),
    (dict(seed=-1), r"seed must be an integer >= 0, got -1"), (dict(seed=1.5), "seed"), (dict(seed=True), "seed"),
])
def test_settings_are_validated(bad, match):
    with pytest.raises(InputError, match=match):
        DreamSettings(**bad)


class _PerImage(gd.dream.Objective):
    """A Lucid-style objective: one value per image of the batch, shape (1,), not a scalar."""

    layers = ("block1",)

    def __call__(self, activations):
        return activations["block1"][..., 3].mean(axis=(1, 2))

    def describe(self):
        return {"per_image": 3}


def test_an_objective_that_returns_no_scalar_is_an_input_error(params, cat_small):
    # was a TypeError from JAX's grad ("Gradient only defined for scalar-output functions") at the first step
    for objective in (_PerImage(), _PerImage() + gd.dream.layer("block2")):
        with pytest.raises(InputError, match=r"must return a scalar.*shape \(1,\)"):
            Dreamer(objective, params=params, tile=64, octaves=1, steps=1)(cat_small)


def test_bad_images_and_layers(dreamer, params):
    with pytest.raises(InputError, match="RGB"):
        dreamer(np.zeros((32, 32, 6)))
    with pytest.raises(InputError, match="at least 16"):
        dreamer(np.zeros((1, 1, 3)))
    with pytest.raises(InputError, match="unknown layer 'block16'.*head"):
        Dreamer("block16", params=params, tile=64)
    with pytest.raises(InputError, match=r"values lie in \[-1, 300\]"):
        dreamer(np.concatenate([np.full((32, 16, 3), -1.0), np.full((32, 16, 3), 300.0)], axis=1))


def test_dream_checks_the_image_and_the_tile_as_a_dreamer_does(params, cat_small):
    # dream() fitted the tile to np.shape(image) before anything was checked: a flat array was an
    # IndexError, and a fractional tile was truncated (tile=100.7 dreamed in 96-pixel tiles)
    with pytest.raises(InputError, match="RGB"):
        dream(np.zeros(100), "block3", params=params)
    with pytest.raises(InputError, match="tile must be an integer >= 32, got 100.7"):
        dream(cat_small, "block3", params=params, tile=100.7, octaves=1, steps=1)


def test_a_float_image_in_0_1_is_dreamed_as_0_255_and_given_back_in_0_1(dreamer, cat_small):
    unit = cat_small.astype(np.float32) / 255.0  # scikit-image's img_as_float convention
    out = dreamer(unit)
    assert out.min() >= 0.0 and out.max() <= 1.0
    # the same image on the 0..255 scale, to the bit (unit * 255 is not cat_small to the bit, and
    # ascent steps amplify a last-bit difference differently on different CPUs)
    np.testing.assert_allclose(out * 255.0, dreamer(unit * np.float32(255.0)), atol=0.05)


def test_octave_shapes_go_coarse_to_fine():
    assert deepdream.octave_shapes((100, 140), octaves=3, octave_scale=1.4) == [(51, 71), (71, 100), (100, 140)]
    assert deepdream.octave_shapes((20, 20), octaves=3, octave_scale=2.0)[0] == (16, 16)
    # 1e10**39 overflows a float: an OverflowError traceback after the network was loaded
    assert deepdream.octave_shapes((20, 30), octaves=40, octave_scale=1e10)[:2] == [(16, 24), (16, 24)]
    # a strip keeps its shape at every octave: clamped side by side, 20 x 256 went down to 16 x 16
    for h, w in deepdream.octave_shapes((20, 256), octaves=8, octave_scale=1.4):
        assert min(h, w) >= 16 and abs(w / h - 256 / 20) < 0.02 * 256 / 20


def test_metadata_names_everything(dreamer):
    meta = dreamer.metadata()
    for key in ("gdtools_version", "objective", "octaves", "octave_scale", "steps", "step_size", "jitter",
                "tile", "normalize", "seed", "backend", "precision"):
        assert key in meta
    assert meta["precision"] == "float32"  # the default on every backend
    assert meta["objective"] == {"layer": "block3"} and meta["gdtools_version"] == gd.__version__


def test_compilation_cache_is_set_by_the_dream_not_by_import(tmp_path):
    import os
    import subprocess
    import sys

    code = ("import jax, gdtools, gdtools.dream; before = jax.config.jax_compilation_cache_dir; "
            "from gdtools.dream.compilation_cache import enable_compilation_cache; "
            "used = enable_compilation_cache(); print(before, used, jax.config.jax_compilation_cache_dir)")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    before, used, after = out.split()
    assert before == "None"
    assert used == after == str(tmp_path / "gdtools" / "jax")
    env["JAX_COMPILATION_CACHE_DIR"] = str(tmp_path / "mine")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split()[1:] == [str(tmp_path / "mine")] * 2  # a cache the user chose is kept


def test_the_cpu_compiled_network_agrees_with_the_plain_jit_and_inside_a_trace(dreamer):
    # Called directly, the tile objective runs an ahead-of-time executable compiled with the CPU
    # options (512-bit vectors); inside another trace it falls back to the plain jit. Both agree.
    objective = dreamer.tile_objective
    if jax.default_backend() == "cpu":
        assert tiling._compiler_options("cpu") == tiling.CPU_COMPILER_OPTIONS
    image = jnp.asarray(np.random.default_rng(1).uniform(0, 255, (64, 64, 3)), jnp.float32)
    value, grad = objective(image)
    if jax.default_backend() == "cpu":
        assert (image.shape, str(image.dtype)) in objective._executables  # the direct call went AOT
    plain_value, plain_grad = objective._value_and_grad(objective.params, image)
    traced_value, traced_grad = jax.jit(objective)(image)
    for v, g in ((plain_value, plain_grad), (traced_value, traced_grad)):
        assert float(v) == pytest.approx(float(value), rel=1e-5)
        np.testing.assert_allclose(g, grad, rtol=1e-3, atol=1e-4 * float(jnp.max(jnp.abs(grad))))
    assert tiling._compiler_options("gpu") is None


def test_a_dream_stopped_in_a_coarse_octave_keeps_the_full_resolution_original(dreamer, cat_small):
    # with a tiny step the detail dreamed is next to nothing: stopping in the first (coarse) octave
    # gives the original back, not an upsample of its coarse copy
    gentle = dreamer.with_settings(step_size=1e-3)
    seen = []
    out = gentle(cat_small, callback=lambda p: seen.append(p) or True)
    assert len(seen) == 1 and seen[0].octave == 0 and seen[0].shape == (46, 69, 3)
    assert out.shape == cat_small.shape
    assert np.abs(out - cat_small).max() < 0.5
    # with a real step, the stopped dream is the original plus (smooth, upsampled) dreamed detail
    stopped = dreamer(cat_small, callback=lambda p: p.octave == 0 and p.step == 2)
    assert 0.1 < np.abs(stopped - cat_small).mean() < np.abs(dreamer(cat_small) - cat_small).mean()


def test_the_network_computes_in_float32_unless_bfloat16_is_asked_for(params):
    from gdtools.cli.dream import add_parser
    from gdtools.dream.efficientnet import PRECISIONS

    assert DreamSettings().precision == "float32"
    assert tiling.TileObjective(deepdream.as_objective("block3"), params=params, tile=32).precision == "float32"
    import argparse

    parser = add_parser(argparse.ArgumentParser().add_subparsers())
    action = next(a for a in parser._actions if a.dest == "precision")
    assert tuple(action.choices) == PRECISIONS and action.default == "float32"  # the CLI offers the library's


def test_a_bfloat16_network_gives_nearly_float32s_value_and_gradient(params, cat_small, full_float32):
    from gdtools.dream import objectives

    piece = jnp.asarray(cat_small[:64, :64])
    exact, rough = (tiling.TileObjective(objectives.layer("block8"), params=params, tile=64, precision=p)
                    for p in ("float32", "bfloat16"))
    (value, grad), (rough_value, rough_grad) = exact(piece), rough(piece)
    assert rough_value.dtype == rough_grad.dtype == jnp.float32  # the image and the objective stay float32
    assert float(rough_value) == pytest.approx(float(value), rel=0.01)  # measured 0.2%
    assert np.corrcoef(np.ravel(grad), np.ravel(rough_grad))[0, 1] > 0.8  # measured 0.90
    # and it really computed in bfloat16: the gradient is not float32's to float32's precision
    assert not np.allclose(rough_grad, grad, rtol=1e-3, atol=1e-3 * float(jnp.max(jnp.abs(grad))))
    assert rough.precision == "bfloat16" and "bf16" in str(jax.make_jaxpr(rough._value_and_grad)(params, piece))


def test_a_long_thin_guide_is_not_shrunk_below_16_pixels(dreamer, monkeypatch):
    # a 2000 x 16 guide passed the load's check, then went to the network as 512 x 4
    seen = []
    real = deepdream.efficientnet.features

    def features(params, x, **kwargs):
        seen.append(x.shape)
        return real(params, x, **kwargs)

    monkeypatch.setattr(deepdream.efficientnet, "features", features)
    dreamer._guide_features("block3", np.full((16, 2000, 3), 128.0, np.float32))
    assert seen[-1][1:3] == (16, 2000)
    dreamer._guide_features("block3", np.full((600, 900, 3), 128.0, np.float32))
    assert max(seen[-1][1:3]) == deepdream.GUIDE_MAX_SIDE  # an ordinary guide is shrunk as before


def test_an_unknown_setting_or_settings_of_the_wrong_kind_are_input_errors(params):
    # Dreamer(foo=1) was Python's TypeError, Dreamer(settings={...}) an AttributeError deep inside
    with pytest.raises(gd.InputError, match="unknown dream setting 'foo'.*octaves"):
        deepdream.Dreamer("block3", params=params, foo=1)
    with pytest.raises(gd.InputError, match="settings must be a DreamSettings, got dict"):
        deepdream.Dreamer("block3", params=params, settings={"octaves": 2})
    dreamer = deepdream.Dreamer("block3", params=params, octaves=2)
    with pytest.raises(gd.InputError, match="unknown dream setting 'octave'"):
        dreamer.with_settings(octave=3)
    assert dreamer.with_settings(steps=3).settings.steps == 3
