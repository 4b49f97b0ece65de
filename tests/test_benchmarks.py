"""Every benchmark script runs on a tiny budget (``--quick``), so that none of them can rot.

These tests check that the scripts run and write what ``run_all.py`` reads, not the numbers. Peers
(nevergrad, noisyopt, optuna, cma, numdifftools) are benchmark-only dependencies: the scripts leave
out a contender whose package is missing, and the tests of peer-specific code paths skip cleanly.
Each script runs in its own process, as ``make bench`` runs it (one of them turns on float64).
"""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")


def run(script, *args, timeout=300):
    proc = subprocess.run([sys.executable, os.path.join(BENCH, script), *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc.stdout


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("bench"))


@pytest.fixture(scope="module")
def noisy(out_dir):
    stdout = run("noisy_blackbox.py", "--quick", "--out", out_dir, "--problems", "sphere30",
                 "--seeds", "1", "--workers", "1",
                 "--contenders", "gdtools default (spsa),gdtools central,scipy L-BFGS-B (FD)")
    return stdout, json.load(open(os.path.join(out_dir, "noisy_blackbox.json")))


@pytest.fixture(scope="module")
def imu(out_dir):
    stdout = run("noisy_imu.py", "--quick", "--out", out_dir)
    return stdout, json.load(open(os.path.join(out_dir, "noisy_imu.json")))


@pytest.fixture(scope="module")
def overhead(out_dir):
    stdout = run("compiled_overhead.py", "--quick", "--out", out_dir)
    return stdout, json.load(open(os.path.join(out_dir, "compiled_overhead.json")))


@pytest.fixture(scope="module")
def fd(out_dir):
    stdout = run("fd_accuracy.py", "--quick", "--out", out_dir)
    return stdout, json.load(open(os.path.join(out_dir, "fd_accuracy.json")))


def test_noisy_blackbox_quick(noisy, out_dir):
    stdout, data = noisy
    assert "machine:" in stdout and "target 1" in stdout and "target 2" in stdout
    assert [s["problem"] for s in data["summaries"]] == ["sphere30"]
    for s in data["summaries"]:
        assert os.path.exists(s["figure"])
        assert s["verdict"]["final"]["status"] in ("met", "MISSED")
    # Nobody spends more than its budget.
    assert all(r["evals"] <= r["budget"] for r in data["rows"] if r.get("budget"))


def test_noisy_blackbox_verdict_without_peers_is_not_measured():
    # --contenders with gdtools alone (or no peer installed) crashed in the verdict
    sys.path.insert(0, BENCH)
    try:
        import noisy_blackbox as nb
    finally:
        sys.path.remove(BENCH)
    table = {nb.DEFAULT: dict(per_budget={8: dict(median=0.5)}, evals_to_target=8.0)}
    verdict = nb.judge(table, [8])
    assert verdict["speed"]["status"] == verdict["final"]["status"] == "not measured"
    # a peer listed that ran nothing, and one that did not run to the full budget
    table["pycma"] = dict(per_budget={}, evals_to_target=float("inf"))
    assert nb.judge(table, [8])["final"]["status"] == "not measured"
    table["nevergrad NGOpt"] = dict(per_budget={4: dict(median=0.7)}, evals_to_target=float("inf"))
    verdict = nb.judge(table, [4, 8])
    assert verdict["final"]["status"] == "not measured" and verdict["speed"]["status"] == "met"


@pytest.mark.parametrize("contender,package", [
    ("nevergrad SPSA", "nevergrad"), ("nevergrad TBPSA", "nevergrad"), ("nevergrad NGOpt", "nevergrad"),
    ("noisyopt SPSA", "noisyopt"), ("Optuna TPE", "optuna"), ("pycma", "cma"),
])
def test_noisy_blackbox_peer_runs(contender, package, tmp_path):
    pytest.importorskip(package)
    sys.path.insert(0, BENCH)
    try:
        import noisy_blackbox as nb
    finally:
        sys.path.remove(BENCH)
    runner = nb.CONTENDERS[contender][0]
    out = runner(nb.PROBLEMS["sphere30"], [8, 16], 0)
    assert sorted(out) == [8, 16]
    for budget, (x, evals, *crash) in out.items():
        assert x.shape == (30,) and evals <= budget


def test_noisy_imu_quick(imu):
    stdout, data = imu
    assert "machine:" in stdout and "target 1" in stdout and "target 2" in stdout
    assert os.path.exists(data["summary"]["figure"])
    measured = {(t["rate"], t["batch"]) for t in data["truth"]}
    rows = [r for r in data["rows"] if r.get("budget")]
    assert rows and all(tuple(r["x"]) in measured for r in rows)  # every recommendation re-measured
    assert min(t["seconds"] for t in data["truth"]) == data["summary"]["reference"]["seconds"]
    assert not [r for r in data["rows"] if r.get("error")]  # gdtools kept to its budget, nobody crashed


@pytest.mark.parametrize("contender,package", [
    ("nevergrad NGOpt", "nevergrad"), ("Optuna TPE", "optuna"), ("pycma", "cma"),
])
def test_noisy_imu_peer_runs_within_budget(contender, package):
    pytest.importorskip(package)
    sys.path.insert(0, BENCH)
    try:
        import noisy_imu
    finally:
        sys.path.remove(BENCH)
    program = noisy_imu.Program(0.2)
    calls = []
    original = program.objective
    program.objective = lambda: (lambda params: calls.append(dict(params)) or original()(params))
    out = noisy_imu.CONTENDERS[contender][0](program, [3, 6], 0)
    assert sorted(out) == [3, 6]
    for params in out.values():
        program.space.check(params)
    # Each run keeps to its budget: NGOpt runs once per budget, Optuna and cma once, to the largest.
    assert len(calls) <= (3 + 6 if contender == "nevergrad NGOpt" else 6)


def test_compiled_overhead_quick(overhead):
    stdout, data = overhead
    assert "machine:" in stdout
    # adam and gdtools' default L-BFGS, each against its own hand-written loop
    assert {row["optimizer"] for row in data["overhead"]} == {"adam", "lbfgs"}
    for row in data["overhead"]:
        assert row["same_path"], "the engine and the hand-written loop must take the same steps"
        assert row["hand_s"] > 0 and row["engine_s"] > 0
    assert data["tolerance"][0]["gd"]["success"] and data["tolerance"][0]["scipy"]["success"]
    assert data["batch"]["agree"]
    fresh = data["new_data"]
    assert fresh["max_gap"] < 1e-3  # args= and scipy fit the same model to the same data
    assert fresh["closure_s"] > 0 and fresh["args_s"] > 0 and fresh["scipy_s"] > 0


def test_fd_accuracy_quick(fd, out_dir):
    stdout, data = fd
    assert "machine:" in stdout and os.path.exists(data["figure"])
    assert data["errors"]["gdtools Central, noise given"][0] < 1e-6  # noise-free: central is accurate


def test_fd_accuracy_numdifftools():
    pytest.importorskip("numdifftools")
    sys.path.insert(0, BENCH)
    try:
        import fd_accuracy
    finally:
        sys.path.remove(BENCH)
    g = fd_accuracy._numdifftools(fd_accuracy.Noisy(0.0, 0), fd_accuracy.X.copy(), 0.0)
    assert fd_accuracy.rel_error(g) < 1e-8


def test_run_all_writes_the_page(noisy, imu, overhead, fd, out_dir):
    run("run_all.py", "--docs-only", "--out", out_dir)
    page = open(os.path.join(out_dir, "benchmarks.md")).read()
    assert "## Targets" in page and "Noisy black-box suite" in page and "fori_loop" in page
    assert "IMU example program's real run time" in page
    assert "a closure against `args=`" in page
    assert "Finite-difference accuracy" in page and "DeepDream" in page
    assert "met" in page or "MISSED" in page


def test_gpu_script_runs_on_the_cpu_with_tiny_sizes(tmp_path):
    """benchmarks/gpu.sh, the one-go GPU benchmark, on the CPU with the development Python: every
    stage runs, the summary is written to OUT and benchmarks/results/ is left alone."""
    results = os.path.join(BENCH, "results", "gpu_dream.json")
    before = open(results).read() if os.path.exists(results) else None
    env = dict(os.environ, PY=sys.executable, SIZES="32", PROCESS_SIZE="48", TILE="32", ROUNDS="1", STEPS="1",
               BREAKDOWN_SIZES="", BFLOAT16_SIZES="32", CMDBUF_OFF_SIZES="32", TESTS="", NO_TORCH="1", OUT=str(tmp_path / "gpu"), WHEELS=str(tmp_path / "none"),
               XDG_CACHE_HOME=str(tmp_path / "cache"))
    proc = subprocess.run(["bash", os.path.join(BENCH, "gpu.sh")], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    summary = json.load(open(tmp_path / "gpu" / "gpu_dream.json"))
    assert summary["backend"] == "cpu"
    assert [(s["size"], s["precision"]) for s in summary["steps"]] == [
        (32, "float32"), (32, "bfloat16")]  # the default first, then bfloat16 for comparison
    assert [(r["run"], r["ok"], r["tile"]) for r in summary["process"]] == [
        ("cold", True, 32), ("warm", True, 32), ("warm2", True, 32)]
    assert [(r["size"], r["xla_flags"]) for r in summary["command_buffers_off"]] == [
        (32, "--xla_gpu_enable_command_buffer=")]
    assert (tmp_path / "gpu" / "warm_profile.txt").read_text().count("cumtime") >= 1
    assert "not a GPU run" in proc.stdout
    assert (open(results).read() if os.path.exists(results) else None) == before


def test_gpu_kernels_lists_the_operations_of_a_traced_network_call(tmp_path):
    """benchmarks/gpu_kernels.py on the CPU with a tiny tile: it traces, reads the Perfetto trace
    back and ranks the operations (on a GPU, the kernels)."""
    proc = subprocess.run([sys.executable, os.path.join(BENCH, "gpu_kernels.py"), "--size", "32", "--calls", "1",
                           "--top", "5", "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env=dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache")))
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.load(open(tmp_path / "kernels.json"))
    assert summary["backend"] == "cpu" and summary["precision"] == "float32" and summary["groups"]
    assert max(group["us_per_call"] for group in summary["groups"].values()) > 0
    for group in summary["groups"].values():  # (a host thread may show only instantaneous events)
        assert 0 < len(group["top"]) <= 5
        assert not any(row["name"].startswith("$") for row in group["top"])
        shares = [row["share"] for row in group["top"]]
        assert shares == sorted(shares, reverse=True) and sum(shares) <= 1.0 + 1e-6


def test_gpu_verdicts_and_kernel_lines_read_the_default_formats_step(tmp_path):
    """run_all.py judges the GPU step by the default number format's (float32) 1024² row, not by
    the bfloat16 comparison gpu.sh also times, and puts the kernel trace beside the row of the
    format it traced."""
    sys.path.insert(0, BENCH)
    try:
        import run_all
    finally:
        sys.path.remove(BENCH)
    steps = [{"size": 1024, "precision": "bfloat16", "gdtools_step_ms": 1.0, "torch_eager_step_ms": 7.5,
              "ratio_gdtools_over_torch": 0.133, "gdtools_step_cpu_ms": 1.1},
             {"size": 1024, "precision": "float32", "gdtools_step_ms": 2.5, "torch_eager_step_ms": 7.5,
              "ratio_gdtools_over_torch": 0.333, "gdtools_step_cpu_ms": 3.2}]
    (tmp_path / "gpu_dream.json").write_text(json.dumps({"steps": steps, "process": [], "device_name": "H100"}))
    verdicts = {target: (status, detail) for target, status, detail in run_all.dream_verdicts(str(tmp_path))}
    step = next(v for t, v in verdicts.items() if "≤ 1.2 ms" in t)
    ratio = next(v for t, v in verdicts.items() if "0.15×" in t)
    assert step[0] == "MISSED" and step[1].startswith("2.50 ms") and ratio == ("MISSED", "ratio 0.333 (PyTorch eager 7.5 ms)")
    kernels = {"size": 1024, "precision": "float32", "depthwise": "shifts", "device": "cuda:0",
               "wall_ms_per_call_untraced": 2.0,
               "groups": {"/device:GPU:0 / Stream #1": {"us_per_call": 1500.0, "events_per_call": 150,
                                                        "top": [{"name": "fusion", "us_per_call": 120.0}]},
                          "/host:CPU / python": {"us_per_call": 90.0, "events_per_call": 9, "top": []}}}
    text = " ".join(run_all.kernel_lines(kernels, steps))
    assert "the GPU ran 150 kernels for 1500 µs" in text and "busy 75% of the call" in text
    assert "largest kernel took 120 µs" in text and "3.2 ms of CPU time (all threads) in 2.5 ms of wall time" in text
    # 1.5 ms of kernels exceed the 1.2 ms target by themselves: not called launch-bound, however idle
    assert "kernels alone take longer than the 1.2 ms target" in text and "bound by launching" not in text
    fewer = {**kernels, "groups": {**kernels["groups"], "/device:GPU:0 / Stream #1": {
        "us_per_call": 1000.0, "events_per_call": 150, "top": [{"name": "fusion", "us_per_call": 120.0}]}}}
    launch = " ".join(run_all.kernel_lines(fewer, steps))
    assert "busy 50% of the call" in launch and "bound by launching kernels" in launch
    assert "kernels alone" not in launch
    busy = " ".join(run_all.kernel_lines({**fewer, "wall_ms_per_call_untraced": 1.1}, steps))
    assert "busy 91% of the call" in busy and "bound by launching" not in busy  # said only when the figures say it
    assert run_all.kernel_lines(None, steps) == []


def test_the_warm_dream_target_is_judged_by_the_slowest_warm_run(tmp_path):
    sys.path.insert(0, BENCH)
    try:
        import run_all
    finally:
        sys.path.remove(BENCH)

    def verdict(process):
        (tmp_path / "gpu_dream.json").write_text(json.dumps({"steps": [], "process": process, "device_name": "H200"}))
        return next((status, detail) for target, status, detail in run_all.dream_verdicts(str(tmp_path))
                    if "warm cache" in target)

    cold = {"run": "cold", "wall_s": 70.0, "ok": True}
    warm = [{"run": "warm", "wall_s": 2.9, "ok": True, "precision": "float32"},
            {"run": "warm2", "wall_s": 3.1, "ok": True, "precision": "float32"}]
    assert verdict([cold] + warm) == ("MISSED", "2.90 s and 3.10 s (H200, network in float32)")
    assert verdict([cold, warm[0]])[0] == "met"
    assert verdict([cold, {**warm[0], "ok": False}, warm[1]])[0] == "not measured"  # a failed run is no evidence
    assert verdict([cold])[0] == "not measured"
    lines = " ".join(run_all.gpu_lines({"process": [cold] + warm}))
    assert "again (warm, then warm2)" in lines
    assert "again (warm)" in " ".join(run_all.gpu_lines({"process": [cold, warm[0]]}))
