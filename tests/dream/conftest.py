"""Shared fixtures of the DeepDream tests: the network once per session, small sample images."""

import numpy as np
import pytest
from skimage import data

from gdtools.dream import images, weights


@pytest.fixture(scope="session")
def params():
    return weights.pretrained_params()


@pytest.fixture(scope="session")
def cat_small():
    """scikit-image's chelsea (a cat), 96 px on its longer side."""
    return images.fit_max_side(data.chelsea().astype(np.float32), 96)
