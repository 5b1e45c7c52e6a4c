#!/usr/bin/env bash
# One build of the host for every cargo invocation the project makes (`make lint` runs this).
#
# Cargo enables on each package the union of the features that the packages of one invocation
# ask for, so a test crate that switches on one more feature of, say, libc gives `cargo test`
# a different libc than `cargo build`, and everything above it (tokio, wasmtime, cranelift, the
# host) is compiled twice; target/release/airlock then flips between the two builds. This
# compares the features of every package in the host's dependency graph, as `cargo build -p
# airlock` resolves them, with what each package set resolves them to:
#   $1  the Makefile's `host` packages (cargo build)
#   $2  the Makefile's `test` packages (cargo test: dev-dependencies count)
#   and `cargo test --workspace`;
#   $3  the connectors (cargo build --target wasm32-wasip2), see below.
# On a difference it names the packages and features: enable them in host/Cargo.toml (the
# `either` and rmcp client entries there are such pins), or keep them out of the test crates.
set -euo pipefail
cd "$(dirname "$0")/.."

host_pkgs=${1:-airlock fake-saas}
test_pkgs=${2:-airlock fake-saas airlock-tests}

# Every package of one resolution with its enabled features, one "name version features" line
# per build of it (a package built for build scripts too can have two lines).
features() {
    cargo tree --locked --prefix none -f '{p} {f}' "$@" |
        sed -e 's/ (\*)$//' -e 's/ ([^)]*)//' | sort -u
}
flags() { for p in $1; do printf -- '-p %s ' "$p"; done; }

base=$(mktemp)
trap 'rm -f "$base" "$base".*' EXIT
features -p airlock -e normal,build >"$base"
cut -d' ' -f1,2 "$base" | sort -u >"$base.pkgs"

failed=0
check() {
    local what=$1
    shift
    # Only the host's own packages: a test-only crate may have any features it likes.
    features "$@" | awk 'NR == FNR { own[$1 " " $2] = 1; next } ($1 " " $2) in own' "$base.pkgs" - >"$base.other"
    if ! diff -q "$base" "$base.other" >/dev/null; then
        echo "one-build: $what builds the host's dependencies with other features than \`cargo build -p airlock\`:"
        diff "$base" "$base.other" | grep "^[<>]" | sed -e "s/^</  cargo build -p airlock:/" -e "s/^>/  $what:/" || true
        failed=1
    fi
}
# shellcheck disable=SC2046 # one word per package flag
check "make host" $(flags "$host_pkgs") -e normal,build
# shellcheck disable=SC2046
check "make test" $(flags "$test_pkgs") -e normal,build,dev
check "cargo test --workspace" --workspace -e normal,build,dev

# `make connectors` (a second invocation, for wasm32-wasip2) runs wit-bindgen's macro, built on
# the same code generators as wasmtime's macros. With the same features they are the same build
# units, and `make connectors` reuses them from `make host` instead of compiling them again:
# sdk/Cargo.toml's build-dependencies align the features. `$3` is the connectors.
connectors=${3:-}
if [ -n "$connectors" ]; then
    shared='^(wasmparser|wit-parser|wit-component|wasm-encoder|wasm-metadata|semver|syn|serde_derive) '
    # shellcheck disable=SC2046
    features $(flags "$connectors") --target wasm32-wasip2 -e normal,build | grep -E "$shared" >"$base.conn" || true
    grep -E "$shared" "$base" | grep -vxFf - "$base.conn" >"$base.miss" || true
    if [ -s "$base.miss" ]; then
        echo "one-build: make connectors builds these code generators with features make host does not give them:"
        sed 's/^/  /' "$base.miss"
        echo "one-build: align them in sdk/Cargo.toml's build-dependencies, or make connectors compiles them again"
        connectors_failed=1
    fi
fi

if [ "${connectors_failed:-0}" -ne 0 ] && [ "$failed" -eq 0 ]; then
    exit 1
fi
if [ "$failed" -ne 0 ]; then
    echo "one-build: enable these features in host/Cargo.toml (or drop them from the test crates), so that"
    echo "one-build: \`make run\` and \`make test\` share one build of wasmtime and the host"
    exit 1
fi
echo "one-build: the host's $(wc -l <"$base.pkgs") dependencies resolve alike for cargo build, make host, make test and cargo test --workspace"
