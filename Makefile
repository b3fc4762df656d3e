# The two set-up commands of the README: `make demo` (the main job) and `make test` (the suite).
# Both create .venv and install the project on first use. Where ../shared/wheels exists, torch comes
# from its CPU wheel instead of PyPI's multi-GB CUDA build.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
WHEELS := ../shared/wheels
TORCH_WHEEL := $(firstword $(wildcard $(WHEELS)/torch-*.whl))

.PHONY: install tools demo test lint clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(if $(TORCH_WHEEL),$(BIN)/python -m pip install -q --find-links $(WHEELS) $(TORCH_WHEEL))
	$(BIN)/python -m pip install -q $(if $(TORCH_WHEEL),--find-links $(WHEELS)) -e '.[dev]'
	touch $@

install: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/logad demo $(ARGS)

# Debian tools the suite needs: promtool (tests/deploy) and Alertmanager (the `logad notify` test).
# Installed only when missing, so a machine that has them pays nothing.
DEBIAN_TOOLS := promtool:prometheus amtool:prometheus-alertmanager prometheus-alertmanager:prometheus-alertmanager
MISSING_DEBIAN := $(sort $(foreach t,$(DEBIAN_TOOLS),$(if $(shell command -v $(word 1,$(subst :, ,$(t)))),,$(word 2,$(subst :, ,$(t))))))

tools:
ifneq ($(MISSING_DEBIAN),)
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(MISSING_DEBIAN)
endif

test: $(BIN)/.installed tools
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(ARGS)

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	-$(BIN)/logad down
	rm -rf var
