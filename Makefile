# Airlock entry points. A fresh machine needs only `make run` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
WASM_TARGET := wasm32-wasip2
RELEASE := target/release
WASM_OUT := target/$(WASM_TARGET)/release
CONNECTORS := confluence zendesk openai atera azure jira-servicedesk msgraph
TEST_COMPONENTS := hostile wrong-world future-contract broken
DEMO_CONFIG := examples/demo.toml
DEMO_DATA := .airlock/demo

.PHONY: all build host connectors test-components run test bench fmt clippy clean help chromium

help:
	@echo "make run    build everything, start the fakes and the daemon with $(DEMO_CONFIG)"
	@echo "make test   build everything and run every test"
	@echo "make bench  run the benchmarks (ratios against in-run baselines)"

all: build

build: host connectors

# The wasm target is installed on demand so a fresh machine needs nothing else.
wasm-target:
	@rustup target list --installed 2>/dev/null | grep -q '^$(WASM_TARGET)$$' || rustup target add $(WASM_TARGET)

# The dashboard test drives Debian's chromium headless; installed on demand like the wasm target.
chromium:
	@command -v chromium >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

host:
	$(CARGO) build --release -p airlock -p fake-saas

connectors: wasm-target
	$(CARGO) build --release --target $(WASM_TARGET) $(addprefix -p ,$(CONNECTORS))

test-components: wasm-target
	$(CARGO) build --release --target $(WASM_TARGET) $(addprefix -p ,$(TEST_COMPONENTS))

run: build
	@./examples/run-demo.sh

test: build test-components chromium
	$(CARGO) test --release -p airlock -p fake-saas -p airlock-sdk -p airlock-tests

bench: build test-components
	$(CARGO) bench -p airlock

fmt:
	$(CARGO) fmt --all

clippy:
	$(CARGO) clippy --workspace --release -- -D warnings

clean:
	$(CARGO) clean
	rm -rf .airlock
