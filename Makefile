# tradekernel — `make help` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SHARED_DATA ?= ../shared/data

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}'

PLUGINS := plugins/tradekernel-strategies plugins/tradekernel-models

# The models plug-in's train extra (torch CPU, onnx, matplotlib) installs in well under a
# minute, and with it `make test` runs the training tests (tests/models/) instead of skipping.
$(STAMP): pyproject.toml sdk/python/pyproject.toml $(addsuffix /pyproject.toml,$(PLUGINS)) kernel/book/_accel.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e sdk/python -e '.[dev]' $(addprefix -e ,$(PLUGINS))
	$(BIN)/pip install --quiet -e 'plugins/tradekernel-models[train]'
	touch $(STAMP)

# The TypeScript SDK's dependencies; without npm its tests skip (tests/sdk_typescript).
TS_SDK := sdk/typescript
NPM_STAMP := $(TS_SDK)/node_modules/.installed

$(NPM_STAMP): $(TS_SDK)/package.json $(TS_SDK)/package-lock.json
	@if command -v npm >/dev/null; then \
		cd $(TS_SDK) && npm ci --no-audit --no-fund && touch node_modules/.installed; \
	else echo "npm not found: the TypeScript SDK tests will be skipped"; fi

.PHONY: install
install: $(STAMP) $(NPM_STAMP) ## Create .venv and install the kernel, the SDKs and the dev tools

.PHONY: demo
demo: $(STAMP) ## Replay the bundled real data through books and the paper venue
	$(BIN)/tradekernel run

.PHONY: test
test: $(STAMP) $(NPM_STAMP) ## Run the test suite (tests on ../shared/data skip when it is absent)
	$(BIN)/python -m pytest

.PHONY: lint
lint: $(STAMP) $(NPM_STAMP) ## ruff, strict mypy, and generated gRPC code up to date
	$(BIN)/ruff check kernel sdk/python/src $(PLUGINS) tests bench scripts
	$(BIN)/ruff format --check kernel sdk/python/src $(PLUGINS) tests bench scripts
	$(BIN)/mypy
	$(BIN)/python scripts/gen_protos.py --check
	@if command -v npm >/dev/null; then cd $(TS_SDK) && npm run --silent check-generated; fi

.PHONY: protos
protos: $(STAMP) $(NPM_STAMP) ## Regenerate the gRPC code in the SDKs from protos/
	$(BIN)/python scripts/gen_protos.py
	@if command -v npm >/dev/null; then cd $(TS_SDK) && npm run --silent generate; fi

.PHONY: format
format: $(STAMP) ## Apply ruff's formatting and safe fixes
	$(BIN)/ruff format kernel sdk/python/src $(PLUGINS) tests bench scripts
	$(BIN)/ruff check --fix kernel sdk/python/src $(PLUGINS) tests bench scripts

.PHONY: soak
soak: $(STAMP) ## 10 minutes of recorded data at 50x through the emulator and a live adapter
	TRADEKERNEL_SOAK_SECONDS=600 $(BIN)/python -m pytest tests/live/test_soak.py -q -s -p no:cacheprovider

.PHONY: bench
bench: $(STAMP) ## Benchmarks against ccxt and NautilusTrader; writes bench/results.json
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench --data $(SHARED_DATA) --out bench/results.json

.PHONY: clean
clean: ## Remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build
	rm -f kernel/book/_accel*.so
