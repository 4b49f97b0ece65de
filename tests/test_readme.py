"""The README's ten-line example runs as written and does what its comments say."""

import re
from pathlib import Path

import numpy as np


def test_the_readme_example_runs_and_solves_both_problems():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    code = re.search(r"## Ten lines\n\n```python\n(.*?)```", readme, re.S).group(1)
    namespace = {}
    exec(compile(code.replace("print(", "(lambda *a: None)("), "README.md", "exec"), namespace)
    res = namespace["res"]  # the SPSA run, the last one
    assert res.nfev <= 2000
    assert 10 + np.sum((res.x - 0.5) ** 2) <= 10.05  # within 0.5% of the optimum value 10
