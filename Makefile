# The two commands of the quick start: `make run` and `make test`.
# Both create .venv when it is missing and install what they need into it: `run` only what
# the demo needs (beamish with its web extra), `test` every development tool as well.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-web
NODE_STAMP := node_modules/.installed

.PHONY: run test lint typecheck unit bench browser clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml src/beamish/_runtime/_speedups.c | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP) $(RUN_STAMP)

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[web]'
	touch $(RUN_STAMP)

# The stock phoenix JavaScript client, from the npm registry, exactly as package-lock.json says.
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

# Debian's Chromium, for the end-to-end browser test (Playwright drives it; it cannot download
# its own browser here). Installed when missing and apt is usable.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null || \
	  { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }; }

# The main demo: the chat on http://127.0.0.1:4000 (the seed's examples: examples/seed/).
run: $(RUN_STAMP) $(NODE_STAMP)
	$(BIN)/beamish run examples.showcase.app:Showcase

test: $(STAMP) $(NODE_STAMP) browser lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest
	# the kernel again on the pure-Python send, the reference the C one must match
	BEAMISH_PURE_PYTHON=1 $(BIN)/pytest -q -p no:randomly tests/runtime

bench: $(STAMP)
	$(BIN)/python bench/runtime.py

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache .hypothesis
