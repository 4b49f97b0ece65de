"""The custom-estimator example of docs/estimators.md, run as written there."""

import re
from pathlib import Path

import numpy as np


def test_the_documented_custom_estimator_runs_and_solves_its_problem():
    doc = (Path(__file__).parent.parent / "docs" / "estimators.md").read_text()
    code = re.search(r"## Writing your own estimator\n\n```python\n(.*?)```", doc, re.S).group(1)
    namespace = {}
    exec(compile(code, "docs/estimators.md", "exec"), namespace)
    res = namespace["res"]
    assert res.nfev <= 2000
    np.testing.assert_allclose(res.x, 1.0, atol=0.05)
