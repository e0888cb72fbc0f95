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

.PHONY: run test lint models venv-app venv-dev bench clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_FLAGS) -q --upgrade "pip>=24" -c $(TSX_CONSTRAINTS) setuptools wheel

# One stamp per extra set: reinstall only when the project's dependencies change.
$(VENV)/.stamp-app: pyproject.toml $(TSX_CONSTRAINTS) | $(BIN)/python
	$(BIN)/python -m pip install $(PIP_FLAGS) -c $(TSX_CONSTRAINTS) -e ".[desktop,attention]"
	touch $@

$(VENV)/.stamp-dev: pyproject.toml $(TSX_CONSTRAINTS) | $(BIN)/python
	$(BIN)/python -m pip install $(PIP_FLAGS) -c $(TSX_CONSTRAINTS) -e ".[dev]"
	touch $@

venv-app: $(VENV)/.stamp-app
venv-dev: $(VENV)/.stamp-dev

models: | $(BIN)/python
	$(BIN)/tsx-models fetch

# The main job on the bundled default model: the desktop app; on a machine without a display,
# the same engine translates the sample discharge summary on the command line.
GLOSSARY ?= ../shared/data/terms/cedict_medical.tsv
run: venv-app
	$(BIN)/tsx-models fetch
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ]; then $(BIN)/tsx-medtrans; else \
	  echo "no display: translating resources/samples/discharge_summary_zh.txt with the bundled model"; \
	  $(BIN)/tsx-medtrans translate -i resources/samples/discharge_summary_zh.txt \
	    $$( [ -f "$(GLOSSARY)" ] && echo "-g $(GLOSSARY)" ); fi

test: venv-dev
	$(BIN)/tsx-models fetch
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: venv-dev
	$(BIN)/ruff check .

clean-venv:
	rm -rf $(VENV)

# --- Packaging (issue 7; packaging/README.md). A separate venv without torch, so the core bundle
# cannot pick it up. `make package` builds the bundle and the .deb packages and prints sizes and
# times; ATTENTION=1 adds the optional attention component (~1 GB). `make package-smoke` builds,
# installs into a fresh prefix and runs the self-test under Xvfb with networking blocked.
PKG_VENV    := build/pkg-venv
ATTENTION   ?= 0
PKG_FLAGS   := $(if $(filter 1 yes true,$(ATTENTION)),--attention,) $(PKG_ARGS)

.PHONY: package package-smoke

$(PKG_VENV)/.stamp: pyproject.toml $(TSX_CONSTRAINTS)
	$(PYTHON) -m venv $(PKG_VENV)
	$(PKG_VENV)/bin/python -m pip install $(PIP_FLAGS) -q -c $(TSX_CONSTRAINTS) -e ".[desktop,package]"
	touch $@

package: $(PKG_VENV)/.stamp
	$(PKG_VENV)/bin/tsx-models fetch qwen2.5-coder-1.5b
	$(PKG_VENV)/bin/python packaging/build.py $(PKG_FLAGS)

package-smoke: $(PKG_VENV)/.stamp
	$(PKG_VENV)/bin/tsx-models fetch qwen2.5-coder-1.5b
	$(PKG_VENV)/bin/python packaging/smoke.py $(PKG_FLAGS)
