# monai-fair: `make demo` runs the baseline fairness demo, `make test` runs the whole test suite.
# Both create .venv on first use (Python >= 3.10 with venv; torch pinned by constraints.txt).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --disable-pip-version-check -q -c constraints.txt
BUNDLE := bundles/baseline_classification
PYTEST_ARGS ?=

.PHONY: all venv label-env demo test test-fast lint docs bench wheel clean-outputs

all: test

$(BIN)/.installed: setup.cfg setup.py pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip setuptools wheel
	$(PIP) torch==2.13.0
	$(PIP) -e ".[all,test,tracking,docs]"
	touch $@

venv: $(BIN)/.installed

## demo: synthetic biased data -> baseline training (MONAI bundle) -> evaluation -> fairness report
# the synthetic demo images are 64x64: train at their size (the bundle's default, 128x128, suits real photographs)
DEMO_ARGS := --spatial_size "[64,64]"
demo: venv
	$(BIN)/python -m monai.bundle run --config_file $(BUNDLE)/configs/train.json --bundle_root $(BUNDLE) $(DEMO_ARGS)
	$(BIN)/python -m monai.bundle run --config_file "['$(BUNDLE)/configs/train.json','$(BUNDLE)/configs/evaluate.json']" --bundle_root $(BUNDLE) $(DEMO_ARGS)
	@echo; echo "Fairness report written to $(BUNDLE)/eval/ (report.json, report.md, *.png):"; echo
	@cat $(BUNDLE)/eval/report.md

## test: lint, the API reference build, then the whole suite (unit tests, real short bundle runs, CLI, integration)
test: venv label-env lint docs
	$(BIN)/python -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

## lint: ruff (rules and formatting; config in pyproject.toml)
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## docs: the documentation with the API reference from the docstrings (site/); any warning is an error
docs: venv
	$(BIN)/mkdocs build --strict

## label-env: the separate MONAI Label environment (.venv-label) used by monai_fair.apps.monailabel and its test
label-env:
	PYTHON=$(PYTHON) bash scripts/setup_monailabel_env.sh

test-fast: venv
	$(BIN)/python -m pytest -n 2 -m "not slow" $(PYTEST_ARGS)

## bench: long experiments (not part of the tests); see docs/benchmarks.md
bench: venv
	$(PIP) -e ".[bench]"
	@echo "Run the scripts in benchmarks/ individually; each prints the command used in docs/benchmarks.md."

## wheel: dist/monai_fair-*.whl and the sdist, bundles included (install: see README, "Installation")
wheel: venv
	rm -rf build dist
	$(BIN)/python -m pip wheel --no-deps --no-build-isolation -q -w dist .
	$(BIN)/python -c "from setuptools import build_meta as b; b.build_sdist('dist')"

clean-outputs:
	rm -rf bundles/*/models bundles/*/eval bundles/*/data bundles/*/runs site
