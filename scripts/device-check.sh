#!/usr/bin/env bash
# The GPU check, ready to run on a Linux machine with an NVIDIA GPU and CUDA 12 (cuDNN 9): fetches
# onnxruntime-node's CUDA binaries (this project's .npmrc skips them), runs the fixtures and the GPU test tier
# on `cuda`, then `npm run bench`'s 64-frame workload at full model depth (the Qwen2-0.5B-shaped model with all
# 24 LLM and 27 tower layers) on `cuda`, which prints the SparseVILA ratios and dense decode against the GPU's
# memory-bandwidth bound. Run from the repository root; each stage prints its wall time.
#
#   bash scripts/device-check.sh [--dry-run]
#
# --dry-run prints the stages without running them (what a machine without a GPU can check).
set -euo pipefail
dry=0
[ "${1:-}" = "--dry-run" ] && dry=1

stage() {
  echo "== $1"
  shift
  if [ $dry -eq 1 ]; then
    echo "   $*"
    return
  fi
  local t0=$SECONDS
  "$@"
  echo "== done in $((SECONDS - t0)) s"
}

if [ $dry -eq 0 ]; then
  if ! command -v nvidia-smi >/dev/null; then
    echo "device-check: no nvidia-smi: this script needs a machine with an NVIDIA GPU and its driver" >&2
    exit 2
  fi
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
fi

stage "install the npm packages" npm install --no-audit --no-fund
stage "fetch onnxruntime-node's CUDA 12 binaries" env ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js
stage "build" npm run build
stage "fixtures and the GPU tier on cuda" env SPARSEVILA_GPU_PROVIDER=cuda npx vitest run test/gpu.test.ts
# The bound: the GPU's own memory bandwidth (GB/s; default an H100 SXM's 3350), not the host's.
stage "bench: 64 frames, full depth, on cuda" node scripts/bench.mjs --provider cuda --full-depth --models qwen2-0.5b --workloads 'video 64 frames' \
  --bandwidth-gbps "${GPU_BANDWIDTH_GBPS:-3350}" --out bench-results/cuda --no-doc
