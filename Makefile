# Everything a command needs is installed here, from nothing but Python >= 3.11.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The oldest Python setup.cfg admits, for proving the lower bounds (the newest one otherwise).
LOWER_PYTHON ?= $(shell command -v python3.11 2>/dev/null || echo $(PYTHON))

.PHONY: run test lint typecheck unit lower-bounds image-check bench bench-delivery bench-tenants profile demo simulate chaos clean

$(STAMP): setup.cfg pyproject.toml
	@test -n "$(PYTHON)" || { echo "interlink needs Python 3.11 or newer on PATH" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/interlink serve

test: lint typecheck unit lower-bounds image-check

lint: $(STAMP)
	$(BIN)/ruff check interlink tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest

# Every runtime dependency at its declared lower bound, then the end-to-end round trip
# (the venv is kept under build/lower-bounds and remade when setup.cfg's bounds change).
lower-bounds:
	@test -n "$(LOWER_PYTHON)" || { echo "interlink needs Python 3.11 or newer on PATH" >&2; exit 1; }
	$(LOWER_PYTHON) deploy/ci/lower_bounds.py --dir build/lower-bounds

# The container image's install steps (deploy/image/install.sh) into a fresh venv, then a demo.
image-check:
	PYTHON=$(PYTHON) deploy/image/check.sh

bench: $(STAMP)
	$(BIN)/python -m bench

bench-delivery: $(STAMP)
	$(BIN)/python -m bench.delivery

bench-tenants: $(STAMP)
	$(BIN)/python -m bench.active_tenants

# Flame graphs of the shard under the delivery load, one per direction: bench/profile/shard-{wa,gc}.svg.
profile: $(STAMP)
	$(BIN)/python -m bench.profile

demo: $(STAMP)
	$(BIN)/interlink demo

simulate: $(STAMP)
	$(BIN)/interlink simulate

chaos: $(STAMP)
	$(BIN)/python -m bench.chaos

clean:
	rm -rf $(VENV) var build *.egg-info
