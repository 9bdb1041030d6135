# phishguard — `make help` lists every target. Two commands set up everything:
#   make pipeline   # environment + data + the whole DVC pipeline
#   make test       # environment + the full test suite
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
# uv, resolved once to an absolute path before .venv/bin joins PATH, so the venv's python (which
# has neither pip nor uv) can never shadow it: uv from PATH, else an earlier user-level copy
# (~/.local/bin/uv), else a private copy in its own venv, installed by the `$(UV)` rule below.
# A venv works where the system Python is externally managed (PEP 668: Debian and Ubuntu refuse
# `pip install --user`); the marker is never overridden.
SYSTEM_PYTHON := $(firstword $(filter-out $(CURDIR)/$(VENV)/%,$(shell type -ap python3 2>/dev/null)))
UV_BOOTSTRAP_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/phishguard/uv
USER_UV := $(wildcard $(shell $(SYSTEM_PYTHON) -c 'import site; print(site.getuserbase())' 2>/dev/null)/bin/uv)
UV := $(or $(firstword $(filter-out $(CURDIR)/$(VENV)/%,$(shell type -ap uv 2>/dev/null))),$(USER_UV),$(UV_BOOTSTRAP_DIR)/bin/uv)
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# uv trusts the system's certificate store, as pip does (a TLS-inspecting proxy's CA included).
export UV_SYSTEM_CERTS ?= true
export UV_NATIVE_TLS ?= true
# Offline copy of the dataset used when PHISHING_DATA is not set and the file exists.
export PHISHING_DATA ?= $(wildcard $(CURDIR)/../shared/data/phishing_websites.csv)
# No telemetry: nothing but loopback and the package index is ever contacted.
export DVC_NO_ANALYTICS := 1
export BENTOML_DO_NOT_TRACK := true
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

$(UV):
	@[ -n "$(SYSTEM_PYTHON)" ] || { echo "python3 not found: install Python 3.11 (Debian/Ubuntu: sudo apt-get install python3 python3-venv) and re-run make" >&2; exit 1; }
	@echo "uv not found on PATH: installing it into its own venv, $(UV_BOOTSTRAP_DIR) (with $(SYSTEM_PYTHON))"
	@$(SYSTEM_PYTHON) -m venv "$(UV_BOOTSTRAP_DIR)" >/dev/null || { rm -rf "$(UV_BOOTSTRAP_DIR)"; \
		echo "could not create a venv with $(SYSTEM_PYTHON): on Debian/Ubuntu run 'sudo apt-get install python3-venv', or install uv (https://docs.astral.sh/uv/), then re-run make" >&2; exit 1; }
	@"$(UV_BOOTSTRAP_DIR)/bin/pip" install --quiet --disable-pip-version-check uv || { \
		echo "could not install uv with $(UV_BOOTSTRAP_DIR)/bin/pip: install it (https://docs.astral.sh/uv/) and re-run make" >&2; exit 1; }

# --compile-bytecode: every command starts without compiling the libraries' sources first, even
# where Python writes no __pycache__ (PYTHONDONTWRITEBYTECODE, read-only installs): ~0.5 s less
# for each Dask command (`distributed` alone), measured.
$(VENV)/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --compile-bytecode
	@touch $@

.PHONY: install
install: $(VENV)/.synced ## create .venv from uv.lock (exact versions)

.PHONY: data
data: install ## put the source data in data/landing/ (PHISHING_DATA, else the UCI download)
	phishguard fetch

.PHONY: params
params: install ## regenerate params.yaml from conf/ (Hydra), as `dvc exp run` does
	phishguard params

.PHONY: pipeline
pipeline: data ## set up and run the whole pipeline (dvc repro)
	dvc repro

.PHONY: test
test: install test-tools ## run the whole test suite (end-to-end tests included)
	pytest -q

# The browser test (tests/serving/test_ui_page.py) drives Debian's chromium. System packages are
# installed only on request: PHISHGUARD_INSTALL_SYSTEM_PACKAGES=1 (as root, with apt-get; .ci/run
# sets it). Otherwise a missing chromium is named here and the browser test is skipped, loudly.
PHISHGUARD_INSTALL_SYSTEM_PACKAGES ?= 0
CHROMIUM ?= chromium
.PHONY: test-tools
test-tools: ## check the system tools the tests use (PHISHGUARD_INSTALL_SYSTEM_PACKAGES=1: apt-get them)
	@if command -v $(CHROMIUM) >/dev/null 2>&1; then :; \
	elif [ "$(PHISHGUARD_INSTALL_SYSTEM_PACKAGES)" = 1 ]; then \
		[ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
			|| { echo "PHISHGUARD_INSTALL_SYSTEM_PACKAGES=1 needs root and apt-get: install chromium yourself (sudo apt-get install chromium)" >&2; exit 1; }; \
		echo "installing Debian's chromium for the browser test (apt-get, PHISHGUARD_INSTALL_SYSTEM_PACKAGES=1)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "*** chromium is missing: the browser test (tests/serving/test_ui_page.py) will be SKIPPED." >&2; \
		echo "*** Install it (Debian/Ubuntu: sudo apt-get install chromium), or let make do it as root:" >&2; \
		echo "*** make test PHISHGUARD_INSTALL_SYSTEM_PACKAGES=1" >&2; \
	fi

.PHONY: test-fast
test-fast: install ## run the tests without the slow end-to-end ones
	pytest -q -m "not e2e"

.PHONY: lint
lint: install ## ruff lint + format check
	ruff check .
	ruff format --check .

.PHONY: format
format: install ## apply ruff fixes and formatting
	ruff check --fix .
	ruff format .

.PHONY: dag
dag: install ## print the pipeline graph
	dvc dag

.PHONY: metrics
metrics: install ## show the headline metrics (reports/headline.json) and their change against the last commit
	dvc metrics show
	dvc metrics diff

# The experiments side by side, readable in a 160-column terminal: the headline metrics (the
# only DVC metrics) and the params that differ; the deps' hash columns (paths: a `/`) and the
# creation time dropped. The full table: `dvc exp show`.
COMPARE := dvc exp show --no-pager --only-changed --drop 'Created|.*/.*'
.PHONY: compare
compare: install ## the experiments side by side: headline metrics and the params that differ
	$(COMPARE)

.PHONY: plots
plots: install ## render the DVC plots to dvc_plots/index.html
	dvc plots show

.PHONY: clean
clean: ## remove pipeline outputs (DVC cache and .venv are kept)
	rm -rf data/raw data/validated data/quarantine data/processed models/model models/operating_point.json models/candidate.json dvc_plots

# --- data sources (issue 3) ---
S3_LOCAL_PORT ?= 5555

.PHONY: s3-local
s3-local: install ## start a local S3 endpoint (moto, 127.0.0.1) and the `local-s3` DVC remote
	python -m phishguard.data.local_s3 start --port $(S3_LOCAL_PORT)

.PHONY: s3-local-stop
s3-local-stop: install ## stop the local S3 endpoint and remove the `local-s3` remote
	python -m phishguard.data.local_s3 stop

.PHONY: load-dry-run
load-dry-run: install ## validate and count PHISHING_DATA for MongoDB, without a database
	phishguard load "$(PHISHING_DATA)" --dry-run
# --- serving (issue 5) ---
PORT ?= 3000

.PHONY: serve
serve: install ## serve the packaged model with BentoML on 127.0.0.1:$PORT (default 3000)
	bentoml serve service.service:Phishguard --host 127.0.0.1 --port $(PORT)

.PHONY: bento
bento: install ## build the bento offline from bentofile.yaml and the packaged model
	bentoml build --label git_revision=$$(git rev-parse HEAD)

.PHONY: bench-serve
bench-serve: install ## benchmark in-process vs BentoML vs FastAPI serving (benchmarks/results/serve.md)
	python -m benchmarks.serve
# --- experiments (issue 4) ---
MLFLOW_PORT ?= 5000
BASELINE ?= HEAD

.PHONY: mlflow-ui
mlflow-ui: install ## browse the MLflow runs (mlflow.db) at http://127.0.0.1:$(MLFLOW_PORT)
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false mlflow ui --host 127.0.0.1 --port $(MLFLOW_PORT) \
		--workers 1 --backend-store-uri "$${MLFLOW_TRACKING_URI:-sqlite:///$(CURDIR)/mlflow.db}"

.PHONY: sweep
sweep: install ## queue 6 configurations (3 models, 3 XGBoost depths), run them 2 at a time, show them
	dvc exp run --queue -C data/landing -S 'model=random_forest,extra_trees,logistic_regression'
	dvc exp run --queue -C data/landing -S model=xgboost -S 'model.max_depth=4,6,8'
	dvc queue start -j 2
	@while dvc queue status | grep -qE 'Queued|Running'; do sleep 10; done
	dvc queue status
	$(COMPARE)

.PHONY: report
report: install ## reports/report.md + PNG plots; metrics/params diff against BASELINE (default HEAD)
	python -m phishguard.modeling.report --baseline "$(BASELINE)"

.PHONY: bench-quality
bench-quality: install ## zoo + LightGBM/CatBoost on 5 seeds × 5 grouped folds, mean ± std, paired → benchmarks/results/quality.md
	OMP_NUM_THREADS=1 $(UV) run --frozen --group bench python -m benchmarks.quality --out benchmarks/results/quality.md

.PHONY: bench-quality-dask
bench-quality-dask: install ## xgboost_dask vs xgboost on the same 5 seeds × 5 grouped folds, paired → benchmarks/results/quality_dask.md
	OMP_NUM_THREADS=1 python -m benchmarks.quality --models xgboost,xgboost_dask --no-anchors --make-target bench-quality-dask --out benchmarks/results/quality_dask.md

.PHONY: bench-retrain
bench-retrain: install ## correction + poisoning through the promotion gate, seeds 0..4, mean ± std → benchmarks/results/retraining.md
	OMP_NUM_THREADS=1 python -m benchmarks.retraining --out benchmarks/results/retraining.md

.PHONY: bench-goal
bench-goal: install ## toward the goal: XGBoost grid on the training split, anchors + counts, learning curve (benchmarks/results/goal.md)
	OMP_NUM_THREADS=1 $(UV) run --frozen --group bench python -m benchmarks.goal --out benchmarks/results/goal.md

# --- hardening (issue 6) ---
.PHONY: test-hardening
test-hardening: install ## bad input, fuzzing, properties and faults of the service (tests/hardening)
	pytest -q tests/hardening

.PHONY: bench-log
bench-log: install ## /feedback id lookups in a 1 MB vs ~1 GB prediction log, and the synchronous write's cost (benchmarks/results/log.md)
	python -m benchmarks.log

.PHONY: bench-load
bench-load: install ## 50,000 requests at c=32 against bentoml serve (benchmarks/results/load.md)
	python -m benchmarks.load

.PHONY: bench-memory
bench-memory: install ## peak RSS of ingest, validate, load --dry-run and predict, 100k vs 3M rows (benchmarks/results/memory.md)
	python -m benchmarks.memory

.PHONY: bench-scale
bench-scale: install ## 5M rows: one process vs --workers 2 vs a TCP dask cluster, rows/s, RSS, ratios (benchmarks/results/scale.md)
	python -m benchmarks.scale

.PHONY: bench-predict
bench-predict: install ## rows/s of phishguard predict, Parquet and CSV, vs the model's own cost; PREDICT_BASELINE=<rev> compares (benchmarks/results/predict.md)
	python -m benchmarks.predict

# --- the experiment loop (issue 10) ---
.PHONY: bench-pipeline
bench-pipeline: install ## thread counts, cold stages, one dvc exp run, fresh set-up: before vs after (benchmarks/results/pipeline.md)
	python -m benchmarks.pipeline --out benchmarks/results/pipeline.md
# --- learning from analysts (issue 13) ---
.PHONY: retrain
retrain: install ## the feedback loop: land base + feedback, dvc repro (the gate promotes or keeps), print the decision, write the report
	phishguard fetch
	dvc repro
	python -m phishguard.modeling.promotion
	$(MAKE) --no-print-directory report
