#!/usr/bin/env bash
# bf16 against fp32 on the toy world (issue: ready for the GPU): the main job (Flash(Latent-DPS), toy varying blur)
# on the same N test crops in each precision; appends PSNR / SSIM / mean NFE, the per-image PSNR differences and the
# wall times with date, commit and machine to bench/results/precision.md. The bar: bf16 moves mean PSNR by <= 0.1 dB.
# On a CPU, bf16 autocast is slower than fp32 (no bf16 matrix units): the times say nothing about a GPU.
#   N=32 bash bench/precision.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
N=${N:-32}
RUNS=${RUNS:-outputs/precision}
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} WANDB_MODE=${WANDB_MODE:-disabled}
rm -rf "$RUNS"
mkdir -p "$(dirname "$RUNS")"
for p in fp32 bf16; do
  start=$SECONDS
  "$PY" -m flashdiff precision=$p num_images="$N" hydra.run.dir="$RUNS/$p" logger=disabled > "$RUNS.$p.log" 2>&1
  echo "$p $((SECONDS - start))" >> "$RUNS.times"
done
"$PY" - "$RUNS" "$N" <<'PYEOF' >> bench/results/precision.md
import csv, json, os, platform, subprocess, sys, time
runs, n = sys.argv[1], sys.argv[2]
s = {p: json.load(open(f"{runs}/{p}/summary.json")) for p in ("fp32", "bf16")}
rows = {p: {r["index"]: float(r["psnr"]) for r in csv.DictReader(open(f"{runs}/{p}/samples.csv"))} for p in s}
diff = [rows["bf16"][k] - rows["fp32"][k] for k in rows["fp32"]]
times = dict(line.split() for line in open(f"{runs}.times"))
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
print(f"\n## {time.strftime('%Y-%m-%d %H:%M')} · commit {commit} · {platform.machine()}, {os.cpu_count()} CPUs, "
      f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')} · first {n} toy test crops, Flash(Latent-DPS)\n")
print(f"Command: `N={n} bash bench/precision.sh`\n")
print("| precision | PSNR | SSIM | mean NFE | wall time (s) |\n|---|---|---|---|---|")
for p, v in s.items():
    print(f"| {p} | {v['psnr']:.3f} | {v['ssim']:.4f} | {v['nfe_mean']:.1f} | {times[p]} |")
print(f"\nbf16 − fp32: mean PSNR {s['bf16']['psnr'] - s['fp32']['psnr']:+.3f} dB; per image from {min(diff):+.3f} to "
      f"{max(diff):+.3f} dB; starts (NFE) identical: {s['bf16']['nfe_mean'] == s['fp32']['nfe_mean']}.")
PYEOF
rm -f "$RUNS.times"
tail -12 bench/results/precision.md
