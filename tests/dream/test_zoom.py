import os

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
    # at the call: a generator's checks waited for the first frame to be asked for
    with pytest.raises(InputError):
        zoom.zoom_frames(np.zeros((32, 32, 3)), "block3", **bad)
    with pytest.raises(InputError, match="block3"):
        zoom.zoom_frames(np.zeros((32, 32, 3)), "blokc3")


def test_numpy_numbers_are_numbers_to_the_dream_functions(params, cat_small, tmp_path):
    # np.int64 frames, max_side and top were refused as "not an integer"
    zoom.check_zoom(frames=np.int64(2), zoom=np.float32(1.05))
    from gdtools.dream import classification, images

    path = tmp_path / "cat.png"
    Image.fromarray(np.asarray(cat_small, dtype=np.uint8)).save(path)
    assert max(images.load_image(path, max_side=np.int64(40)).shape[:2]) == 40
    assert len(classification.classify(cat_small, top=np.int64(2), params=params)) == 2


def test_a_0_1_image_makes_the_same_frames_as_its_0_255_self(params, cat_small):
    from gdtools.dream.zoom import zoom_frames

    settings = dict(params=params, tile=64, octaves=1, steps=2, jitter=4, frames=2)
    unit = list(zoom_frames(cat_small.astype(np.float32) / 255.0, "block3", **settings))
    plain = list(zoom_frames(cat_small, "block3", **settings))
    for a, b in zip(unit, plain):  # each in its input's range, as dream() gives back
        assert a.max() <= 1.0 and b.max() > 100
        np.testing.assert_allclose(255.0 * a, b, atol=0.05)


def test_a_nearly_black_0_255_image_makes_the_frames_dream_makes(params):
    # a uint8 night shot (every value 0 or 1) was turned into floats on the 0..255 scale and then
    # taken for a [0, 1] image by each frame's dream: the dream's detail came back divided by 255
    from gdtools.dream.deepdream import dream
    from gdtools.dream.zoom import zoom_frames

    night = np.zeros((48, 48, 3), np.uint8)
    night[::7] = 1
    settings = dict(params=params, tile=48, octaves=1, steps=2, jitter=4, step_size=3.0)
    frame = next(zoom_frames(night, "block3", frames=1, **settings))
    np.testing.assert_allclose(frame, dream(night, "block3", **settings), atol=1e-3)
    assert frame.max() > 10


def test_a_gif_of_0_1_frames_is_not_black(tmp_path):
    from PIL import Image

    from gdtools.dream.zoom import save_gif

    frame = np.linspace(0.0, 1.0, 32 * 32 * 3, dtype=np.float32).reshape(32, 32, 3)
    save_gif(tmp_path / "unit.gif", [frame, frame])
    with Image.open(tmp_path / "unit.gif") as gif:
        assert np.asarray(gif.convert("RGB")).max() >= 250


def test_a_gif_is_a_gif_whatever_the_extension(tmp_path):
    # Pillow chose the format by the extension: no extension was a ValueError and .jpg or .bmp a
    # KeyError from deep in Pillow; .png wrote an animated PNG and .pdf a PDF
    for name in ("zoom", "zoom.jpg", "zoom.bmp", "zoom.png"):
        zoom.save_gif(tmp_path / name, [np.zeros((20, 20, 3)), np.full((20, 20, 3), 200.0)])
        with Image.open(tmp_path / name) as gif:
            assert gif.format == "GIF" and gif.n_frames == 2


def test_a_gif_that_cannot_be_written_is_an_input_error(tmp_path):
    (tmp_path / "plain").write_bytes(b"")
    with pytest.raises(InputError, match="cannot write"):
        zoom.save_gif(tmp_path / "plain" / "z.gif", [np.zeros((20, 20, 3))])


def test_frames_of_another_size_than_the_first_are_refused(tmp_path):
    # the GIF took the first frame's size and cropped the others to it, silently
    frames = [np.full((20, 20, 3), 50.0), np.full((20, 20, 3), 90.0), np.full((30, 40, 3), 200.0)]
    with pytest.raises(InputError, match=r"frame 2 is 40x30 pixels, frame 0 20x20"):
        zoom.save_gif(tmp_path / "z.gif", frames)
    assert not (tmp_path / "z.gif").exists()


def test_a_callback_returning_true_stops_after_the_frame_it_is_in(params, cat_small):
    from gdtools.dream.zoom import zoom_frames

    calls = []

    def stop_in_frame_1(frame, progress):
        calls.append((frame, progress.step))
        return frame == 1 and progress.step == 0

    frames = list(zoom_frames(cat_small, "block3", params=params, tile=64, octaves=1, steps=3, jitter=4,
                              frames=4, callback=stop_in_frame_1))
    assert len(frames) == 2 and calls == [(0, 0), (0, 1), (0, 2), (1, 0)]
    assert frames[1].shape == cat_small.shape


def test_stale_frames_of_a_longer_run_are_removed_and_nothing_else(tmp_path):
    from gdtools.dream.zoom import frame_file, remove_stale_frames

    for k in (0, 1, 2, 12000):
        frame_file(tmp_path, k).write_bytes(b"png")
    for name in ("frame_7.png", "frame_0003.jpg", "notes.txt"):
        (tmp_path / name).write_bytes(b"mine")
    (tmp_path / "frame_0005.png").mkdir()
    assert remove_stale_frames(tmp_path, keep=2) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frame_0000.png", "frame_0001.png", "frame_0003.jpg",
                                                          "frame_0005.png", "frame_7.png", "notes.txt"]


@pytest.mark.parametrize("path", [None, 3, np.zeros(2)])
def test_save_gif_names_a_path_that_is_not_one(path):
    with pytest.raises(InputError, match="named by a path"):
        zoom.save_gif(path, [np.zeros((20, 20, 3))])


def test_save_gif_warns_of_a_unit_range_frame_a_little_over_1_at_its_caller(tmp_path):
    frame = np.full((20, 20, 3), 0.5, dtype=np.float32)
    frame[0, 0] = 1.02
    with pytest.warns(UserWarning, match="written on the 0..255 scale") as caught:
        zoom.save_gif(tmp_path / "z.gif", [frame])
    assert caught[0].filename == __file__


def test_an_interrupted_gif_leaves_the_earlier_gif_whole_and_no_partial_file(tmp_path, ctrl_c_while_writing):
    path = tmp_path / "zoom.gif"
    zoom.save_gif(path, [np.full((20, 20, 3), 50.0 * k) for k in range(3)])
    ctrl_c_while_writing()
    with pytest.raises(KeyboardInterrupt):
        zoom.save_gif(path, [np.full((20, 20, 3), 200.0), np.full((20, 20, 3), 250.0)])
    with Image.open(path) as gif:
        assert gif.n_frames == 3
    assert os.listdir(tmp_path) == ["zoom.gif"]
