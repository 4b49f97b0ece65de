import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image
from skimage import data

from gdtools.dream import classify, efficientnet, images
from gdtools.errors import InputError


@pytest.mark.parametrize("kernel,stride,size", [(3, 1, 9), (3, 2, 10), (5, 2, 11), (5, 1, 8), (3, 2, 7)])
def test_depthwise_shifts_agree_with_grouped_convolution(kernel, stride, size, full_float32):
    rng = np.random.default_rng(kernel * 100 + stride * 10 + size)
    x = jnp.asarray(rng.normal(size=(2, size, size + 3, 6)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(kernel, kernel, 6)), jnp.float32)

    @jax.jit
    def both(v):
        conv = efficientnet.depthwise_conv(v, w, stride=stride, method="conv")
        shifts = efficientnet.depthwise_conv(v, w, stride=stride, method="shifts")
        # and their input gradients, which the dream uses
        g_conv = jax.grad(lambda u: jnp.sum(efficientnet.depthwise_conv(u, w, stride=stride, method="conv") ** 2))(v)
        g_shift = jax.grad(lambda u: jnp.sum(efficientnet.depthwise_conv(u, w, stride=stride, method="shifts") ** 2))(v)
        return conv, shifts, g_conv, g_shift

    conv, shifts, g_conv, g_shift = both(x)
    assert conv.shape == shifts.shape
    np.testing.assert_allclose(shifts, conv, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(g_shift, g_conv, rtol=1e-3, atol=1e-3)


def test_whole_network_agrees_between_depthwise_forms(params, full_float32):
    x = jnp.asarray(np.random.default_rng(1).uniform(-1, 1, size=(1, 45, 61, 3)), jnp.float32)
    features = jax.jit(efficientnet.features, static_argnames=("layer", "depthwise"))
    a = features(params, x, layer="block6", depthwise="conv")
    b = features(params, x, layer="block6", depthwise="shifts")
    np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-3)


def test_auto_picks_shifts():
    assert efficientnet.resolve_depthwise("auto") == "shifts"
    assert efficientnet.resolve_depthwise("conv") == "conv"
    with pytest.raises(InputError, match="depthwise"):
        efficientnet.resolve_depthwise("fft")


def test_tf_same_padding():
    assert efficientnet.same_padding(224, 3, 2) == (0, 1)  # TF pads the extra pixel at the end
    assert efficientnet.same_padding(225, 3, 2) == (1, 1)
    assert efficientnet.same_padding(10, 5, 1) == (2, 2)
    assert efficientnet.same_padding(1, 5, 2) == (2, 2)


def test_layer_table_follows_the_weights(params):
    table = efficientnet.layer_table(params)
    assert [info.name for info in table] == ["stem"] + [f"block{i}" for i in range(16)] + ["head"]
    by_name = {info.name: info for info in table}
    assert (by_name["stem"].channels, by_name["stem"].stride) == (32, 2)
    assert (by_name["block8"].channels, by_name["block8"].stride) == (112, 16)
    assert (by_name["block15"].channels, by_name["block15"].stride) == (320, 32)
    assert by_name["head"].channels == 1280


def test_activation_shapes_match_the_table(params):
    x = jnp.zeros((1, 64, 64, 3))
    acts = jax.jit(lambda p, v: efficientnet.activations(p, v, layers=("stem", "block3", "block11")))(params, x)
    for info in efficientnet.layer_table(params):
        if info.name in acts:
            assert acts[info.name].shape == (1, 64 // info.stride, 64 // info.stride, info.channels)


def test_unknown_layer_lists_the_layers(params):
    with pytest.raises(InputError, match="unknown layer 'block99'.*stem, block0, block1"):
        efficientnet.check_layer(params, "block99")
    with pytest.raises(InputError, match="head"):
        efficientnet.activations(params, jnp.zeros((1, 32, 32, 3)), layers=("stem", "conv5"))


def test_cat_is_a_cat_and_coffee_is_espresso():
    cat = classify(data.chelsea(), top=5)
    assert 281 <= cat[0][0] <= 285, cat
    assert len(cat) == 5 and cat[0][2] >= cat[1][2] >= cat[4][2]
    assert sum(p for _, _, p in classify(data.chelsea(), top=1000)) == pytest.approx(1.0, abs=1e-3)
    coffee = classify(data.coffee(), top=3)
    assert coffee[0][:2] == (967, "espresso"), coffee


def test_classify_validates(tmp_path):
    with pytest.raises(InputError, match="top"):
        classify(data.coffee(), top=0)
    with pytest.raises(InputError, match="RGB"):
        classify(np.zeros((20, 20, 7)))
    gray = data.camera()
    assert classify(gray, top=3) == classify(np.repeat(gray[..., None], 3, axis=-1), top=3)


def test_depthwise_kernel_gradient_of_the_shifted_form(full_float32):
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.normal(size=(1, 9, 8, 4)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(5, 5, 4)), jnp.float32)
    for stride in (1, 2):
        grads = [jax.jit(jax.grad(lambda v, m=m: jnp.sum(jnp.sin(efficientnet.depthwise_conv(x, v, stride=stride, method=m)))))(w)
                 for m in ("conv", "shifts")]
        np.testing.assert_allclose(grads[1], grads[0], rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("height,width", [(10, 10), (9, 12), (7, 5)])
def test_stem_as_patches_agrees_with_the_convolution(height, width, full_float32):
    rng = np.random.default_rng(height * 31 + width)
    x = jnp.asarray(rng.normal(size=(2, height, width, 3)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(3, 3, 3, 8)), jnp.float32)

    @jax.jit
    def both(v):
        outs = [efficientnet.stem_conv(v, w, method=m) for m in ("conv", "shifts")]
        grads = [jax.grad(lambda u, m=m: jnp.sum(efficientnet.stem_conv(u, w, method=m) ** 2))(v)
                 for m in ("conv", "shifts")]
        return outs, grads

    (conv, patches), (g_conv, g_patches) = both(x)
    assert conv.shape == patches.shape == (2, -(-height // 2), -(-width // 2), 8)
    np.testing.assert_allclose(patches, conv, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(g_patches, g_conv, rtol=1e-3, atol=1e-3)


def test_classify_takes_0_1_images_and_bytes_paths_and_refuses_what_dream_refuses(params, tmp_path):
    cat = images.fit_max_side(data.chelsea().astype(np.float32), 64)
    plain = classify(cat, top=3, params=params)
    unit = classify(cat / 255.0, top=3, params=params)  # scikit-image's img_as_float convention
    assert [c[0] for c in unit] == [c[0] for c in plain]
    assert [c[2] for c in unit] == pytest.approx([c[2] for c in plain], abs=1e-3)
    Image.fromarray(images.to_uint8(cat)).save(tmp_path / "cat.png")
    from_bytes = classify(os.fsencode(tmp_path / "cat.png"), top=3, params=params)
    assert [c[0] for c in from_bytes] == [c[0] for c in plain]
    for bad, match in ((np.full((32, 32, 3), np.nan), "non-finite"),
                       (np.full((32, 32, 3), 300.0), r"values lie in \[300, 300\]"),
                       (np.full((32, 32, 3), -2.0), "values lie in"),
                       (np.zeros((8, 8, 3)), "8x8 pixels; DeepDream needs at least 16")):
        with pytest.raises(InputError, match=match):
            classify(bad, params=params)
