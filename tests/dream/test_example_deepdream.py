"""examples/deepdream.py builds an objective the network accepts, whatever layer is asked for."""

import importlib.util
from pathlib import Path

import pytest

from gdtools.dream import efficientnet

EXAMPLE = Path(__file__).parent.parent.parent / "examples" / "deepdream.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("deepdream_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_objective_fits_every_layer(example, params):
    table = efficientnet.layer_table(params)
    for info in table:  # block0 has 16 channels: channel 17 does not exist there
        objective = example.objective_for(info.name)
        objective.check(table)
        assert objective.describe()["sum"][1]["channels"] == [c for c in (3, 17) if c < info.channels]
    with pytest.raises(SystemExit, match="unknown layer 'blokc8'"):
        example.objective_for("blokc8")


@pytest.mark.parametrize("max_side", [96, 384])
def test_the_example_records_the_tile_it_dreamed_in(example, params, tmp_path, monkeypatch, max_side):
    # the Dreamer fits its 512-pixel tile to a smaller image; the PNG said 512 for a 384-pixel dream
    import sys

    import gdtools as gd
    from gdtools.dream.deepdream import Dreamer, Progress, fitting_tile

    def no_dream(self, image, *, callback=None):  # the tile recorded is the question, not the dream
        for step in range(2):
            callback(Progress(octave=0, octaves=1, step=step, steps=2, objective=0.0, shape=image.shape))
        return image

    monkeypatch.setattr(Dreamer, "__call__", no_dream)
    monkeypatch.setattr(gd.dream, "classify", lambda image, top: [])
    monkeypatch.setattr(sys, "argv", ["deepdream.py", "--out", str(tmp_path), "--max-side", str(max_side)])
    example.main()
    shape = gd.dream.images.load_image(tmp_path / "deepdream.png").shape
    assert gd.dream.images.read_metadata(tmp_path / "deepdream.png")["tile"] == fitting_tile(512, shape)


def test_bad_options_are_said_before_the_network_is_loaded(example, monkeypatch, capsys):
    # --out under a file ended in a NotADirectoryError traceback; an unknown --layer was found only
    # after the network had classified the image
    import sys

    import gdtools as gd

    monkeypatch.setattr(gd.dream, "classify", lambda *a, **k: pytest.fail("the network was used"))
    for argv, words in ((["--out", "/dev/null/x"], "cannot be made a directory"),
                        (["--layer", "blokc8"], "unknown layer 'blokc8'")):
        monkeypatch.setattr(sys, "argv", ["deepdream.py", *argv])
        with pytest.raises(SystemExit) as stop:
            example.main()
        assert words in str(stop.value) + capsys.readouterr().err
