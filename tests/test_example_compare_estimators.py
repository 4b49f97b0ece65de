"""examples/compare_estimators.py still runs end to end (one tiny problem, three estimators).

It runs in a fresh interpreter: the example turns on JAX's float64 mode for the whole process.
"""

import os
import subprocess
import sys

from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DRIVER = """
import importlib.util, sys
import numpy as np
spec = importlib.util.spec_from_file_location("compare_estimators", sys.argv[1])
example = importlib.util.module_from_spec(spec)
spec.loader.exec_module(example)
example.PROBLEMS = (("noisy 5-D", example.noisy_quadratic5, example.quadratic5, 1.0, np.zeros(5), 30),)
example.ESTIMATORS = ("autodiff", "central", "spsa")
sys.exit(example.main(["--out", sys.argv[2]]))
"""


def test_compare_estimators_writes_the_figure_and_the_table(tmp_path):
    out = tmp_path / "compare.png"
    proc = subprocess.run([sys.executable, "-c", DRIVER,
                           os.path.join(ROOT, "examples", "compare_estimators.py"), str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with Image.open(out) as image:
        assert image.format == "PNG"
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| noisy 5-D")]
    assert [row.split("|")[2].strip() for row in rows] == ["autodiff", "central", "spsa"]
    assert "n/a: gradient='autodiff' needs a deterministic fun(x)" in rows[0]
    for row in rows[1:]:
        cells = [cell.strip() for cell in row.split("|")]
        assert float(cells[3]) >= 0.0 and int(cells[4]) <= 30  # excess loss; budget kept
    assert f"wrote {out}" in proc.stdout
