#!/usr/bin/env bash
# The prepared GPU check, for one call of a lent GPU machine (~8 minutes of its time):
#   here:   bash scripts/gpu_wheels.sh                      # the wheels its image lacks -> .whl/
#   there:  bash scripts/gpu_check.sh                        # device run, carry [".whl"], timeout 590
# It runs: nvidia-smi, tunedeck doctor, scripts/gpu_smoke.py (bf16/fp16/compile/LM/kill+resume/
# best model/predict on CUDA), then benchmarks/throughput.py at full size (BERT-base classifier and
# the 360M causal LM: seed-style Trainer, tuned Trainer, engine) and the engine with torch.compile.
# Everything it prints is also written under $OUT (which the device tool brings back).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# The package imports as tunedeck.core / tunedeck.tui: link this checkout in under that name.
mkdir -p /tmp/tdroot/tunedeck && ln -sfn "$PWD/core" /tmp/tdroot/tunedeck/core && ln -sfn "$PWD/tui" /tmp/tdroot/tunedeck/tui
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 3
  export PYTHONPATH=/tmp/site:/tmp/tdroot
else
  export PYTHONPATH=/tmp/tdroot
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers, datasets, accelerate; print('torch', torch.__version__, 'transformers', transformers.__version__, 'datasets', datasets.__version__, 'accelerate', accelerate.__version__)" 2>&1 | tee "$OUT/versions.txt"
timeout 60 python3 -m tunedeck.core.cli doctor 2>&1 | tee "$OUT/doctor.txt"
timeout 200 python3 scripts/gpu_smoke.py --out "$OUT" 2>&1 | tee "$OUT/smoke.log"
# Whole epochs of a fixed 2048-row sample per peer, one run each (the device time is short).
timeout 240 python3 benchmarks/throughput.py --workloads bert,lm --rows 2048 --repeat 1 \
  --json "$OUT/bench.json" 2>&1 | tee "$OUT/bench.log"
# Eager vs compiled (bounded shapes), two epochs each: compile time included / excluded.
timeout 150 python3 benchmarks/compile.py --size full --workloads bert --rows 2048 --threads 0 \
  --precision bf16 2>&1 | tee "$OUT/bench_compile.log"
echo "gpu_check done; files in $OUT"
