# `make run` and `make test` set everything up themselves on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip -q --disable-pip-version-check
STAMP := $(VENV)/.installed

.PHONY: setup run test test-all lint bench clean

setup: $(STAMP)

# torch==2.13.0 (the local CPU build) goes in first; every later install is pinned to it by
# constraints.txt so that no dependency can pull a CUDA build.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install torch==2.13.0
	$(PIP) install -c constraints.txt --config-settings editable_mode=compat -e ".[dev]"
	touch $(STAMP)

# The main job: ResNet-20 and SE-ResNet-20 trained side by side on the embedded CIFAR-10 (a class-balanced
# 10,000-image subset, 4 epochs of the quick recipe, evaluated on the full test set): about 8 minutes
# on 2 CPU cores. Results in runs/make-run/ (compare.md, compare.json, curves.png); rerunning replaces them.
run: setup
	$(BIN)/senet compare --model cifar_resnet20 --attention se --recipe quick_cifar --subset 10000 --epochs 4 \
		--out runs/make-run --force

lint: setup
	$(BIN)/ruff check .

# `make test`: everything but the tests marked slow, on every core (pytest-xdist), hypothesis's 'fast' profile.
# `make test-all` (what CI runs): every test, and the 'thorough' profile (4x the property examples).
# PYTHONDONTWRITEBYTECODE, where a machine sets it, is lifted for the tests: every xdist worker and every `senet`
# subprocess a test starts would otherwise compile senet's sources and the tests' rewritten asserts anew.
PYTEST := env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest

test: setup lint
	$(PYTEST) -q -m "not slow"

# The slow tier runs one test at a time: its float64 checks of the big public networks (VGG-16, SENet-154,
# the 101/152-layer ResNets) peak at 6-13 GB each, so two at once could exhaust a 24 GB machine.
test-all: setup lint
	$(PYTEST) -q -m "not slow" --hypothesis-profile thorough
	$(PYTEST) -q -m slow -n 0 --hypothesis-profile thorough

# The benchmark record (docs/benchmarks.md): ~18 min on 2 cores (the cifar suite ~13 of them), more when
# torch.compile's cache is cold.
bench: setup
	$(BIN)/senet bench --suite all --out bench-results

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
