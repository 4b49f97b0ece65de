"""Shared fixtures of the DeepDream tests: the network once per session, small sample images."""

import numpy as np
import pytest
from skimage import data

from gdtools.dream import images, weights


@pytest.fixture
def full_float32():
    """For tests that compare two forms of one computation: on a GPU, convolutions and matrix
    products otherwise run in TF32 (about three significant digits), which no tolerance that also
    catches a wrong form would absorb."""
    import jax

    with jax.default_matmul_precision("highest"):
        yield


@pytest.fixture
def ctrl_c_while_writing(monkeypatch):
    """Call it to have the next image Pillow writes interrupted as a second Ctrl-C would: after the
    pixels are written, before the file is finished. It returns a function that undoes it."""
    from PIL import ImageFile

    real_save = ImageFile._save

    def interrupted(*args, **kwargs):
        real_save(*args, **kwargs)
        raise KeyboardInterrupt

    def start():
        monkeypatch.setattr(ImageFile, "_save", interrupted)
        return lambda: monkeypatch.setattr(ImageFile, "_save", real_save)

    return start


@pytest.fixture(scope="session")
def params():
    return weights.pretrained_params()


@pytest.fixture(scope="session")
def cat_small():
    """scikit-image's chelsea (a cat), 96 px on its longer side."""
    return images.fit_max_side(data.chelsea().astype(np.float32), 96)


@pytest.fixture(scope="session", autouse=True)
def private_cache_dir(tmp_path_factory):
    """Keep the weights cache and the JAX compilation cache of these tests out of the user's home."""
    import os

    previous = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if previous is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = previous
