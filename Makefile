# flashdiff — `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE ?= 1
export WANDB_MODE ?= offline
export PYTHONUNBUFFERED := 1

.PHONY: help setup lock test test-slow lint format run demo bench toy-models report toy-report clean

help:  ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

setup:  ## create .venv, install the pinned dependency set and flashdiff (editable)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	@echo "flashdiff installed in $(VENV); activate with: source $(VENV)/bin/activate"

lock:  ## re-resolve requirements.in into the pinned requirements.txt (fresh venv in .venv-lock)
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install -q -r requirements.in
	(echo "# Pinned, resolved dependency set installed by 'make setup' (one pip command; regenerate with 'make lock')."; \
	 .venv-lock/bin/pip freeze --all --exclude-editable | grep -vE "^(flashdiff|pip)==") > requirements.txt
	rm -rf .venv-lock

test:  ## run the default test suite (offline; slow tests excluded; two workers)
	$(PY) -m pytest -q -n 2 --dist worksteal

test-slow:  ## run only the slow tests
	$(PY) -m pytest -q -m slow

lint:  ## ruff over src, tests and bench
	$(VENV)/bin/ruff check src tests bench

format:  ## ruff --fix and format
	$(VENV)/bin/ruff check --fix src tests bench

run:  ## the main job on the bundled toy world (python -m flashdiff)
	$(PY) -m flashdiff

DEMO_DIR ?= outputs/demo
DEMO_IMAGES ?= 8
demo:  ## baseline Latent-DPS (N=1000), Flash(Latent-DPS) and AE on the same toy test images, side by side
	$(PY) -m flashdiff -m +experiment=toy_varblur adapter=none,flash,ae num_images=$(DEMO_IMAGES) \
		hydra.sweep.dir=$(DEMO_DIR)
	$(PY) -m flashdiff.report $(DEMO_DIR)

bench:  ## the Flash-vs-baseline benchmark on a fixed toy subset (appends to bench/results/)
	$(PY) bench/flash_vs_baseline.py

toy-models:  ## retrain the bundled toy models from scratch into models/ (the 2x world of conf/dataset/toy.yaml)
	$(PY) -m flashdiff.train train=autoencoder dataset.train_min_detail=0.03  # without the filter: 27.4-28.1 dB
	$(PY) -m flashdiff.train train=latent_ddpm
	$(PY) -m flashdiff.train train=latent_flow  # the toy rectified-flow prior (models/toy_flow)
	$(PY) -m flashdiff.train train=pixel_ddpm  # pixel DPS's model (models/toy_pixel_ddpm)
	$(PY) -m flashdiff.train train=severity_blur_bundled  # the bundled blur encoder's recipe (README)
	$(PY) -m flashdiff.train train=severity_inpaint dataset.train_min_detail=0.03
	$(PY) -m flashdiff.train train=swinir  # the supervised comparison (models/toy_swinir_blur)
	$(PY) -m flashdiff.train train=fd_features  # the toy feature network of fd_toy (models/toy_fd_features)
	$(PY) -m flashdiff.toy.evaluate_world

RUNS ?= outputs
REPORT_DIR ?= outputs/report
report:  ## Table 1 + figures from run folders: make report RUNS="dir1 dir2" [REPORT_DIR=...]
	$(PY) -m flashdiff.report $(RUNS) --out $(REPORT_DIR)

toy-report:  ## every toy study with small image counts, then the report into experiments/results/toy (42 min here)
	bash bench/toy_report.sh

clean:  ## remove caches and run outputs (keeps .venv and models/)
	rm -rf outputs multirun wandb .pytest_cache .ruff_cache build dist src/*.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
