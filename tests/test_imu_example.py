"""The IMU example program: its result does not depend on the settings being tuned, their cost does."""

import os
import sys
import time

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples", "imu_polling"))
import imu_pipeline  # noqa: E402


@pytest.fixture(scope="module")
def recording():
    return imu_pipeline.generate_recording(2.0, 0)


def test_orientation_is_the_same_for_every_setting(recording):
    raw, roll, pitch = recording
    reference, stats = imu_pipeline.run(raw, rate=60, batch=128)
    assert stats["recovered"] == 0
    err = np.degrees(np.sqrt(np.mean((reference[:, 0] - roll) ** 2 + (reference[:, 1] - pitch) ** 2)))
    assert err < 1.0  # the filter tracks the generated motion
    for rate, batch in [(20, 1), (20, 1000), (5000, 7), (45, 33)]:
        out, stats = imu_pipeline.run(raw, rate=rate, batch=batch)
        np.testing.assert_allclose(out, reference, atol=1e-9)
        assert stats["polls"] >= rate * 2
    _, stats = imu_pipeline.run(raw, rate=20, batch=64)
    assert stats["recovered"] > 0  # polling too rarely overflows the FIFO


def test_cost_comes_from_the_mechanics(recording):
    raw, _, _ = recording

    def cost(**settings):
        best = np.inf
        for _ in range(3):
            t0 = time.perf_counter()
            imu_pipeline.run(raw, **settings)
            best = min(best, time.perf_counter() - t0)
        return best

    middle = cost(rate=60, batch=128)
    assert cost(rate=20, batch=128) > 1.5 * middle     # FIFO overruns, slow register re-reads
    assert cost(rate=5000, batch=128) > 1.5 * middle   # per-poll overhead
    assert cost(rate=60, batch=1) > 1.5 * middle       # per-block overhead
    assert cost(rate=60, batch=1024) > 1.5 * middle    # quadratic block kernel, out of cache
