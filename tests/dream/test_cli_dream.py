import os

import numpy as np
import pytest
from PIL import Image
from skimage import data

from gdtools.cli import main
from gdtools.dream import images

SMALL_SETTINGS = ["--tile", "64", "--max-side", "64", "--octaves", "1", "--steps", "2", "--quiet"]
SMALL = [*SMALL_SETTINGS, "--layer", "block3"]


@pytest.fixture(scope="module")
def cat_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("in") / "cat.jpg"
    Image.fromarray(data.chelsea()).save(path)
    return path


def test_dream_writes_a_png_with_its_parameters(cat_file, tmp_path, capsys):
    out = tmp_path / "out.png"
    assert main(["dream", str(cat_file), "-o", str(out), *SMALL, "--seed", "3"]) == 0
    picture = images.load_image(out)
    assert picture.shape == (42, 64, 3)
    meta = images.read_metadata(out)
    assert meta["objective"] == {"layer": "block3"} and meta["seed"] == 3 and meta["steps"] == 2
    assert meta["tile"] == 64 and meta["max_side"] == 64 and "gdtools_version" in meta
    assert capsys.readouterr().out == ""  # --quiet


def test_precision_is_chosen_and_recorded(cat_file, tmp_path, capsys):
    out = tmp_path / "out.png"
    assert main(["dream", str(cat_file), "-o", str(out), *SMALL, "--precision", "bfloat16"]) == 0
    meta = images.read_metadata(out)
    assert meta["precision"] == "bfloat16"
    assert images.load_image(out).shape == (42, 64, 3)


def test_progress_goes_to_stderr_and_a_summary_to_stdout(cat_file, tmp_path, capsys):
    out = tmp_path / "out.png"
    args = [a for a in SMALL if a != "--quiet"]
    assert main(["dream", str(cat_file), "-o", str(out), *args, "--channels", "3,17"]) == 0
    captured = capsys.readouterr()
    assert "wrote" in captured.out and "2/2" in captured.err
    assert images.read_metadata(out)["objective"] == {"layer": "block3", "channels": [3, 17]}


def assert_one_line_error(capsys, message):
    """The command wrote one line on stderr, and it holds ``message``."""
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("extra,message", [
    (["--layer", "mixed4c"], "unknown layer 'mixed4c'; layers are: stem, block0"),
    (["--layer", ""], "layer"),  # not quietly the default
    (["--channels", "3,40"], "channel 40 is out of range for layer 'block3'"),
    (["--channels", "three"], "--channels must be comma-separated integers"),
    (["--octaves", "0"], "octaves must be an integer >= 1"),
    (["--seed", "-5"], "seed must be an integer >= 0, got -5"),
    (["--channels", "3,,4"], "--channels '3,,4' has an empty item"),
    (["--channels", "3,"], "--channels '3,' has an empty item"),
    (["--channels", " , "], "--channels is empty"),
    # the library's words: "channels lists channel 3 ...; ... add objectives: obj.channels(layer, [c]) * 2"
    (["--channels", "3,3"], "--channels '3,3' lists channel 3 more than once"),
    (["--octaves", "2", "--octave-scale", "1"], "--octave-scale must be > 1 when --octaves > 1, got 1.0"),
    (["--zoom", "1.1"], "--zoom sets the zoom between the frames of --zoom-frames; add --zoom-frames"),
    (["--gallery"], "--layer cannot be combined with it"),
    (["-o", "out.unknown"], "cannot tell the image format"),
    (["-o", "/no/such/dir/out.png"], "does not exist"),
    (["--gallery-layers", "block3,block8"], "add --gallery"),
    (["--zoom-frames", "2"], "-o is the folder for the frames"),
])
def test_bad_options_are_one_line_and_exit_2(cat_file, tmp_path, capsys, extra, message):
    assert main(["dream", str(cat_file), "-o", str(tmp_path / "o.png"), *SMALL, *extra]) == 2
    assert_one_line_error(capsys, message)


@pytest.fixture
def no_dreaming(monkeypatch):
    """Fails the test if a dream starts: what is checked here must be refused before."""
    from gdtools.dream.deepdream import Dreamer

    def refuse(*args, **kwargs):
        raise AssertionError("the dream ran before the bad option was refused")

    monkeypatch.setattr(Dreamer, "run_octave", refuse)


@pytest.mark.parametrize("output,message", [
    ("{tmp}/plain.png/x.png", "plain.png' is a file, not a folder"),
    ("{tmp}", "names a directory"),
    ("/proc/x.png", "cannot write into '/proc'"),
    ("--zoom-frames 2 -o {tmp}/plain", "plain' is an existing file, not a folder"),
    ("--zoom-frames 2 -o {tmp}/plain.png/frames", "plain.png' is a file, not a folder"),
    ("{tmp}/out.psd", "cannot write -o '{tmp}/out.psd' as PSD"),  # Pillow reads PSD, never writes it
    ("{tmp}/out.xbm", "cannot write -o '{tmp}/out.xbm' as XBM"),  # black and white only
])
def test_an_output_that_cannot_be_written_is_refused_before_dreaming(cat_file, tmp_path, capsys, no_dreaming,
                                                                     output, message):
    if output.startswith("/proc") and not os.path.isdir("/proc"):
        pytest.skip("no /proc here")
    (tmp_path / "plain.png").write_bytes(b"")
    (tmp_path / "plain").write_bytes(b"")
    options = output.format(tmp=tmp_path).split()
    assert main(["dream", str(cat_file), *SMALL, *(options if len(options) > 1 else ["-o", *options])]) == 2
    assert_one_line_error(capsys, message.format(tmp=tmp_path))


@pytest.mark.parametrize("extra,message", [
    (["--channels", "3"], "--channels cannot be combined with it"),
    (["--guide", "{cat}"], "--guide cannot be combined with it"),
    (["--gallery-layers", "block2,block9,blokc12"], "unknown layer 'blokc12'"),
    (["--gallery-layers", "block2,,block9"], "--gallery-layers 'block2,,block9' has an empty item"),
])
def test_bad_gallery_options_are_refused_before_dreaming(cat_file, tmp_path, capsys, no_dreaming, extra, message):
    extra = [item.format(cat=cat_file) for item in extra]
    assert main(["dream", str(cat_file), "--gallery", "-o", str(tmp_path / "g.png"), *SMALL_SETTINGS, *extra]) == 2
    assert_one_line_error(capsys, message)


@pytest.mark.parametrize("extra,message", [
    (["--layer", "blokc3"], "unknown layer 'blokc3'"),
    (["--channels", "99"], "channel 99 is out of range"),
    (["--zoom", "3"], "--zoom must be a number from 1 to 2"),
    (["--zoom-frames", "0"], "--zoom-frames must be a positive integer"),
])
def test_bad_zoom_options_leave_no_folder_behind(cat_file, tmp_path, capsys, no_dreaming, extra, message):
    frames = tmp_path / "new" / "frames"
    assert main(["dream", str(cat_file), "--zoom-frames", "2", "-o", str(frames), *SMALL, *extra]) == 2
    assert_one_line_error(capsys, message)
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("name", ["out.webp", "out.tif", "out.BMP", "out.jpeg"])
def test_an_image_name_given_to_zoom_frames_is_refused_not_made_a_folder(cat_file, tmp_path, capsys, no_dreaming,
                                                                        name):
    assert main(["dream", str(cat_file), "--zoom-frames", "2", "-o", str(tmp_path / name), *SMALL]) == 2
    assert_one_line_error(capsys, "-o is the folder for the frames")
    assert not (tmp_path / name).exists()


def test_an_existing_folder_with_an_image_like_name_takes_zoom_frames(cat_file, tmp_path, no_dreaming):
    (tmp_path / "frames.webp").mkdir()
    with pytest.raises(AssertionError, match="the dream ran"):  # accepted: the dream starts
        main(["dream", str(cat_file), "--zoom-frames", "2", "-o", str(tmp_path / "frames.webp"), *SMALL])


def test_bad_images_are_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(tmp_path / "dot.png")
    for name in ("broken.png", "dot.png", "missing.jpg"):
        assert main(["dream", str(tmp_path / name), "-o", str(tmp_path / "o.png"), *SMALL]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("gdtools dream: error:") and len(err.splitlines()) == 1


def test_grayscale_rgba_and_16_bit_inputs_are_dreamed(tmp_path):
    gray = data.camera()[::8, ::8]
    Image.fromarray(gray).save(tmp_path / "gray.png")
    Image.fromarray((gray.astype(np.uint16) * 257)).save(tmp_path / "deep.png")
    Image.fromarray(np.dstack([data.chelsea()[::8, ::8], np.full((38, 57), 200, np.uint8)]), "RGBA").save(
        tmp_path / "rgba.png")
    for name in ("gray.png", "deep.png", "rgba.png"):
        assert main(["dream", str(tmp_path / name), "-o", str(tmp_path / f"out_{name}"), *SMALL]) == 0


def test_gallery_and_zoom_frames(cat_file, tmp_path):
    out = tmp_path / "gallery.png"
    assert main(["dream", str(cat_file), "--gallery", "--gallery-layers", "stem,block3", "-o", str(out),
                 *SMALL_SETTINGS]) == 0
    grid = images.load_image(out)
    assert grid.shape[1] == 2 * 64 and grid.shape[0] > 2 * 42  # input + 2 layers in 2 columns, captions
    meta = images.read_metadata(out)
    assert meta["gallery_layers"] == ["stem", "block3"] and meta["max_side"] == 64 and meta["input"] == str(cat_file)

    frames = tmp_path / "frames"
    assert main(["dream", str(cat_file), "--zoom-frames", "3", "-o", str(frames), *SMALL, "--seed", "5"]) == 0
    assert sorted(p.name for p in frames.iterdir()) == ["frame_0000.png", "frame_0001.png", "frame_0002.png",
                                                        "zoom.gif"]
    with Image.open(frames / "zoom.gif") as gif:
        assert gif.n_frames == 3
    meta = images.read_metadata(frames / "frame_0002.png")
    # the seed that reproduces the run (--seed), as every other dream's PNG says; frame 2 used 5 + 2
    assert meta["frame"] == 2 and meta["seed"] == 5 and meta["frame_seed"] == 7
    assert meta["max_side"] == 64 and meta["zoom"] == 1.05


def test_layers_lists_every_layer(capsys):
    assert main(["layers"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["layer", "channels", "stride"]
    assert [line.split()[0] for line in lines[1:]] == ["stem"] + [f"block{i}" for i in range(16)] + ["head"]
    assert lines[-1].split() == ["head", "1280", "32"]


def test_guide_image(cat_file, tmp_path):
    guide = tmp_path / "guide.png"
    Image.fromarray(data.coffee()).save(guide)
    out = tmp_path / "guided.png"
    assert main(["dream", str(cat_file), "-o", str(out), "--guide", str(guide), *SMALL]) == 0
    assert images.read_metadata(out)["objective"] == {"layer": "block3", "guide": str(guide)}  # the path as given
    assert main(["dream", str(cat_file), "-o", str(out), "--guide", str(guide), "--channels", "1", *SMALL]) == 2


def test_a_long_thin_image_shrunk_under_the_minimum_names_max_side(tmp_path, capsys):
    wide = tmp_path / "wide.png"
    Image.fromarray(np.full((106, 1600, 3), 90, np.uint8)).save(wide)
    assert main(["dream", str(wide), "-o", str(tmp_path / "o.png"), *SMALL_SETTINGS, "--max-side", "160"]) == 2
    assert_one_line_error(capsys, "is 1600x106 pixels, 160x11 once shrunk to a longer side of max_side=160 "
                                  "(--max-side); DeepDream needs at least 16 on each side: a max_side of 234 or "
                                  "more keeps it")
    assert images.load_image(wide, max_side=234).shape[:2] == (16, 234)  # the size it names does keep it
    with pytest.raises(images.InputError, match="guide image .* is 1600x106 pixels"):
        images.load_image(wide, max_side=160, what="guide image")


def test_the_summary_gives_the_written_sizes_and_the_help_the_gallery_layers(cat_file, tmp_path, capsys):
    from gdtools.dream.layer_gallery import GALLERY_LAYERS

    out = tmp_path / "gallery.png"
    settings = [a for a in SMALL_SETTINGS if a != "--quiet"]
    assert main(["dream", str(cat_file), "--gallery", "--gallery-layers", "stem,block3", "-o", str(out), *settings]) == 0
    with Image.open(out) as picture:
        width, height = picture.size
    assert f"({width}x{height}, " in capsys.readouterr().out and width == 128
    with pytest.raises(SystemExit):
        main(["dream", "--help"])
    assert f"default: {','.join(GALLERY_LAYERS)})" in " ".join(capsys.readouterr().out.split())


@pytest.fixture
def ctrl_c_at(monkeypatch):
    """ctrl_c_at(*steps): a Ctrl-C (SIGINT to this process) as the progress bar counts each of those
    steps (a step named twice: two Ctrl-C)."""
    import signal

    from gdtools.cli import progress

    def arm(*steps, signum=signal.SIGINT):
        real = progress.progress_bar

        def bar(*args, **kwargs):
            wrapped = real(*args, **kwargs)
            update, count = wrapped.update, [0]

            def counting_update(n=1):
                count[0] += n
                for _ in range(steps.count(count[0])):
                    os.kill(os.getpid(), signum)
                return update(n)

            wrapped.update = counting_update
            return wrapped

        monkeypatch.setattr(progress, "progress_bar", bar)

    return arm


def test_ctrl_c_saves_the_dream_so_far_and_exits_130(cat_file, tmp_path, capsys, ctrl_c_at):
    import signal

    before = signal.getsignal(signal.SIGINT)
    ctrl_c_at(3)
    out = tmp_path / "out.png"
    assert main(["dream", str(cat_file), "-o", str(out), *SMALL_SETTINGS, "--octaves", "2", "--steps", "4",
                 "--layer", "block3"]) == 130
    err = capsys.readouterr().err
    assert "stopping after this step and saving the dream so far" in err
    assert "interrupted; what was written stops at octave 1/2, step 3/4" in err
    assert images.load_image(out).shape == (42, 64, 3)  # the full size: the coarse octave's detail on the input
    assert images.read_metadata(out)["interrupted_at"] == "octave 1/2, step 3/4"
    assert signal.getsignal(signal.SIGINT) is before


def test_sigterm_saves_the_dream_so_far_as_ctrl_c_does_and_exits_143(cat_file, tmp_path, capsys, ctrl_c_at):
    import signal

    ctrl_c_at(3, signum=signal.SIGTERM)  # a scheduler cancelling the job
    out = tmp_path / "out.png"
    assert main(["dream", str(cat_file), "-o", str(out), *SMALL_SETTINGS, "--steps", "4",
                 "--layer", "block3"]) == 128 + signal.SIGTERM
    assert "SIGTERM: stopping after this step" in capsys.readouterr().err
    assert images.read_metadata(out)["interrupted_at"] == "octave 1/1, step 3/4"


def test_a_second_ctrl_c_aborts_without_saving(cat_file, tmp_path, capsys, ctrl_c_at):
    ctrl_c_at(1, 1)
    out = tmp_path / "out.png"
    assert main(["dream", str(cat_file), "-o", str(out), *SMALL_SETTINGS, "--steps", "4", "--layer", "block3"]) == 130
    assert "gdtools dream: interrupted" in capsys.readouterr().err and not out.exists()


def test_ctrl_c_in_a_gallery_keeps_the_layers_dreamed(cat_file, tmp_path, capsys, ctrl_c_at):
    ctrl_c_at(3)  # the first step of the second layer
    out = tmp_path / "g.png"
    assert main(["dream", str(cat_file), "--gallery", "--gallery-layers", "stem,block3,block4", "-o", str(out),
                 *SMALL_SETTINGS]) == 130
    meta = images.read_metadata(out)
    assert meta["gallery_layers"] == ["stem", "block3"] and meta["interrupted_at"] == "layer block3, octave 1/1, step 1/2"
    assert "interrupted" in capsys.readouterr().err


def test_ctrl_c_in_a_zoom_keeps_the_frames_and_stale_frames_go(cat_file, tmp_path, capsys, ctrl_c_at):
    frames = tmp_path / "frames"
    frames.mkdir()
    for name in ("frame_0004.png", "notes.txt"):  # from an earlier, longer run; the user's own file
        (frames / name).write_bytes(b"old")
    ctrl_c_at(3)  # the first step of the second frame
    assert main(["dream", str(cat_file), "--zoom-frames", "4", "-o", str(frames), *SMALL]) == 130
    assert sorted(p.name for p in frames.iterdir()) == ["frame_0000.png", "frame_0001.png", "notes.txt", "zoom.gif"]
    with Image.open(frames / "zoom.gif") as gif:
        assert gif.n_frames == 2
    assert "interrupted_at" not in images.read_metadata(frames / "frame_0000.png")
    assert images.read_metadata(frames / "frame_0001.png")["interrupted_at"] == "frame 2/4, octave 1/1, step 1/2"
    assert "interrupted" in capsys.readouterr().err


def test_a_finished_zoom_removes_the_frames_of_a_longer_earlier_run(cat_file, tmp_path, capsys):
    frames = tmp_path / "frames"
    assert main(["dream", str(cat_file), "--zoom-frames", "3", "-o", str(frames), *SMALL]) == 0
    assert main(["dream", str(cat_file), "--zoom-frames", "1", "-o", str(frames),
                 *[a for a in SMALL if a != "--quiet"]]) == 0
    assert sorted(p.name for p in frames.iterdir()) == ["frame_0000.png", "zoom.gif"]
    assert f"removed 2 frames of an earlier, longer run from {str(frames)!r}" in capsys.readouterr().err


def test_a_quiet_zoom_still_says_that_it_removed_the_frames_of_an_earlier_run(cat_file, tmp_path, capsys):
    # --quiet dropped the summary line, and with it the only word of the deletion
    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "frame_0003.png").write_bytes(b"old")
    assert main(["dream", str(cat_file), "--zoom-frames", "1", "-o", str(frames), *SMALL]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"removed 1 frame of an earlier, longer run from {str(frames)!r}" in captured.err


@pytest.mark.parametrize("name", ["frame_0000.png", "frame_0005.png", "zoom.gif"])
@pytest.mark.parametrize("role", ["input", "guide"])
def test_a_zoom_never_writes_over_or_removes_its_own_input(cat_file, tmp_path, capsys, no_dreaming, name, role):
    # going on from the last frame of a run into the same folder (or from its zoom.gif) replaced
    # the input by a new frame, or deleted it as a stale frame of a longer run
    frames = tmp_path / "frames"
    frames.mkdir()
    mine = frames / name
    Image.open(cat_file).save(mine)
    before = mine.read_bytes()
    given = [str(mine)] if role == "input" else [str(cat_file), "--guide", str(mine)]
    assert main(["dream", *given, "--zoom-frames", "2", "-o", str(frames), *SMALL_SETTINGS]) == 2
    assert f"the {role} image {str(mine)!r} is a file the zoom writes or removes" in capsys.readouterr().err
    assert mine.read_bytes() == before


def test_the_tile_is_never_larger_than_the_image(cat_file, tmp_path):
    # padded up to the default 512, a small dream made the network do the work of a large one
    out = tmp_path / "out.png"
    assert main(["dream", str(cat_file), "-o", str(out), "--max-side", "64", "--octaves", "1", "--steps", "1",
                 "--quiet", "--layer", "block3"]) == 0
    assert images.read_metadata(out)["tile"] == 64
    # a --tile larger than the image is fitted as well (by the Dreamer): it recorded 512, not the 64 it used
    assert main(["dream", str(cat_file), "-o", str(out), "--max-side", "64", "--octaves", "1", "--steps", "1",
                 "--quiet", "--layer", "block3", "--tile", "512"]) == 0
    assert images.read_metadata(out)["tile"] == 64
    from gdtools.dream.deepdream import fitting_tile

    assert fitting_tile(512, (200, 150, 3)) == 224 and fitting_tile(128, (200, 150, 3)) == 128
    assert fitting_tile(512, (20, 10, 3)) == 32 and fitting_tile(512, (1000, 700, 3)) == 512


def test_the_input_is_never_the_output_and_messages_name_the_options(cat_file, tmp_path, capsys):
    before = cat_file.read_bytes()
    assert main(["dream", str(cat_file), "-o", str(cat_file), *SMALL]) == 2
    assert "is the input image: the dream would replace it" in capsys.readouterr().err
    assert cat_file.read_bytes() == before
    # the guide was read, dreamed with, and replaced by the dream
    guide = tmp_path / "guide.png"
    guide.write_bytes(before)
    assert main(["dream", str(cat_file), "--guide", str(guide), "-o", str(guide), *SMALL]) == 2
    assert "is the guide image: the dream would replace it" in capsys.readouterr().err
    assert guide.read_bytes() == before
    for option, value, name in (("--step-size", "-1", "--step-size must be"), ("--tile", "8", "--tile must be"),
                                ("--max-side", "10", "--max-side must be")):
        assert main(["dream", str(cat_file), "-o", str(tmp_path / "o.png"), *SMALL, option, value]) == 2
        assert name in capsys.readouterr().err
