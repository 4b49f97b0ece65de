import jax.numpy as jnp
import numpy as np
import pytest

from gdtools.dream import efficientnet, objectives as obj
from gdtools.errors import InputError


@pytest.fixture
def acts():
    rng = np.random.default_rng(0)
    return {"block3": jnp.asarray(rng.normal(size=(1, 4, 4, 40)), jnp.float32),
            "block8": jnp.asarray(rng.normal(size=(1, 2, 2, 112)), jnp.float32)}


def test_layer_energy_is_the_mean_square(acts):
    assert float(obj.layer("block3")(acts)) == pytest.approx(float(jnp.mean(acts["block3"] ** 2)), rel=1e-6)


def test_channels_pick_their_channels(acts):
    expected = float(jnp.mean(acts["block8"][..., jnp.array([3, 17])] ** 2))
    assert float(obj.channels("block8", [3, 17])(acts)) == pytest.approx(expected, rel=1e-6)
    assert float(obj.channels("block8", 5)(acts)) == pytest.approx(float(jnp.mean(acts["block8"][..., 5] ** 2)), rel=1e-6)


def test_arithmetic_composes_like_lucid(acts):
    a, b = obj.layer("block3"), obj.channels("block8", [1])
    combined = 0.2 * a + 0.8 * b - a / 2
    assert combined.layers == ("block3", "block8")
    expected = 0.2 * float(a(acts)) + 0.8 * float(b(acts)) - 0.5 * float(a(acts))
    assert float(combined(acts)) == pytest.approx(expected, rel=1e-5)
    assert float((-a)(acts)) == pytest.approx(-float(a(acts)), rel=1e-6)
    assert sum([a, b])  # sum() starts from 0, which is absorbed
    described = combined.describe()
    assert [t["weight"] for t in described["sum"]] == [0.2, 0.8, -0.5]
    with pytest.raises(InputError):
        a * "two"
    with pytest.raises(InputError):
        a + 3
    # a channel listed twice counted twice in the mean, silently (--channels 3,3)
    with pytest.raises(InputError, match="channel 3 more than once"):
        obj.channels("block8", [3, 17, 3])


@pytest.mark.parametrize("weight", [float("nan"), float("inf"), -float("inf")])
def test_a_weight_that_is_not_finite_is_named_when_the_objective_is_built(weight):
    # was accepted, and the dream failed after compiling with "the objective returned a
    # non-finite value (nan or inf) at x0", which does not say that the weight is the problem
    with pytest.raises(InputError, match="weight"):
        obj.layer("block3") * weight
    with pytest.raises(InputError, match="weight"):
        weight * obj.layer("block3") + obj.layer("block8")


def test_check_against_the_network(params):
    table = efficientnet.layer_table(params)
    obj.channels("block8", [0, 111]).check(table)
    with pytest.raises(InputError, match="channel 112 is out of range for layer 'block8'.*0..111"):
        obj.channels("block8", [3, 112]).check(table)
    with pytest.raises(InputError, match="unknown layer 'mixed4a'.*block15"):
        (obj.layer("block3") + obj.layer("mixed4a")).check(table)
    with pytest.raises(InputError, match="integers"):
        obj.channels("block8", ["a"])
    with pytest.raises(InputError, match="layer"):
        obj.layer(8)


def test_guide_pulls_towards_the_best_matching_guide_feature(acts):
    guide_features = np.zeros((3, 40), np.float32)
    guide_features[1, 7] = 1.0
    guide = obj.guide("block3", np.zeros((20, 20, 3))).resolve(lambda layer, image: guide_features[None])
    x = acts["block3"].reshape(-1, 40)
    expected = float(jnp.mean(jnp.max(x @ guide_features.T, axis=1)))
    assert float(guide(acts)) == pytest.approx(expected, rel=1e-6)
    assert guide.describe()["guide"].startswith("sha256:")
    with pytest.raises(InputError, match="resolve"):
        obj.guide("block3", np.zeros((20, 20, 3)))(acts)


def test_guide_keeps_a_bounded_number_of_positions():
    big = np.ones((1, 100, 100, 8), np.float32)
    guide = obj.guide("stem", np.zeros((20, 20, 3))).resolve(lambda layer, image: big)
    assert guide.features.shape == (obj.MAX_GUIDE_POSITIONS, 8)


def test_a_0_1_guide_is_seen_on_the_0_255_scale_like_the_image(cat_small):
    seen = []

    def layer_features(layer, image):
        seen.append(image)
        return np.ones((1, 2, 2, 40), np.float32)

    unit = obj.guide("block3", cat_small / 255.0)
    plain = obj.guide("block3", cat_small)
    unit.resolve(layer_features)
    plain.resolve(layer_features)
    np.testing.assert_allclose(seen[0], seen[1], atol=1e-3)
    assert seen[0].max() > 100  # not a nearly black picture


def test_guide_images_are_checked_like_images():
    with pytest.raises(InputError, match="guide image contains non-finite values"):
        obj.guide("block3", np.full((20, 20, 3), np.inf))
    with pytest.raises(InputError, match=r"guide image values lie in \[0, 300\]"):
        obj.guide("block3", np.concatenate([np.zeros((20, 10, 3)), np.full((20, 10, 3), 300.0)], axis=1))
    with pytest.raises(InputError, match="guide image must be an RGB array"):
        obj.guide("block3", np.zeros((20, 20, 5)))
