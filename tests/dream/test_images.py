import os

import numpy as np
import pytest
from PIL import Image

from gdtools.dream import images
from gdtools.errors import InputError


def test_rgb_grayscale_rgba_palette_and_16_bit(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(images.load_image(tmp_path / "rgb.png"), rgb.astype(np.float32))

    Image.fromarray(rgb[..., 0]).save(tmp_path / "gray.png")
    gray = images.load_image(tmp_path / "gray.png")
    assert gray.shape == (20, 30, 3) and np.all(gray[..., 0] == gray[..., 2])

    rgba = np.dstack([rgb, np.full((20, 30), 0, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    np.testing.assert_allclose(images.load_image(tmp_path / "rgba.png"), 255.0)  # transparent over white

    Image.fromarray(rgb).convert("P").save(tmp_path / "palette.png")
    assert images.load_image(tmp_path / "palette.png").shape == (20, 30, 3)

    deep = (np.arange(20 * 30, dtype=np.uint16).reshape(20, 30) * 100)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    loaded = images.load_image(tmp_path / "deep.png")
    assert loaded.shape == (20, 30, 3) and 0 <= loaded.min() and loaded.max() <= 255
    np.testing.assert_allclose(loaded[..., 0], deep / 65535.0 * 255.0, atol=1e-3)


def test_corrupt_missing_and_tiny_files_are_input_errors(tmp_path):
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "ok.jpg")
    data = (tmp_path / "ok.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
    (tmp_path / "text.png").write_text("not an image")
    for name in ("cut.jpg", "text.png", "missing.png"):
        with pytest.raises(InputError, match="image"):
            images.load_image(tmp_path / name)
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(tmp_path / "dot.png")
    with pytest.raises(InputError, match="1x1 pixels.*at least 16"):
        images.load_image(tmp_path / "dot.png")


def test_a_20000_pixel_wide_image_is_shrunk_on_load(tmp_path):
    Image.fromarray(np.full((400, 20000, 3), 90, np.uint8)).save(tmp_path / "wide.png")
    loaded = images.load_image(tmp_path / "wide.png", max_side=1000)
    assert loaded.shape == (20, 1000, 3)
    np.testing.assert_allclose(loaded, 90.0, atol=0.5)
    with pytest.raises(InputError, match="max_side"):
        images.load_image(tmp_path / "wide.png", max_side=0)


def test_a_0_1_float_image_is_saved_on_the_0_255_scale_and_bad_arrays_are_input_errors(tmp_path):
    unit = np.linspace(0.0, 1.0, 20 * 30 * 3, dtype=np.float32).reshape(20, 30, 3)
    images.save_image(tmp_path / "unit.png", unit)
    np.testing.assert_allclose(images.load_image(tmp_path / "unit.png"), 255.0 * unit, atol=0.51)
    images.save_image(tmp_path / "plain.png", 255.0 * unit)
    np.testing.assert_array_equal(images.load_image(tmp_path / "plain.png"), images.load_image(tmp_path / "unit.png"))
    for bad in (np.zeros((20, 20)), np.zeros((20, 20, 4)), np.zeros(5)):
        with pytest.raises(InputError, match=r"RGB array \(height, width, 3\)"):
            images.save_image(tmp_path / "bad.png", bad)
    images.save_image(tmp_path / "meta.png", unit, metadata={"a": np.float32(1.5), "b": np.arange(2), "c": np.int64(3)})
    assert images.read_metadata(tmp_path / "meta.png") == {"a": 1.5, "b": [0, 1], "c": 3}
    with pytest.raises(InputError, match="metadata .* is not JSON data") as error:
        images.save_image(tmp_path / "meta.png", unit, metadata={"a": object()})
    # it read "cannot write 'meta.png': unknown image format (the metadata ... is not JSON data ...)"
    assert str(error.value).startswith("the metadata") and "format" not in str(error.value)
    # nan was written as black with only a RuntimeWarning; booleans and objects were read as numbers
    holed = unit.copy()
    holed[3, 4, 1] = np.nan
    with pytest.raises(InputError, match="holds 1 non-finite values"):
        images.save_image(tmp_path / "nan.png", holed)
    for odd in (unit > 0.5, unit.astype(object)):
        with pytest.raises(InputError, match=f"must hold numbers, got {odd.dtype}"):
            images.save_image(tmp_path / "odd.png", odd)
        with pytest.raises(InputError, match=f"must hold numbers .*got {odd.dtype}"):
            images.check_image(odd)


def test_gray_and_alpha_arrays_are_made_rgb_on_their_own_scale():
    gray = (np.arange(20 * 30) % 256).astype(np.uint8).reshape(20, 30)
    for shape in ((20, 30), (20, 30, 1)):
        rgb = images.check_image(gray.reshape(shape))
        assert rgb.shape == (20, 30, 3) and rgb.dtype == np.uint8
        np.testing.assert_array_equal(rgb, np.repeat(gray[..., None], 3, axis=-1))
    colour = np.full((20, 30, 3), 100, np.uint8)
    alpha = np.zeros((20, 30, 1), np.uint8)
    alpha[:, 15:] = 255
    rgba = images.check_image(np.concatenate([colour, alpha], axis=-1))  # left transparent, right opaque
    assert rgba.shape == (20, 30, 3) and rgba.dtype == np.uint8
    np.testing.assert_array_equal(rgba[:, :15], 255)  # over white, as a file with transparency is read
    np.testing.assert_array_equal(rgba[:, 15:], 100)
    half = images.check_image(np.concatenate([np.full((20, 30, 3), 0.2, np.float32),
                                               np.full((20, 30, 1), 0.5, np.float32)], axis=-1))
    np.testing.assert_allclose(half, 0.6, rtol=1e-6)  # a [0, 1] image: white is 1.0
    gray_alpha = images.check_image(np.stack([np.full((20, 30), 50.0), np.full((20, 30), 255.0)], axis=-1))
    assert gray_alpha.shape == (20, 30, 3)
    np.testing.assert_allclose(gray_alpha, 50.0)
    np.testing.assert_array_equal(images.check_image(colour), colour)
    for bad in (np.zeros((20, 30, 5)), np.zeros((2, 20, 30, 3)), np.zeros(30)):
        with pytest.raises(InputError, match=r"must be an RGB array \(height, width, 3\), grayscale"):
            images.check_image(bad)


def test_a_path_where_an_image_array_belongs_is_named_as_a_path(tmp_path):
    # np.asarray("cat.png") is a 0-d array: the message was "... got shape ()"
    for path in ("cat.png", tmp_path / "cat.png", b"cat.png"):
        with pytest.raises(InputError, match=r"must be an image array, got the path .*cat\.png.*load_image"):
            images.check_image(path)


def test_a_pillow_image_is_converted_as_a_file_is_read():
    # np.asarray of a palette image is its indices: a "P" image was dreamed as gray palette indices
    colours = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    for picture in (Image.fromarray(colours).convert("P"), Image.fromarray(colours).convert("RGBA"),
                    Image.fromarray(colours)):
        np.testing.assert_array_equal(images.check_image(picture), images.to_rgb_array(picture))
    palette = Image.fromarray(colours).convert("P")
    np.testing.assert_array_equal(images.check_image(palette), np.asarray(palette.convert("RGB")))
    dark = Image.fromarray(np.ones((20, 30, 3), np.uint8))  # on the 0..255 scale, not taken for [0, 1]
    assert not images.is_unit_range(images.check_image(dark))


def test_metadata_round_trip(tmp_path):
    meta = {"layer": "block8", "steps": 10, "gdtools_version": "x"}
    images.save_image(tmp_path / "out.png", np.full((20, 20, 3), 300.0), metadata=meta)
    assert images.read_metadata(tmp_path / "out.png") == meta
    assert np.asarray(Image.open(tmp_path / "out.png")).max() == 255  # clipped, not wrapped
    with Image.open(tmp_path / "out.png") as picture:
        assert picture.text["Software"].startswith("gdtools ")
    # .apng is a PNG too (Pillow writes one): it was written without the metadata
    images.save_image(tmp_path / "out.apng", np.zeros((20, 20, 3)), metadata=meta)
    assert images.read_metadata(tmp_path / "out.apng") == meta


def test_fit_max_side_keeps_the_aspect_ratio():
    image = np.zeros((300, 600, 3), np.float32)
    assert images.fit_max_side(image, 200).shape == (100, 200, 3)
    assert images.fit_max_side(image, 1000) is image


def test_exif_orientation_is_applied(tmp_path):
    # stored 160 wide and 80 tall, left half dark; Orientation 6 means "turn 90 degrees clockwise to view"
    stored = np.full((80, 160, 3), 230, np.uint8)
    stored[:, :80] = 20
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "portrait.jpg", exif=exif)
    upright = images.load_image(tmp_path / "portrait.jpg")
    assert upright.shape == (160, 80, 3)
    assert upright[:72].mean() < 60 and upright[88:].mean() > 190  # the dark half is now on top
    shrunk = images.load_image(tmp_path / "portrait.jpg", max_side=32)  # decoded at 1/4 by draft()
    assert shrunk.shape == (32, 16, 3)
    assert shrunk[:14].mean() < 60 and shrunk[18:].mean() > 190


def test_a_turned_photo_too_thin_once_shrunk_is_named_by_its_upright_size(tmp_path):
    # stored 300 wide and 40 tall, shown 40 wide and 300 tall (Orientation 6): the message said
    # "is 300x40 pixels, 16x119 once shrunk", two sizes of one picture in two orientations
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.full((40, 300, 3), 128, np.uint8)).save(tmp_path / "turned.jpg", exif=exif)
    with pytest.raises(InputError, match=r"is 40x300 pixels, \d+x100 once shrunk"):
        images.load_image(tmp_path / "turned.jpg", max_side=100)


def test_a_file_that_cannot_be_written_is_an_input_error(tmp_path):
    (tmp_path / "plain.png").write_bytes(b"")
    for path in (tmp_path / "plain.png" / "x.png", tmp_path / "missing" / "x.jpg"):
        with pytest.raises(InputError, match="cannot write"):
            images.save_image(path, np.zeros((20, 20, 3)))


def test_a_jpeg_over_pillows_pixel_limit_is_decoded_shrunk_when_draft_can(tmp_path, monkeypatch):
    # the limit lowered so that a small JPEG stands in for a 20000 x 10000 one
    Image.fromarray(np.full((200, 400, 3), 90, np.uint8)).save(tmp_path / "huge.jpg")
    Image.fromarray(np.full((200, 400, 3), 90, np.uint8)).save(tmp_path / "huge.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # refused over 2000 pixels; 400 x 200 / 8^2 = 1250
    loaded = images.load_image(tmp_path / "huge.jpg", max_side=32)
    assert loaded.shape == (16, 32, 3)
    np.testing.assert_allclose(loaded, 90.0, atol=3)
    for name, max_side in (("huge.jpg", None), ("huge.png", 32)):  # no draft to shrink it: refused
        with pytest.raises(InputError, match="too large to decode safely"):
            images.load_image(tmp_path / name, max_side=max_side)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # even at 1/8 a side, 1250 pixels are too many
    with pytest.raises(InputError, match="too large to decode safely"):
        images.load_image(tmp_path / "huge.jpg", max_side=32)


def test_a_long_jpeg_over_the_pixel_limit_is_named_by_its_own_size(tmp_path, monkeypatch):
    # opened through the draft() fallback: the message gives the file's size, not the drafted one
    Image.fromarray(np.full((120, 20000, 3), 90, np.uint8)).save(tmp_path / "strip.jpg")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10**6)
    with pytest.raises(InputError, match="is 20000x120 pixels, 1000x6 once shrunk .* a max_side of 2584 or more"):
        images.load_image(tmp_path / "strip.jpg", max_side=1000)
    assert images.load_image(tmp_path / "strip.jpg", max_side=2584).shape == (16, 2584, 3)


def test_a_nearly_black_file_is_not_taken_for_a_unit_range_image(tmp_path):
    from PIL import Image

    pixels = np.zeros((32, 32, 3), np.uint8)
    pixels[3, 4] = 1  # the brightest value: 1 of 255
    Image.fromarray(pixels).save(tmp_path / "dark.png")
    loaded = images.load_image(tmp_path / "dark.png")
    assert images.is_unit_range(loaded)  # read as floats, it looks like a [0, 1] image ...
    assert images.on_0_255(images.as_read(loaded)).max() == 1.0  # ... as_read keeps it on 0..255


def test_a_float_tiff_in_0_1_is_read_as_the_picture_it_is(tmp_path):
    # a 32-bit float file (mode F: scikit-image's img_as_float saved as TIFF) in [0, 1] was clipped
    # to 0..255 as it was, a black image, and gdtools dream dreamed on black
    gray = np.random.default_rng(0).uniform(0.2, 0.9, (20, 30)).astype(np.float32)
    Image.fromarray(gray).save(tmp_path / "unit.tif")
    np.testing.assert_allclose(images.load_image(tmp_path / "unit.tif")[..., 1], gray * 255.0, rtol=1e-5)
    Image.fromarray(gray * 255.0).save(tmp_path / "wide.tif")  # on the 0..255 scale already: as it is
    np.testing.assert_allclose(images.load_image(tmp_path / "wide.tif")[..., 1], gray * 255.0, rtol=1e-5)


@pytest.mark.parametrize("text", ["x", "[1, 2]"])
def test_metadata_that_is_not_gdtools_parameters_is_named(tmp_path, text):
    # another program's text under the key was a JSONDecodeError from deep in json
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text(images.METADATA_KEY, text)
    path = tmp_path / "other.png"
    Image.new("RGB", (4, 4)).save(path, pnginfo=info)
    with pytest.raises(InputError, match="not gdtools' parameters"):
        images.read_metadata(path)
    plain = tmp_path / "plain.png"
    Image.new("RGB", (4, 4)).save(plain)
    assert images.read_metadata(plain) == {}


def _profile_with_red_and_blue_swapped() -> bytes:
    """sRGB's ICC profile with its red and blue primaries exchanged: a stored (255, 0, 0) is blue
    on screen. (Stands in for a phone's Display P3 or a camera's Adobe RGB, which shift colours
    less visibly but the same way.)"""
    import struct

    from PIL import ImageCms

    profile = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    tags = {}
    for i in range(struct.unpack(">I", profile[128:132])[0]):
        name, offset, size = struct.unpack(">4sII", profile[132 + 12 * i : 144 + 12 * i])
        tags[name] = slice(offset, offset + size)
    red, blue = bytes(profile[tags[b"rXYZ"]]), bytes(profile[tags[b"bXYZ"]])
    profile[tags[b"rXYZ"]], profile[tags[b"bXYZ"]] = blue, red
    return bytes(profile)


def test_an_embedded_colour_profile_is_applied_as_a_viewer_shows_the_file(tmp_path):
    profile = _profile_with_red_and_blue_swapped()
    Image.new("RGB", (32, 32), (255, 0, 0)).save(tmp_path / "tagged.png", icc_profile=profile)
    Image.new("RGBA", (32, 32), (255, 0, 0, 255)).save(tmp_path / "tagged_rgba.png", icc_profile=profile)
    Image.new("RGB", (32, 32), (255, 0, 0)).save(tmp_path / "tagged.jpg", icc_profile=profile, quality=100)
    for name in ("tagged.png", "tagged_rgba.png", "tagged.jpg"):
        pixel = images.load_image(tmp_path / name)[0, 0]
        assert pixel[2] > 240 and pixel[0] < 15, (name, pixel)  # blue, as every viewer shows it
    assert images.check_image(Image.open(tmp_path / "tagged.png"))[0, 0, 2] > 240
    assert images.load_image(tmp_path / "tagged.jpg", max_side=16)[0, 0, 2] > 240  # decoded shrunk


def test_an_unusable_colour_profile_leaves_the_pixels_as_stored(tmp_path):
    Image.new("RGB", (32, 32), (255, 0, 0)).save(tmp_path / "broken.png", icc_profile=b"not a profile")
    np.testing.assert_array_equal(images.load_image(tmp_path / "broken.png")[0, 0], [255, 0, 0])


@pytest.mark.parametrize("path", [None, 5, np.zeros((20, 20, 3))])
def test_a_file_name_that_is_not_a_path_is_named_when_saving_and_reading_metadata(path):
    # were AttributeError ("'NoneType' object has no attribute 'read'") and TypeError
    with pytest.raises(InputError, match="named by a path"):
        images.read_metadata(path)
    with pytest.raises(InputError, match="named by a path"):
        images.save_image(path, np.zeros((20, 20, 3), np.uint8))


@pytest.mark.parametrize("mode", ["P", "CMYK", "1"])
def test_palette_cmyk_and_bilevel_pictures_shrink_before_the_float_conversion(tmp_path, monkeypatch, mode):
    # a palette PNG (or a CMYK JPEG) was converted to float32 RGB at full size before --max-side
    # shrank it: 12 bytes a pixel (2.4 GB for a 20,000 x 10,000 palette PNG) instead of 3
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (120, 200, 3), dtype=np.uint8))
    picture = rgb.convert(mode) if mode != "P" else rgb.quantize(16)
    path = tmp_path / ("in.jpg" if mode == "CMYK" else "in.png")
    picture.save(path)
    seen = []
    real = images.to_rgb_array
    monkeypatch.setattr(images, "to_rgb_array", lambda p: seen.append(p.size) or real(p))
    out = images.load_image(path, max_side=50)
    assert seen == [(50, 30)] and out.shape == (30, 50, 3)
    full = real(Image.open(path))
    small = images.resize(full, (30, 50))
    assert np.abs(out - small).mean() < 12  # the same picture, shrunk in 8-bit


def test_a_unit_range_image_a_little_over_1_is_warned_of():
    # read on the 0..255 scale, a [0, 1] image brightened to 1.02 was dreamed as a nearly black one
    image = np.full((20, 20, 3), 0.5, dtype=np.float32)
    image[0, 0] = 1.02
    with pytest.warns(UserWarning, match=r"floats in \[0.5, 1.02\].*np.clip"):
        images.check_image(image)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        images.check_image(np.clip(image, 0, 1))
        images.check_image(image * 200)
        images.check_image((image * 2).astype(np.uint8))


@pytest.mark.parametrize("values", [(-1.0, 1.0), (-128.0, 127.0), (0.0, 65535.0)])
def test_an_image_to_write_on_neither_scale_is_refused_not_clipped(tmp_path, values):
    # a [-1, 1] image was written half black, a 16-bit one nearly all white, without a word
    image = np.linspace(*values, 20 * 20 * 3, dtype=np.float32).reshape(20, 20, 3)
    with pytest.raises(InputError, match=rf"holds values in \[{values[0]:g}, {values[1]:g}\]"):
        images.save_image(tmp_path / "out.png", image)
    assert not (tmp_path / "out.png").exists()


def test_an_image_to_write_that_a_resampling_overshot_a_little_is_clipped(tmp_path):
    image = np.full((20, 20, 3), 0.5, dtype=np.float32)
    image[0, 0], image[0, 1] = -0.1, 1.0
    images.save_image(tmp_path / "unit.png", image)
    written = images.load_image(tmp_path / "unit.png")
    assert written[0, 0, 0] == 0 and written[0, 1, 0] == 255 and written[5, 5, 0] == 128
    images.save_image(tmp_path / "plain.png", image * 255 + np.float32(20))  # in [-5.5, 275]
    assert images.load_image(tmp_path / "plain.png")[0, 1, 0] == 255


def test_a_unit_range_image_a_little_over_1_is_warned_of_when_written(tmp_path):
    # written on the 0..255 scale, a [0, 1] image brightened to 1.02 came out nearly black, silently
    image = np.full((20, 20, 3), 0.5, dtype=np.float32)
    image[0, 0] = 1.02
    with pytest.warns(UserWarning, match=r"floats in \[0.5, 1.02\].*np.clip") as caught:
        images.save_image(tmp_path / "out.png", image)
    assert caught[0].filename == __file__
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        images.save_image(tmp_path / "out.png", np.clip(image, 0, 1))
        images.save_image(tmp_path / "out.png", image * 200)


def test_an_interrupted_save_leaves_the_earlier_image_whole_and_no_partial_file(tmp_path, ctrl_c_while_writing):
    path = tmp_path / "out.png"
    images.save_image(path, np.full((20, 20, 3), 90, np.uint8), metadata={"run": 1})
    undo = ctrl_c_while_writing()
    with pytest.raises(KeyboardInterrupt):
        images.save_image(path, np.full((20, 20, 3), 200, np.uint8), metadata={"run": 2})
    # the file was written in place: cut short, the earlier image gone
    assert np.all(images.load_image(path) == 90) and images.read_metadata(path) == {"run": 1}
    assert os.listdir(tmp_path) == ["out.png"]
    undo()
    images.save_image(path, np.full((20, 20, 3), 200, np.uint8), metadata={"run": 2})
    assert np.all(images.load_image(path) == 200) and os.listdir(tmp_path) == ["out.png"]
