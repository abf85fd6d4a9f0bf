#!/usr/bin/env bash
# Re-measures every committed toy number that the 2026-12-02 conventions move (SSIM over the valid region only; a
# start picked up at the level it was matched to), each benchmark appending to its own record as usual:
#   make bench, App. B, the fixed-start sweep, every latent solver with and without Flash (+ pixel DPS, SwinIR and
#   the DDIM rows of App. D, rebuilt into experiments/results/toy_solvers), the toy report (make toy-report), the toy
#   eta x c sweep, the toy-world calibration (docs/toy_world.json), the autoencoder's SSIM, and the main job / demo
#   wall times. About 2 hours on 2 cores. Usage: bash bench/remeasure.sh   (SKIP="bench app_b ..." to leave some out)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SKIP=${SKIP:-}
W=${W:-outputs/remeasure}
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} WANDB_MODE=${WANDB_MODE:-disabled} PYTHONUNBUFFERED=1

step() {  # step NAME COMMAND...: run unless NAME is in $SKIP; print its wall time
  local name=$1
  shift
  if [[ " $SKIP " == *" $name "* ]]; then echo "== skip $name"; return; fi
  echo "== $name: $*"
  local start=$SECONDS
  "$@"
  echo "== $name: $((SECONDS - start)) s"
}

solver_runs() {  # the comparison rows beside bench/solvers.py's table, into the same workdir, then its report
  local d=$W/solvers
  "$PY" -m flashdiff +experiment=toy_varblur_dps num_images=8 hydra.run.dir="$d/toy_varblur-dps-none-n8"
  "$PY" -m flashdiff +experiment=toy_varblur solver=swinir adapter=none num_images=8 \
    hydra.run.dir="$d/toy_varblur-swinir-none-n8"
  "$PY" -m flashdiff +experiment=toy_varblur solver=latent_dps_ddim adapter=flash num_images=8 \
    hydra.run.dir="$d/toy_varblur-latent_dps_ddim-flash-n8"
  "$PY" -m flashdiff +experiment=toy_varblur solver=latent_dps_ddim adapter=flash_ddim_encoding num_images=8 \
    hydra.run.dir="$d/toy_varblur-latent_dps_ddim-flash_ddim_encoding-n8"
  "$PY" -m flashdiff.report "$d" --out experiments/results/toy_solvers
}

eta_c_sweep() {  # the toy eta x c sweep and its record
  local d=$W/sweep_toy_flash_eta_c out=experiments/results/toy/sweep_toy_flash_eta_c.md
  "$PY" -m flashdiff -m +sweep=toy_flash_eta_c num_images=4 hydra.sweep.dir="$d"
  {
    echo "# Toy sweep: Flash(Latent-DPS) η × c on 4 validation crops"
    echo
    echo "$(date -u +%F) UTC, commit $(git rev-parse --short HEAD), $(uname -m), $(nproc --all) cores. SSIM over the"
    echo "valid region and starts picked up at their matched level (the conventions of 2026-12-02)."
    echo
    echo '```'
    echo "python -m flashdiff -m +sweep=toy_flash_eta_c num_images=4"
    echo "python -m flashdiff.select $d"
    echo '```'
    echo
    "$PY" -m flashdiff.select "$d"
  } > "$out"
}

step bench "$PY" bench/flash_vs_baseline.py
step app_b env N=124 RUNS="$W/app_b" bash bench/app_b_ablation.sh
step fixed_start "$PY" bench/fixed_start_sweep.py --num-images 32 --starts 10 25 50 100 200
step solvers "$PY" bench/solvers.py --num-images 8 --workdir "$W/solvers"
step solver_extras solver_runs
step toy_report env RUNS="$W/toy_report" bash bench/toy_report.sh
step eta_c eta_c_sweep
step calibration "$PY" -m flashdiff.toy.evaluate_world
step autoencoder "$PY" bench/toy_autoencoders.py models/toy_ldm --downscales 2
step times bash bench/run_and_demo_times.sh
