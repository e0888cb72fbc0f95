# The two set-up commands of the README are `make run` and `make test`; .ci/run calls `make test`.
# Both create the project's virtual environment at .venv/ and fetch the bundled models.
PYTHON      ?= python3
VENV        := .venv
BIN         := $(VENV)/bin
# CPU machines: the pin set that resolves (torch is the local CPU wheel). GPU machines: point
# TSX_CONSTRAINTS at a copy without the torch line so pip keeps the CUDA torch already installed.
TSX_CONSTRAINTS ?= requirements/constraints.txt
PIP_FLAGS   ?= --disable-pip-version-check --progress-bar off
PYTEST_ARGS ?=

.PHONY: run test lint models venv-app venv-dev clean-venv llama-wheel check-old-cpu

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_FLAGS) -q --upgrade "pip>=24" -c $(TSX_CONSTRAINTS) setuptools wheel

# --- llama.cpp: the project's own portable build of llama-cpp-python (packaging/llamacpp_wheel.py,
# docs/packaging.md). GGML_NATIVE=OFF + GGML_BACKEND_DL + CPU variants chosen at run time, no AMX
# variant (it crashes, llama.cpp #20824). Built once into .whl/<version+flags key>/ (12 min on 2 busy cores)
# and installed from that exact file, before anything else, so pip never builds it again nor takes a
# wheel from its cache that was built with other flags (--only-binary below: pip fails rather than
# build it from the sdist). LLAMA_CPU_VARIANTS=all builds every non-AMX variant.
LLAMA_WHEEL := $(PYTHON) packaging/llamacpp_wheel.py
LLAMA_KEY   := $(shell $(LLAMA_WHEEL) key)
LLAMA_BUILT := .whl/$(LLAMA_KEY)/BUILD_INFO.json
LLAMA_STAMP := $(VENV)/.stamp-llama-$(LLAMA_KEY)
NO_LLAMA_SDIST := --only-binary llama-cpp-python

$(LLAMA_BUILT): | $(BIN)/python
	$(BIN)/python packaging/llamacpp_wheel.py build

# $(1): the venv's python. The wheel by path, without pip's cache; then its own dependencies.
define install_llama_wheel
	$(1) -m pip install $(PIP_FLAGS) --no-cache-dir --no-deps --force-reinstall "$$($(LLAMA_WHEEL) path)"
	$(1) -m pip install $(PIP_FLAGS) --no-cache-dir -c $(TSX_CONSTRAINTS) "$$($(LLAMA_WHEEL) path)"
endef

$(LLAMA_STAMP): $(LLAMA_BUILT) | $(BIN)/python
	$(call install_llama_wheel,$(BIN)/python)
	rm -f $(VENV)/.stamp-llama-*
	touch $@

llama-wheel: $(LLAMA_BUILT)

# One stamp per extra set: reinstall only when the project's dependencies (or the llama.cpp build) change.
$(VENV)/.stamp-app: pyproject.toml $(TSX_CONSTRAINTS) $(LLAMA_STAMP) | $(BIN)/python
	$(BIN)/python -m pip install $(PIP_FLAGS) $(NO_LLAMA_SDIST) -c $(TSX_CONSTRAINTS) -e ".[desktop,attention]"
	touch $@

$(VENV)/.stamp-dev: pyproject.toml $(TSX_CONSTRAINTS) $(LLAMA_STAMP) | $(BIN)/python
	$(BIN)/python -m pip install $(PIP_FLAGS) $(NO_LLAMA_SDIST) -c $(TSX_CONSTRAINTS) -e ".[dev]"
	touch $@

venv-app: $(VENV)/.stamp-app
venv-dev: $(VENV)/.stamp-dev

models: | $(BIN)/python
	$(BIN)/tsx-models fetch

# The main job on the default model (resources/models/default.yaml: a bundled model, or a tuned
# model = bundled base + runtime LoRA adapters): the desktop app; on a machine without a display,
# the same engine translates the sample discharge summary on the command line. The default medical
# glossary (resources/glossary/) is always on; GLOSSARY=my_terms.tsv adds a term list of your own.
GLOSSARY ?=
run: venv-app
	$(BIN)/tsx-models fetch
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ]; then $(BIN)/tsx-medtrans; else \
	  echo "no display: translating resources/samples/discharge_summary_zh.txt with $$($(BIN)/python -m medcore.modelspec default)"; \
	  $(BIN)/tsx-medtrans translate -i resources/samples/discharge_summary_zh.txt \
	    $$( [ -n "$(GLOSSARY)" ] && [ -f "$(GLOSSARY)" ] && echo "-g $(GLOSSARY)" ); fi

# The default medical glossary, built from the shared term lists (HPO zh, TICO-19, CC-CEDICT medical)
# with each entry's source and priority and the licence notices (medcore/glossary.py). The result is
# committed under resources/glossary/, so a checkout without shared/data still ships it; `make package`
# rebuilds it first when the shared lists are there. A test fails when the committed copy is stale.
# Its reference audit (reference_audit.json: renderings human references reject, made advisory) is
# measured on the prepared training sentences: `python -m medcore.glossary audit` after `tsx-train prepare`.
SHARED_DATA ?= ../shared/data
.PHONY: glossary
glossary: | $(BIN)/python
	@if [ -d "$(SHARED_DATA)/terms" ]; then $(BIN)/python -m medcore.glossary build --data $(SHARED_DATA); \
	else echo "$(SHARED_DATA)/terms not found: keeping the committed resources/glossary/"; fi

test: venv-dev
	$(BIN)/tsx-models fetch
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: venv-dev
	$(BIN)/ruff check .

clean-venv:
	rm -rf $(VENV)

# The portable build on an emulated older CPU (qemu-user, `apt-get install qemu-user`): a short
# translation with the 0.5B and the self-test under `qemu-x86_64 -cpu Haswell` (AVX2, no AVX-512).
# A SIGILL is a failure. Slow (~minutes), so not part of `make test`. QEMU_CPU=... for another model.
QEMU_CPU ?= Haswell
check-old-cpu: venv-app
	$(BIN)/tsx-models fetch qwen2.5-coder-0.5b
	$(BIN)/python packaging/old_cpu_check.py --cpu $(QEMU_CPU)

# --- Packaging (issue 7; packaging/README.md). A separate venv without torch, so the core bundle
# cannot pick it up. `make package` builds the bundle and the .deb packages and prints sizes and
# times (attention is computed by llama.cpp in the app itself: no add-on). `make package-smoke` builds,
# installs into a fresh prefix and runs the self-test under Xvfb with networking blocked.
PKG_VENV    := build/pkg-venv
PKG_FLAGS   := $(PKG_ARGS)

.PHONY: package package-smoke

$(PKG_VENV)/.stamp: pyproject.toml $(TSX_CONSTRAINTS) $(LLAMA_BUILT)
	$(PYTHON) -m venv $(PKG_VENV)
	$(call install_llama_wheel,$(PKG_VENV)/bin/python)
	$(PKG_VENV)/bin/python -m pip install $(PIP_FLAGS) -q $(NO_LLAMA_SDIST) -c $(TSX_CONSTRAINTS) -e ".[desktop,package]"
	touch $@

package: $(PKG_VENV)/.stamp glossary
	$(PKG_VENV)/bin/tsx-models fetch $$($(PKG_VENV)/bin/python -m medcore.modelspec base)
	$(PKG_VENV)/bin/python packaging/build.py $(PKG_FLAGS)

package-smoke: $(PKG_VENV)/.stamp glossary
	$(PKG_VENV)/bin/tsx-models fetch $$($(PKG_VENV)/bin/python -m medcore.modelspec base)
	$(PKG_VENV)/bin/python packaging/smoke.py $(PKG_FLAGS)
