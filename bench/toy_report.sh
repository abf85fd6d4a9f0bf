#!/usr/bin/env bash
# The toy studies (experiments/toy_study_*.yaml) with small image counts, then the report (Table 1 + figures) into
# experiments/results/toy/. `make toy-report` runs it. Measured on 2 cores with the defaults on the 2x toy world
# (2026-11-29, one thread beside another job): 28 min 39 s in all: Table 1 blur 200 s and inpainting 210 s, noise
# robustness 808 s, ordering studies 91 + 78 s, mismatch 65 s, fixed starts 235 + 15 s, contributors 10 s,
# report 7 s; most of it the Latent-DPS baselines from pure noise.
# The smoke run below plus EXTRA="solver.num_steps=200 solver.delta=1" (a 200-step grid, δ = 1) took 10.6 min on
# a CPU shared with other jobs (the 14 noise-study runs: 4.3 min).
# Image counts and extra overrides come from the environment, e.g. a smoke run:
#   N_TABLE=2 N_NOISE=2 N_FIXED=2 N_MISMATCH=2 N_ORDER=10 N_CONTRIB=8 OUT=/tmp/toy bash bench/toy_report.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-experiments/results/toy}
RUNS=${RUNS:-outputs/toy_report}  # run folders (git-ignored); only the report goes to $OUT
N_TABLE=${N_TABLE:-8}        # Table 1: Flash, baseline, AE on each toy task (the baseline costs ~25 s/image)
N_NOISE=${N_NOISE:-4}        # noise robustness: 7 noise levels x (Flash + baseline)
N_FIXED=${N_FIXED:-8}        # fixed starts i' = 10..500 plus Flash on the same images
N_MISMATCH=${N_MISMATCH:-16} # 2 encoders x 2 tasks, Flash only
N_ORDER=${N_ORDER:-100}      # ordering accuracy: encoder forwards only
N_CONTRIB=${N_CONTRIB:-100}  # sigma_hat with noise only vs blur + noise, no diffusion (adapter=ae)
EXTRA=${EXTRA:-}             # overrides added to every reconstruction run
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} WANDB_MODE=${WANDB_MODE:-offline} PYTHONUNBUFFERED=1

step() {  # run one command, print its wall time
  echo "== $*"
  local start=$SECONDS
  "$@"
  echo "== $((SECONDS - start)) s"
}

# shellcheck disable=SC2086  # EXTRA holds several overrides
step "$PY" -m flashdiff -m +experiment=toy_varblur adapter=flash,none,ae num_images="$N_TABLE" \
  hydra.sweep.dir="$RUNS/table_blur" $EXTRA
step "$PY" -m flashdiff -m +experiment=toy_inpaint adapter=flash,none,ae num_images="$N_TABLE" \
  hydra.sweep.dir="$RUNS/table_inpaint" $EXTRA
step "$PY" -m flashdiff -m +experiment=toy_study_noise num_images="$N_NOISE" hydra.sweep.dir="$RUNS/noise" $EXTRA
step "$PY" -m flashdiff.severity_study +experiment=toy_study_ordering study.num_images="$N_ORDER" \
  hydra.run.dir="$RUNS/ordering"
step "$PY" -m flashdiff.severity_study +experiment=toy_study_ordering operator=toy_inpaint \
  severity_encoder=models/toy_severity_inpaint study.num_images="$N_ORDER" hydra.run.dir="$RUNS/ordering_inpaint"
step "$PY" -m flashdiff -m +experiment=toy_study_mismatch num_images="$N_MISMATCH" hydra.sweep.dir="$RUNS/mismatch" \
  $EXTRA
step "$PY" -m flashdiff -m +experiment=toy_study_fixed_start num_images="$N_FIXED" \
  hydra.sweep.dir="$RUNS/fixed_start" $EXTRA
step "$PY" -m flashdiff +experiment=toy_varblur num_images="$N_FIXED" hydra.run.dir="$RUNS/fixed_start/flash" $EXTRA
step "$PY" -m flashdiff -m +experiment=toy_study_contributors num_images="$N_CONTRIB" \
  hydra.sweep.dir="$RUNS/contributors" $EXTRA
step "$PY" -m flashdiff.report "$RUNS" --out "$OUT"
