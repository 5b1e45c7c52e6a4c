#!/usr/bin/env bash
# `make fuzz`: builds every cargo-fuzz target once, then runs each for FUZZ_SECONDS (default 60)
# from the committed seeds (fuzz/seeds/TARGET) plus the corpus it grows (fuzz/corpus/TARGET).
# Works on the stable toolchain: no sanitizer (`-s none`; ASan needs nightly), coverage
# instrumentation only, unoptimized with debug assertions (overflow checks on) so the build
# of wasmtime underneath stays short. A crash leaves its input in fuzz/artifacts/TARGET and
# makes the run fail after every target had its turn.
set -uo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-60}
if ! command -v cargo-fuzz >/dev/null; then
    cargo install cargo-fuzz --locked --version 0.13.2 || exit 1
fi
flags=(--fuzz-dir fuzz --dev --sanitizer none)
start=$(date +%s)
cargo fuzz build "${flags[@]}" || exit 1
echo "fuzz: built every target in $(( $(date +%s) - start )) s"
failed=()
for t in $(cargo fuzz list --fuzz-dir fuzz); do
    mkdir -p "fuzz/corpus/$t"
    extra=()
    [ -f "fuzz/dict/$t.dict" ] && extra+=("-dict=fuzz/dict/$t.dict")
    echo "fuzz: $t for ${secs} s"
    if ! cargo fuzz run "${flags[@]}" "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "${extra[@]}"; then
        failed+=("$t")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]} (inputs in fuzz/artifacts/; reproduce with cargo fuzz run --fuzz-dir fuzz --dev -s none TARGET FILE)"
    exit 1
fi
echo "fuzz: every target ran ${secs} s without a crash"
