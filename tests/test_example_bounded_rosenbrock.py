"""examples/bounded_rosenbrock.py runs and prints what docs/estimators.md quotes from it."""

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_bounded_rosenbrock_prints_both_solvers_converging_to_the_same_point():
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "bounded_rosenbrock.py")],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    ours = re.search(r"gdtools central: +status=(\w+) nit=(\d+) nfev=(\d+) f=([\d.]+)", proc.stdout)
    theirs = re.search(r"scipy L-BFGS-B 3-point: success=True nit=(\d+) nfev=(\d+) f=([\d.]+)", proc.stdout)
    assert ours and theirs, proc.stdout
    assert ours.group(1) == "converged" and abs(float(ours.group(4)) - float(theirs.group(3))) < 1e-4
    with open(os.path.join(ROOT, "docs", "estimators.md"), encoding="utf-8") as doc:
        text = " ".join(doc.read().split())
    assert (f"converge in {ours.group(2)} iterations and {ours.group(3)} evaluations, scipy's L-BFGS-B with its "
            f"`3-point` rule in {theirs.group(1)} and {theirs.group(2)}") in text
