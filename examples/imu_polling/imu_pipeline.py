#!/usr/bin/env python3
"""Replay a 6-axis IMU recording through a polling driver and a complementary orientation filter.

A real (small) program whose running time depends on two settings, for ``gdtools tune``:

``--rate``   how many times per second (of sensor time) the driver polls the sensor. Every poll
             costs a status read, a burst read of the FIFO and a buffer append, whether it brings
             one sample or thirty. Poll too rarely and the sensor's FIFO (``FIFO_DEPTH`` samples)
             overflows between polls; the samples it drops are then recovered from the logger's
             memory through the slow register path: six single-register bus reads per sample, each
             with its packet-error check.
``--batch``  how many samples the filter processes at once. The complementary filter is a linear
             recursion, run a block at a time as one matrix product with a cached
             ``batch x batch`` lower-triangular kernel: a small block pays the fixed per-block cost
             (a dozen NumPy calls) often; a large one does ``batch`` multiply-adds per sample and
             its kernel outgrows the CPU caches.

Nothing here reads the clock to decide what to do and nothing sleeps: the sensor clock is simulated
(the recording is replayed as fast as the host can go), so the time the whole job takes is just the
work the settings cause. The orientation it computes is the same for every setting; the program
prints it (and its error against the ground truth of the generated motion) so that a run can be
checked.

Usage::

    python imu_pipeline.py --rate 200 --batch 64
"""

from __future__ import annotations

import argparse
import struct
import sys

import numpy as np

SAMPLE_RATE = 1600          # Hz, the sensor's output data rate
FIFO_DEPTH = 32             # samples the sensor's hardware FIFO holds
CHANNELS = 6                # ax, ay, az (accelerometer), gx, gy, gz (gyroscope)
SAMPLE_BYTES = 2 * CHANNELS  # little-endian int16 registers
ACC_LSB_PER_G = 16384.0     # +-2 g range
GYRO_LSB_PER_DPS = 131.0    # +-250 deg/s range
ALPHA = 0.98                # complementary filter: weight of the gyro path
SCALE = np.array([1 / ACC_LSB_PER_G] * 3 + [np.pi / 180 / GYRO_LSB_PER_DPS] * 3)

# CRC-8 (polynomial 0x07), the packet-error check of SMBus-style register reads.
_CRC8 = []
for _byte in range(256):
    _crc = _byte
    for _ in range(8):
        _crc = ((_crc << 1) ^ 0x07) & 0xFF if _crc & 0x80 else (_crc << 1) & 0xFF
    _CRC8.append(_crc)


def generate_recording(seconds: float, seed: int):
    """Raw sensor bytes for a wobbling device, and its true roll and pitch (radians)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    roll = 0.5 * np.sin(2 * np.pi * 0.3 * t) + 0.1 * np.sin(2 * np.pi * 2.1 * t + 1.0)
    pitch = 0.3 * np.sin(2 * np.pi * 0.17 * t + 0.4) + 0.05 * np.sin(2 * np.pi * 3.3 * t)
    yaw_rate = 0.2 * np.cos(2 * np.pi * 0.05 * t)
    acc = np.stack([-np.sin(pitch), np.sin(roll) * np.cos(pitch), np.cos(roll) * np.cos(pitch)], 1)
    acc += rng.normal(0.0, 0.02, acc.shape)
    gyro = np.stack([np.gradient(roll, t), np.gradient(pitch, t), yaw_rate], 1)
    gyro += 0.002 + rng.normal(0.0, 0.01, gyro.shape)  # bias and noise, rad/s
    raw = np.concatenate([acc * ACC_LSB_PER_G, np.degrees(gyro) * GYRO_LSB_PER_DPS], 1)
    raw = np.clip(np.round(raw), -32768, 32767).astype("<i2")
    return raw.tobytes(), roll, pitch


class Sensor:
    """The device as the driver sees it: a FIFO filled by the sensor clock, and a register path."""

    def __init__(self, raw: bytes):
        self.raw = raw
        self.total = len(raw) // SAMPLE_BYTES
        self.next_unread = 0

    def status(self, now: float):
        """Samples produced by time ``now`` and how many of the unread ones the FIFO dropped."""
        produced = min(int(now * SAMPLE_RATE), self.total)
        dropped = max(0, produced - self.next_unread - FIFO_DEPTH)
        return produced, dropped

    def burst_read(self, produced: int, dropped: int) -> np.ndarray:
        """One bus transaction: everything the FIFO holds, as an (m, 6) int16 array."""
        start = self.next_unread + dropped
        self.next_unread = produced
        return np.frombuffer(self.raw, dtype="<i2", count=(produced - start) * CHANNELS,
                             offset=start * SAMPLE_BYTES).reshape(-1, CHANNELS)

    def register_read(self, index: int, channel: int) -> int:
        """One single-register read of sample ``index`` from the logger memory, PEC-checked."""
        offset = index * SAMPLE_BYTES + 2 * channel
        packet = self.raw[offset:offset + 2]
        crc = 0
        for byte in (0xD0, offset & 0xFF, (offset >> 8) & 0xFF, packet[0], packet[1]):
            crc = _CRC8[crc ^ byte]
        if crc != _pec(offset, packet):
            raise IOError(f"PEC mismatch reading sample {index}")
        return struct.unpack("<h", packet)[0]


def _pec(offset: int, packet: bytes) -> int:
    """The checksum the logger appends to a register packet (it computes the same CRC-8)."""
    crc = 0
    for byte in (0xD0, offset & 0xFF, (offset >> 8) & 0xFF, packet[0], packet[1]):
        crc = _CRC8[crc ^ byte]
    return crc


class ComplementaryFilter:
    """Roll and pitch from gyro rates blended with the accelerometer's gravity direction; yaw from
    the integrated gyro. ``angle[k] = ALPHA * (angle[k-1] + rate[k] dt) + (1 - ALPHA) * acc_angle[k]``
    is linear, so a block of ``m`` samples is ``kernel[:m, :m] @ drive + ALPHA**(1..m) * angle0``."""

    def __init__(self, batch: int):
        k = np.arange(batch)
        lag = k[:, None] - k[None, :]
        self.kernel = np.where(lag >= 0, ALPHA ** np.maximum(lag, 0), 0.0)
        self.decay = ALPHA ** (k + 1.0)
        self.angles = np.zeros(2)       # roll, pitch
        self.yaw = 0.0
        self.dt = 1.0 / SAMPLE_RATE

    def process(self, block: np.ndarray, out: np.ndarray) -> None:
        """Filter a (m, 6) block of physical samples into ``out`` (m, 3): roll, pitch, yaw."""
        m = len(block)
        ax, ay, az = block[:, 0], block[:, 1], block[:, 2]
        acc_angles = np.stack([np.arctan2(ay, az), np.arctan2(-ax, np.hypot(ay, az))], 1)
        drive = ALPHA * self.dt * block[:, 3:5] + (1 - ALPHA) * acc_angles
        kernel = self.kernel if m == len(self.kernel) else self.kernel[:m, :m]
        angles = kernel @ drive + self.decay[:m, None] * self.angles
        yaw = self.yaw + np.cumsum(block[:, 5]) * self.dt
        out[:, :2] = angles
        out[:, 2] = yaw
        self.angles = angles[-1]
        self.yaw = float(yaw[-1])


def run(raw: bytes, *, rate: int, batch: int) -> tuple[np.ndarray, dict]:
    """Poll the sensor ``rate`` times per second of recording, filtering ``batch`` samples at once."""
    sensor = Sensor(raw)
    filt = ComplementaryFilter(batch)
    out = np.empty((sensor.total, 3))
    done = 0                                   # samples filtered so far
    pending = np.empty((0, CHANNELS))          # physical samples read but not yet filtered
    stats = {"polls": 0, "recovered": 0, "blocks": 0}
    poll = 0
    while sensor.next_unread < sensor.total:
        poll += 1
        produced, dropped = sensor.status(poll / rate)
        stats["polls"] += 1
        if dropped:
            # The FIFO overflowed: fetch the dropped samples one register at a time.
            first = sensor.next_unread
            recovered = np.array([[sensor.register_read(i, c) for c in range(CHANNELS)]
                                  for i in range(first, first + dropped)], dtype=float)
            pending = np.concatenate([pending, recovered * SCALE])
            stats["recovered"] += dropped
        fresh = sensor.burst_read(produced, dropped)
        if len(fresh):
            pending = np.concatenate([pending, fresh * SCALE])
        while len(pending) >= batch or (sensor.next_unread == sensor.total and len(pending)):
            block, pending = pending[:batch], pending[batch:]
            filt.process(block, out[done:done + len(block)])
            done += len(block)
            stats["blocks"] += 1
    return out, stats


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=100, help="polls per second of sensor time")
    parser.add_argument("--batch", type=int, default=64, help="samples filtered per block")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of sensor time recorded")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated recording")
    args = parser.parse_args(argv)
    if args.rate < 1 or args.batch < 1 or args.seconds <= 0:
        parser.error("--rate, --batch and --seconds must be positive")
    raw, roll, pitch = generate_recording(args.seconds, args.seed)
    out, stats = run(raw, rate=args.rate, batch=args.batch)
    err = np.degrees(np.sqrt(np.mean((out[:, 0] - roll) ** 2 + (out[:, 1] - pitch) ** 2)))
    print(f"samples {len(out)}  polls {stats['polls']}  recovered {stats['recovered']}  "
          f"blocks {stats['blocks']}")
    print(f"final roll {np.degrees(out[-1, 0]):.4f} pitch {np.degrees(out[-1, 1]):.4f} "
          f"yaw {np.degrees(out[-1, 2]):.4f} deg")
    print(f"rms error {err:.4f} deg")
    return 0


if __name__ == "__main__":
    sys.exit(main())
