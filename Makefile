# Two commands on a fresh machine: `make demo` and `make test`. Both set everything up first and are idempotent.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
DEB_PACKAGES := fonts-noto-core fonts-noto-cjk libpango-1.0-0 libpangocairo-1.0-0 libcairo2
SUDO := $(shell [ "$$(id -u)" = "0" ] || echo sudo)
export HF_HUB_OFFLINE := 1
export PYTHONUNBUFFERED := 1

.PHONY: setup demo test test-fast clean

# Debian packages only when one is missing.
$(VENV)/.deb-done:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi
	@mkdir -p $(VENV) && touch $@

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# torch is pinned to the wheel that ships on this machine's local index (the CPU build of 2.13 cannot run torchvision).
$(VENV)/.torch-done: $(VENV)/bin/python
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.14.1 torchvision==0.29.1
	touch $@

$(VENV)/.pkg-done: $(VENV)/.torch-done $(VENV)/.deb-done pyproject.toml
	$(PIP) install -q -e ".[dev,render,plot,sklearn,bench,robust]"
	touch $@

setup: $(VENV)/.pkg-done

demo: setup
	$(VENV)/bin/multiseq demo

test: setup
	$(PY) -m pytest -q tests

test-fast: setup
	$(PY) -m pytest -q -x -m "not slow" tests

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
