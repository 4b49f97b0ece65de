"""`make demo`: the toolkit's main jobs on built-in sample data, pictures written to --out.

1. tunes the IMU polling example program (a real program, timed) and draws its loss curve;
2. dreams a sample image with DeepDream on the pretrained EfficientNet-Lite0.

Each step is its own example script, run here one after the other with this interpreter.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
STEPS = [
    ("Tuning the IMU polling example", [os.path.join(HERE, "imu_polling", "demo.py")]),
    ("DeepDream on a sample image", [os.path.join(HERE, "deepdream.py")]),
]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out", help="directory for the pictures (default: out)")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    for title, script in STEPS:
        print(f"== {title}", flush=True)
        t0 = time.perf_counter()
        code = subprocess.call([sys.executable, *script, "--out", args.out])
        if code != 0:
            print(f"demo step failed ({title}), exit code {code}", file=sys.stderr)
            return code
        print(f"   ({time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"== Pictures in {os.path.abspath(args.out)}:")
    for name in sorted(os.listdir(args.out)):
        if name.endswith((".png", ".gif")):
            print(f"   {os.path.join(args.out, name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
