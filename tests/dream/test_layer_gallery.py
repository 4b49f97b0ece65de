import numpy as np
import pytest

from gdtools.dream import layer_gallery as gallery_module
from gdtools.errors import InputError


def test_labelled_grid_places_cells_and_captions():
    cells = [np.full((30, 40, 3), value, np.float32) for value in (0.0, 100.0, 200.0)]
    grid = gallery_module.labelled_grid(cells, ["a", "b", "c"], columns=2)
    caption = (grid.shape[0] - 2 * 30) // 2
    assert grid.shape[1] == 80 and caption > 0 and grid.shape[0] == 2 * (30 + caption)
    np.testing.assert_array_equal(grid[:30, :40], 0.0)
    np.testing.assert_array_equal(grid[:30, 40:], 100.0)
    np.testing.assert_array_equal(grid[30 + caption : 60 + caption, :40], 200.0)
    strip = grid[30:30 + caption, :40]
    assert strip.min() < 128 < strip.max()  # dark text on white
    np.testing.assert_array_equal(grid[30 + caption :, 40:], 255.0)  # the empty cell stays white


def test_a_caption_stays_under_its_own_cell_however_narrow():
    # the font was sized by the cell's height alone: under a narrow cell a long label ran into the
    # neighbouring captions (and off the sheet on the left)
    cells = [np.zeros((200, 40, 3), np.float32)] * 3
    grid = gallery_module.labelled_grid(cells, ["", "block12 (partly)", ""], columns=3)
    strips = grid[200:]
    assert strips[:, 40:80].min() < 128  # the label is there ...
    np.testing.assert_array_equal(strips[:, :40], 255.0)  # ... and its neighbours' captions stay blank
    np.testing.assert_array_equal(strips[:, 80:], 255.0)


def test_gallery_validates_its_layers():
    with pytest.raises(InputError, match="layers"):
        gallery_module.gallery(np.zeros((32, 32, 3)), layers="block3")
    with pytest.raises(InputError, match="labels"):
        gallery_module.labelled_grid([np.zeros((4, 4, 3))], ["a", "b"])


def test_default_gallery_goes_from_low_to_high():
    from gdtools.dream import efficientnet, weights

    order = [info.name for info in efficientnet.layer_table(weights.pretrained_params())]
    positions = [order.index(name) for name in gallery_module.GALLERY_LAYERS]
    assert positions == sorted(positions) and positions[0] == 0


def test_a_0_1_image_makes_the_same_gallery_as_its_0_255_self_in_its_own_range(params, cat_small, tmp_path):
    from gdtools.dream.images import load_image, save_image
    from gdtools.dream.layer_gallery import gallery

    settings = dict(layers=["block3"], params=params, tile=64, octaves=1, steps=2, jitter=4)
    unit = gallery(cat_small.astype(np.float32) / 255.0, **settings)
    plain = gallery(cat_small, **settings)
    assert unit.max() <= 1.0 and plain.max() > 100  # each in its input's range, as dream() gives back
    assert np.abs(255.0 * unit - plain).max() <= 1.0  # the grid is drawn in whole levels
    save_image(tmp_path / "unit.png", unit)  # saved as the picture it is, not a black one
    assert np.abs(load_image(tmp_path / "unit.png") - plain).max() <= 1.0


def test_a_nearly_black_0_255_image_is_dreamed_as_dream_does(params):
    # a uint8 night shot (every value 0 or 1) was turned into floats on the 0..255 scale and then
    # taken for a [0, 1] image by each layer's dream: the dreamed cells came back black
    from gdtools.dream.deepdream import dream
    from gdtools.dream.layer_gallery import gallery

    night = np.zeros((48, 48, 3), np.uint8)
    night[::7] = 1
    settings = dict(params=params, tile=48, octaves=1, steps=2, jitter=4, step_size=3.0)
    grid = gallery(night, layers=["block3"], **settings)
    expected = np.clip(np.rint(dream(night, "block3", **settings)), 0, 255)
    np.testing.assert_allclose(grid[:48, 48:96], expected, atol=1.0)


def test_every_gallery_layer_is_checked_before_any_is_dreamed(params, monkeypatch):
    from gdtools.dream.deepdream import Dreamer

    def refuse(*args, **kwargs):
        raise AssertionError("a layer was dreamed before the typo was found")

    monkeypatch.setattr(Dreamer, "run_octave", refuse)
    with pytest.raises(InputError, match="unknown layer 'blokc12'"):
        gallery_module.gallery(np.zeros((32, 32, 3)), layers=["block2", "block9", "blokc12"], params=params,
                               tile=64, octaves=1, steps=1)
    with pytest.raises(InputError, match="layer"):
        gallery_module.gallery(np.zeros((32, 32, 3)), layers=["block2", 7], params=params, tile=64)
    from gdtools.dream import objectives

    # an objective passed the check, was dreamed, and then the grid failed on it as a caption (TypeError)
    with pytest.raises(InputError, match="layer names"):
        gallery_module.gallery(np.zeros((32, 32, 3)), layers=["block2", objectives.channels("block9", [3])],
                               params=params, tile=64, octaves=1, steps=1)
    # the same dream twice; an interrupted CLI run recorded only the layers up to the first 'stem'
    with pytest.raises(InputError, match="name 'stem' more than once"):
        gallery_module.gallery(np.zeros((32, 32, 3)), layers=["stem", "block2", "stem"], params=params, tile=64)
    for columns in (-1, 0, 2.5):  # were a ValueError or TypeError from Pillow after every layer was dreamed
        with pytest.raises(InputError, match=f"columns must be a positive integer, got {columns}"):
            gallery_module.gallery(np.zeros((32, 32, 3)), layers=["block2"], params=params, columns=columns)


def test_a_callback_returning_true_stops_the_gallery_after_the_layer_it_is_in(params, cat_small):
    from gdtools.dream.layer_gallery import gallery

    seen = []

    def stop_in_the_second_layer(name, progress):
        seen.append(name)
        return name == "block3"

    settings = dict(params=params, tile=64, octaves=1, steps=2, jitter=4)
    partial = gallery(cat_small, layers=["stem", "block3", "block4"], callback=stop_in_the_second_layer, **settings)
    assert seen == ["stem", "stem", "block3"]
    full = gallery(cat_small, layers=["stem", "block3", "block4"], **settings)
    # 2 x 2 cells: input, stem / block3 (one step of it), and no block4
    height, width = cat_small.shape[:2]
    assert partial.shape == full.shape
    row = partial.shape[0] // 2
    np.testing.assert_array_equal(partial[:row], full[:row])
    assert np.abs(partial[row : row + height, :width] - full[row : row + height, :width]).max() > 0
    assert (partial[row:, width:] == 255).all() and (full[row:, width:] != 255).any()


def test_a_layer_stopped_before_its_last_step_is_labelled_partly(params, cat_small, monkeypatch):
    from gdtools.dream import layer_gallery

    seen = []
    real = layer_gallery.labelled_grid
    monkeypatch.setattr(layer_gallery, "labelled_grid", lambda cells, labels, **kw: seen.append(labels) or real(cells, labels, **kw))
    settings = dict(params=params, tile=64, octaves=1, steps=2, jitter=4, layers=["stem", "block3"])
    steps = []

    def stop_at(count):
        return lambda name, progress: steps.append(name) or len(steps) == count

    layer_gallery.gallery(cat_small, callback=stop_at(3), **settings)  # block3's first of two steps
    layer_gallery.gallery(cat_small, callback=(steps.clear() or stop_at(2)), **settings)  # stem's last step
    assert seen == [["input", "stem", "block3 (partly)"], ["input", "stem"]]
