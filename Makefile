# The README's two commands: `make bench` and `make test`. Both set up everything on a
# fresh machine: a virtualenv, torch and the torchvision built for it first (one pip call, so
# they match), then medfairx and every plugin in plugins/ (each its own distribution, installed
# like a third party's). `make install VENV=/some/dir` installs into another virtualenv.
VENV ?= .venv
PYTHON ?= python3
TORCH_SPEC ?= torch==2.14.1
TORCHVISION_SPEC ?= torchvision==0.29.1
# Optional extras the first-party plugins use (segment-anything needs only torch here).
EXTRAS ?= "segment-anything>=1.0,<2"
PY := $(VENV)/bin/python
PLUGIN_DIRS := $(sort $(dir $(wildcard plugins/*/pyproject.toml)))
STAMP := $(VENV)/.medfairx-installed

.PHONY: install bench lint test check clean

$(STAMP): pyproject.toml $(wildcard plugins/*/pyproject.toml)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)" "$(TORCHVISION_SPEC)"
	$(PY) -m pip install -q -e ".[test]" $(foreach p,$(PLUGIN_DIRS),-e $(p)) $(EXTRAS)
	touch $(STAMP)

install: $(STAMP)

bench: install
	$(VENV)/bin/medfairx bench

# ruff (style, imports, bugbear) and mypy --strict on the core, both configured in pyproject.toml
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest -q -n auto --dist loadfile

check: install
	$(VENV)/bin/medfairx check --all

clean:
	rm -rf $(VENV) runs .medfairx-cache
