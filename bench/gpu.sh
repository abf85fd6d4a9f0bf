#!/usr/bin/env bash
# The GPU benchmark (bench/gpu.py): Flash(Latent-DPS) at the paper's real size with random weights, no downloads.
# No arguments; about 8 minutes on a GPU (the budget cuts what does not fit), a ~2-minute smoke version on a CPU.
# Appends to bench/results/gpu.md (or gpu_smoke.md); a copy of the section goes to $OUT/gpu.md when $OUT is set.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
export HF_HUB_OFFLINE=1 WANDB_MODE=disabled PYTHONUNBUFFERED=1
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT"
  "$PY" bench/gpu.py "$@" | tee "$OUT/gpu.log"
  cp bench/results/gpu*.md "$OUT/" 2>/dev/null || true
else
  "$PY" bench/gpu.py "$@"
fi
