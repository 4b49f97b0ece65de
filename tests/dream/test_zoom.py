import numpy as np
import pytest
from PIL import Image

from gdtools.dream import zoom
from gdtools.errors import InputError


def test_zoom_in_magnifies_the_centre():
    image = np.zeros((40, 60, 3), np.float32)
    image[15:25, 25:35] = 200.0  # a 10 px square in the middle
    zoomed = zoom.zoom_in(image, 2.0)
    assert zoomed.shape == image.shape
    assert (zoomed[..., 0] > 100).sum() == pytest.approx(4 * 100, rel=0.15)  # twice as wide and tall
    np.testing.assert_allclose(zoom.zoom_in(image, 1.0), image, atol=1e-3)


def test_gif_has_every_frame(tmp_path):
    frames = [np.full((20, 20, 3), 50.0 * k, np.float32) for k in range(4)]
    zoom.save_gif(tmp_path / "z.gif", frames, frame_ms=50)
    with Image.open(tmp_path / "z.gif") as gif:
        assert gif.n_frames == 4 and gif.info["loop"] == 0
    with pytest.raises(InputError):
        zoom.save_gif(tmp_path / "none.gif", [])


@pytest.mark.parametrize("bad", [dict(frames=0), dict(frames=2.5), dict(zoom=0.5), dict(zoom=3.0)])
def test_zoom_frames_validates(bad):
    with pytest.raises(InputError):
        next(zoom.zoom_frames(np.zeros((32, 32, 3)), "block3", **bad))


def test_a_0_1_image_makes_the_same_frames_as_its_0_255_self(params, cat_small):
    from gdtools.dream.zoom import zoom_frames

    settings = dict(params=params, tile=64, octaves=1, steps=2, jitter=4, frames=2)
    unit = list(zoom_frames(cat_small.astype(np.float32) / 255.0, "block3", **settings))
    plain = list(zoom_frames(cat_small, "block3", **settings))
    for a, b in zip(unit, plain):  # each in its input's range, as dream() gives back
        assert a.max() <= 1.0 and b.max() > 100
        np.testing.assert_allclose(255.0 * a, b, atol=0.05)


def test_a_gif_of_0_1_frames_is_not_black(tmp_path):
    from PIL import Image

    from gdtools.dream.zoom import save_gif

    frame = np.linspace(0.0, 1.0, 32 * 32 * 3, dtype=np.float32).reshape(32, 32, 3)
    save_gif(tmp_path / "unit.gif", [frame, frame])
    with Image.open(tmp_path / "unit.gif") as gif:
        assert np.asarray(gif.convert("RGB")).max() >= 250


def test_a_gif_that_cannot_be_written_is_an_input_error(tmp_path):
    (tmp_path / "plain").write_bytes(b"")
    with pytest.raises(InputError, match="cannot write"):
        zoom.save_gif(tmp_path / "plain" / "z.gif", [np.zeros((20, 20, 3))])
