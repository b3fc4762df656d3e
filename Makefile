# The two set-up commands of the README: `make demo` (the main job) and `make test` (the suite).
# Both create .venv and install the project on first use. Where ../shared/wheels exists, torch comes
# from its CPU wheel instead of PyPI's multi-GB CUDA build.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
WHEELS := ../shared/wheels
TORCH_WHEEL := $(firstword $(wildcard $(WHEELS)/torch-*.whl))

.PHONY: install demo test lint clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(if $(TORCH_WHEEL),$(BIN)/python -m pip install -q --find-links $(WHEELS) $(TORCH_WHEEL))
	$(BIN)/python -m pip install -q $(if $(TORCH_WHEEL),--find-links $(WHEELS)) -e '.[dev]'
	touch $@

install: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/logad demo $(ARGS)

test: $(BIN)/.installed
	test -x /usr/bin/prometheus-alertmanager || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus-alertmanager)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(ARGS)

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	-$(BIN)/logad down
	rm -rf var
