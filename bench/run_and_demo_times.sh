#!/usr/bin/env bash
# Times the README's main job (`python -m flashdiff`, 32 toy test images) and `make demo` (baseline, Flash and AE on
# 8 images) on the bundled toy world, into fresh folders, and appends the figures with date, commit and machine to
# bench/results/run_and_demo_times.jsonl. Issue 3's bars on 2 cores: main job <= 2 min, demo <= 10 min.
# Usage: bash bench/run_and_demo_times.sh   (about 3 minutes here; run it alone, the times are wall clock)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} WANDB_MODE=${WANDB_MODE:-offline}

t0=$(date +%s.%N)
"$PY" -m flashdiff hydra.run.dir="$work/main" >"$work/main.log" 2>&1 || { tail -n 30 "$work/main.log"; exit 1; }
t1=$(date +%s.%N)
make demo PY="$PY" DEMO_DIR="$work/demo" >"$work/demo.log" 2>&1 || { tail -n 30 "$work/demo.log"; exit 1; }
t2=$(date +%s.%N)

line=$("$PY" - "$work/main/summary.json" "$t0" "$t1" "$t2" <<'EOF'
import json, os, platform, subprocess, sys, time

summary, t0, t1, t2 = json.load(open(sys.argv[1])), *map(float, sys.argv[2:])
print(json.dumps({
    "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
    "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}",
    "main_seconds": round(t1 - t0, 1), "demo_seconds": round(t2 - t1, 1),
    "main": {k: summary[k] for k in ("n_images", "psnr", "ssim", "nfe_mean", "seconds_per_image")},
}))
EOF
)
echo "$line" | tee -a bench/results/run_and_demo_times.jsonl
