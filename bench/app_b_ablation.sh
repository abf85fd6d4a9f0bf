#!/usr/bin/env bash
# The paper's App. B ablation (Table 3) on a toy task: Flash(Latent-DPS) against every image starting at Flash's
# mean start from the same z_hat (adapter=fixed), on the same test images, with every metric available here
# (PSNR, SSIM, the toy perceptual proxies fd_toy and toy_feature_mse; LPIPS/FID when their weights are cached).
# Appends the table with date, commit and machine to bench/results/app_b_ablation.md.
#   N=124 EXPERIMENT=toy_varblur bash bench/app_b_ablation.sh   (124: every toy test crop)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
N=${N:-124}
EXPERIMENT=${EXPERIMENT:-toy_varblur}
RUNS=${RUNS:-outputs/app_b/$EXPERIMENT}
RESULTS=bench/results/app_b_ablation.md
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} WANDB_MODE=${WANDB_MODE:-offline} PYTHONUNBUFFERED=1

"$PY" -m flashdiff +experiment="$EXPERIMENT" num_images="$N" hydra.run.dir="$RUNS/flash"
START=$("$PY" -c "import csv, sys; r = list(csv.DictReader(open(sys.argv[1]))); \
print(round(sum(float(x['t_start']) for x in r) / len(r)))" "$RUNS/flash/samples.csv")
echo "Flash's mean start over $N images: $START"
"$PY" -m flashdiff +experiment="$EXPERIMENT" adapter=fixed adapter.t_start="$START" num_images="$N" \
  hydra.run.dir="$RUNS/fixed_$START"
"$PY" -m flashdiff.report "$RUNS/flash" "$RUNS/fixed_$START" --out "$RUNS/report"
{
  echo
  echo "## $EXPERIMENT, $N test images, fixed start $START ($(date -u +%F\ %H:%M) UTC, commit" \
    "$(git rev-parse --short HEAD), $(uname -m), $(nproc --all) cores, ${OMP_NUM_THREADS:-all} threads)"
  echo
  echo "Command: \`N=$N EXPERIMENT=$EXPERIMENT bash bench/app_b_ablation.sh\`"
  echo
  cat "$RUNS/report/table1.md"
} >> "$RESULTS"
echo "appended to $RESULTS"
