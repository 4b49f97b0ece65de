"""Shared pieces of the benchmark scripts: machine and versions, tables, output paths.

Every script prints its table with the machine, the package versions and the date beside it, and
writes the same information into its raw-results JSON so that ``run_all.py`` can regenerate
``docs/benchmarks.md`` from the files alone.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
DOCS = os.path.join(ROOT, "docs")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine(packages=("gdtools", "jax", "jaxlib", "optax", "numpy", "scipy")) -> dict:
    """Where and when: CPU, cores, memory, OS, Python, package versions, UTC date."""
    versions = {}
    for name in packages:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    mem = None
    try:
        mem = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    return {
        "commit": git_commit(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": mem,
        "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "versions": versions,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average": load_average(),
    }


def load_average():
    """1-minute load average when the benchmark started (other work on a shared machine)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def git_commit() -> str:
    """The repository's commit, with "+local changes" when gdtools/ differs from it."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "gdtools"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head or "unknown") + (" + local changes to gdtools/" if dirty else "")


def machine_line(info: dict) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    return (f"{info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB, {info['os']}, "
            f"Python {info['python']}; {versions}; gdtools commit {info.get('commit', 'unknown')}; "
            f"{info['date']}" + (f"; load average {info['load_average']} at the start"
                                 if info.get("load_average") is not None else ""))


def markdown_table(header, rows) -> str:
    lines = ["| " + " | ".join(map(str, header)) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines)


def fmt(value, digits=3) -> str:
    if value is None:
        return "–"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if v != v:
        return "–"
    if v == float("inf"):
        return "∞"
    if v == 0:
        return "0"
    if abs(v) >= 1e4 or abs(v) < 1e-3:
        return f"{v:.{digits - 1}e}"
    return f"{v:.{digits}g}"


def save_json(name: str, data: dict, directory: str = RESULTS) -> str:
    """Write ``data`` to ``directory/name`` (NumPy scalars as floats); returns the path."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name)
    with open(path, "w") as fh:
        json.dump(data, fh, indent=1, default=float)
    return path


def speed_verdict(peers: dict, my_reach: float) -> dict:
    """The noisy suite's target 1: gdtools reaches the target in at most half the evaluations of the
    best peer. ``peers`` maps a peer's name to its summary (``evals_to_target``: median evaluations
    to the target, inf when not reached); ``my_reach`` is gdtools' default's."""
    import math

    best_name = min(peers, key=lambda k: peers[k]["evals_to_target"])
    best = peers[best_name]["evals_to_target"]
    if not math.isfinite(my_reach) and not math.isfinite(best):
        return dict(status="not met", text="no contender, gdtools included, reached the target "
                                           "(median over seeds) within the budget")
    if not math.isfinite(my_reach):
        return dict(status="MISSED", text=f"gdtools did not reach the target; {best_name} did in {best:.0f}")
    return dict(status="met" if my_reach <= 0.5 * best else "MISSED",
                text=f"gdtools {my_reach:.0f} vs best peer {best_name} "
                     f"{'∞' if not math.isfinite(best) else f'{best:.0f}'}")


def load_json(name: str):
    path = os.path.join(RESULTS, name)
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        return json.load(fh)


def available(names, packages: dict) -> list:
    """The contenders among ``names`` whose peer package (``packages[name]``, None for gdtools'
    own) is installed; the others are announced and left out."""
    import importlib.util

    keep = []
    for name in names:
        package = packages[name]
        if package is None or importlib.util.find_spec(package) is not None:
            keep.append(name)
        else:
            print(f"skipping {name}: {package} is not installed")
    return keep
