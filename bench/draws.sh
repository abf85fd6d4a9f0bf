#!/usr/bin/env bash
# Several samples per image on the toy world: Flash(Latent-DPS) with samples_per_image=K on the first N test crops;
# appends the headline means (all draws), the best-of-K oracle and the std-vs-error statistics, with date, commit and
# machine, to bench/results/draws.md; the uncertainty figure goes to bench/results/draws_uncertainty.png.
#   N=16 K=4 bash bench/draws.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
N=${N:-16}
K=${K:-4}
RUN=${RUN:-outputs/draws}
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} WANDB_MODE=${WANDB_MODE:-disabled}
rm -rf "$RUN"
mkdir -p "$(dirname "$RUN")"
start=$SECONDS
"$PY" -m flashdiff samples_per_image="$K" num_images="$N" hydra.run.dir="$RUN" logger=disabled > "$RUN.log" 2>&1
seconds=$((SECONDS - start))
cp "$RUN/uncertainty.png" bench/results/draws_uncertainty.png
"$PY" - "$RUN/summary.json" "$N" "$K" "$seconds" <<'PYEOF' >> bench/results/draws.md
import json, os, platform, subprocess, sys, time
s, n, k, seconds = json.load(open(sys.argv[1])), *sys.argv[2:]
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
o, u = s["oracle_best_of_k"], s["uncertainty"]
print(f"\n## {time.strftime('%Y-%m-%d %H:%M')} · commit {commit} · {platform.machine()}, {os.cpu_count()} CPUs, "
      f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')} · Flash(Latent-DPS), toy varying blur, first "
      f"{n} test crops × K = {k} draws · {seconds} s\n")
print(f"Command: `N={n} K={k} bash bench/draws.sh` (figure: [draws_uncertainty.png](draws_uncertainty.png))\n")
print("| | PSNR | SSIM |\n|---|---|---|")
print(f"| every draw (the headline) | {s['psnr']:.2f} | {s['ssim']:.3f} |")
print(f"| posterior mean of the K draws | {u['psnr_of_posterior_mean']:.2f} | – |")
print(f"| oracle: best of K per image (an upper bound, not a method) | {o['psnr']:.2f} | {o['ssim']:.3f} |")
print(f"\nPearson correlation of the per-pixel std with |posterior mean − clean|: "
      f"{u['pixel_correlation_std_abs_error']:.3f}; of the per-image mean std with the per-image RMSE: "
      f"{u['image_correlation_std_rmse']:.3f} ({u['n_images']} images). Mean NFE {s['nfe_mean']:.1f}.")
PYEOF
tail -14 bench/results/draws.md
