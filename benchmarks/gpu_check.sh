#!/usr/bin/env bash
# Issue 21's GPU checks, for a session that has a GPU. From the project root on the device machine:
#   bash .device/on-device.sh bash benchmarks/gpu_check.sh tests train    # ~4 minutes on one H200 (estimate)
#   bash .device/on-device.sh bash benchmarks/gpu_check.sh scale          # ~5 minutes (estimate)
# (device tool: carry [".device"], timeout_s 540; /work/shared/gpu/README.md). Stages: tests | scale | train | all.
# Everything it prints is also written under $OUT (the device tool's returned folder), else runs/gpu-check.
set -u
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
OUT_DIR=${OUT:-runs/gpu-check}
mkdir -p "$OUT_DIR"
stages=${*:-all}
want() { [[ " $stages " == *" $1 "* || " $stages " == *" all "* ]]; }
status=0
nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv | tee "$OUT_DIR/nvidia-smi.csv"
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())" | tee "$OUT_DIR/torch.txt"

if want tests; then
    # the GPU tests, then the device unit tests (the guard and the refusals) on this machine too
    python -m pytest -q -m gpu tests/gpu tests/unit/test_device.py -rs 2>&1 | tee "$OUT_DIR/pytest-gpu.txt"
    status=$((status | ${PIPESTATUS[0]}))
fi
if want train; then
    rm -rf "$OUT_DIR/default-model"
    python -m genedit train --data default --device cuda --out "$OUT_DIR/default-model" 2>&1 | tee "$OUT_DIR/train.txt"
    status=$((status | ${PIPESTATUS[0]}))
    python -m genedit eval --model "$OUT_DIR/default-model" --data default --device cuda --json "$OUT_DIR/eval.json" | tee "$OUT_DIR/eval.txt"
    status=$((status | ${PIPESTATUS[0]}))
    rm -rf "$OUT_DIR/default-model"  # 90 MB: too large to come back
fi
if want scale; then
    python -m benchmarks.bench_scale --shape t5-large --docs 10000,100000 --device cuda 2>&1 | tee "$OUT_DIR/bench_scale.jsonl"
    status=$((status | ${PIPESTATUS[0]}))
fi
exit $status
