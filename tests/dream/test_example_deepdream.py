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
