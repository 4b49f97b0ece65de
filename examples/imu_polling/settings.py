"""The tuning problem of the IMU example, shared by the README command, tune_api.py, demo.py and
benchmarks/imu_grid.py so that they all tune the same thing."""

import os
import sys

import gdtools as gd

HERE = os.path.dirname(os.path.abspath(__file__))
PROGRAM = os.path.join(HERE, "imu_pipeline.py")

#: Polls per second of sensor time, and samples filtered per block.
SPACE = gd.Space(rate=gd.Int(20, 5000, log=True), batch=gd.Int(1, 1024, log=True))

#: How each setting is measured: timed runs per evaluation, and untimed runs before them.
REPEATS = 3
WARMUP = 0


def command(python: str = sys.executable) -> list:
    """The argv template: ``python imu_pipeline.py --rate {rate} --batch {batch}``."""
    return [python, PROGRAM, "--rate", "{rate}", "--batch", "{batch}"]


def objective(*, repeats: int = REPEATS, warmup: int = WARMUP, timeout: float = 60.0):
    return gd.timing.time_command(command(), SPACE, repeats=repeats, warmup=warmup, timeout=timeout)
