#!/usr/bin/env bash
# Times the README's two commands on a fresh clone of this repository (HEAD), then `python -m flashdiff --help`
# from another folder (median of 5), and appends the figures, with date, commit and machine, to
# bench/results/setup_and_test_times.jsonl.
# Usage: bash bench/setup_and_test_times.sh   (takes ~5-10 minutes on 2 cores)
set -euo pipefail
repo=$(git rev-parse --show-toplevel)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone -q "$repo" "$work/flashdiff"
cd "$work/flashdiff"
export HF_HUB_OFFLINE=1 WANDB_MODE=offline
t0=$(date +%s.%N); make setup >"$work/setup.log" 2>&1 || { tail -n 30 "$work/setup.log"; exit 1; }; t1=$(date +%s.%N)
make test >"$work/test.log" 2>&1 || { tail -n 40 "$work/test.log"; exit 1; }; t2=$(date +%s.%N)
summary=$(grep -E '[0-9]+ passed' "$work/test.log" | tail -n 1)
# `python -m flashdiff --help` from another folder, 5 times (the first after the test run's byte-compiling): median
help=$(for k in 1 2 3 4 5; do s=$(date +%s.%N); (cd "$work" && flashdiff/.venv/bin/python -m flashdiff --help >/dev/null)
       python3 -c "print($(date +%s.%N) - $s)"; done | sort -n | sed -n 3p)
line=$(printf '{"date": "%s", "commit": "%s", "machine": "%s, %s CPUs", "setup_seconds": %.1f, "test_seconds": %.1f, "help_seconds_median_of_5": %.2f, "pytest": "%s"}' \
  "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(git rev-parse --short HEAD)" "$(uname -m)" "$(nproc --all)" \
  "$(python3 -c "print($t1 - $t0)")" "$(python3 -c "print($t2 - $t1)")" "$help" "$summary")
echo "$line" | tee -a "$repo/bench/results/setup_and_test_times.jsonl"
