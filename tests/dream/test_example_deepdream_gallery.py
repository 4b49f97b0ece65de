"""examples/deepdream_gallery.py prints what its docstring says."""

import importlib.util
import sys
from pathlib import Path

import numpy as np

EXAMPLE = Path(__file__).parent.parent.parent / "examples" / "deepdream_gallery.py"


def test_the_example_prints_the_time_each_layer_took(tmp_path, monkeypatch, capsys):
    # the docstring promised it; the times were collected and never printed
    spec = importlib.util.spec_from_file_location("deepdream_gallery_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from gdtools.dream.deepdream import Progress

    def no_gallery(image, *, layers, callback, **settings):  # the printing is the question, not the dream
        for name in layers:
            callback(name, Progress(octave=0, octaves=1, step=0, steps=1, objective=0.0, shape=image.shape))
        return np.zeros((32, 32, 3), np.float32)

    monkeypatch.setattr(module, "gallery", no_gallery)
    monkeypatch.setattr(sys, "argv", ["deepdream_gallery.py", "--out", str(tmp_path / "g.png"), "--max-side", "64"])
    module.main()
    printed = capsys.readouterr().out
    for name in module.GALLERY_LAYERS:
        assert f"  {name}: " in printed
