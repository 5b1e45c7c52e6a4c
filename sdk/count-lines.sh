#!/usr/bin/env bash
# Code lines of each Rust connector (the line budget of issue 12): lines that are not blank, not
# comments (`//`, `///`, `//!`, `/* */`) and not inside a `#[cfg(test)]` item (the unit-test
# module). Usage: sdk/count-lines.sh [CONNECTOR_DIR|FILE...]  (default: every connectors/*/Cargo.toml;
# a FILE, e.g. host/templates/connector/lib.rs.tmpl, is counted on its own).
# `SHOW=1` lists the counted lines on stderr. Plain awk, so the figure is reproducible anywhere;
# to find where a test module ends, braces are counted outside strings (also multi-line and raw
# ones), char literals and comments.
set -euo pipefail
cd "$(dirname "$0")/.."

count() {
    awk '
    # Net `{` minus `}` on line s, outside literals; string state carries across lines.
    function braces(s,   i, n, c, d, h) {
        d = 0; n = length(s)
        for (i = 1; i <= n; i++) {
            c = substr(s, i, 1)
            if (instr) {
                if (c == "\\" && !raw) i++
                else if (c == "\"" && substr(s, i + 1, hashes) == substr("################", 1, hashes)) { instr = 0; i += hashes }
                continue
            }
            if (c == "/" && substr(s, i + 1, 1) == "/") break
            if (c == "\"") { instr = 1; raw = 0; hashes = 0; continue }
            if (c == "r" && match(substr(s, i + 1), /^#*"/)) {
                instr = 1; raw = 1; hashes = RLENGTH - 1; i += RLENGTH; continue
            }
            if (c == "\x27" && match(substr(s, i), /^\x27(\\.|[^\\\x27])\x27/)) { i += RLENGTH - 1; continue }
            if (c == "{") d++
            else if (c == "}") d--
        }
        return d
    }
    FNR == 1 { block = 0; skip = 0; depth = 0; pending = 0; instr = 0 }
    {
        s = $0; gsub(/^[ \t]+|[ \t]+$/, "", s)
        if (block) { if (index(s, "*/")) block = 0; next }
        if (skip) {
            depth += braces(s)
            if (depth > 0) opened = 1
            if (depth <= 0 && !instr && (opened || s ~ /;$/)) skip = 0
            next
        }
        if (s == "" || s ~ /^\/\//) next
        if (s ~ /^\/\*/) { if (!index(s, "*/")) block = 1; next }
        if (s ~ /^#\[cfg\(test\)\]/) { pending = 1; next }
        if (pending) {
            pending = 0
            if (s ~ /^#\[/) { pending = 1; next }   # more attributes of the same item
            instr = 0; depth = braces(s); opened = depth > 0
            if (depth > 0 || (s !~ /;$/ && s !~ /\}$/)) skip = 1
            next
        }
        n++
        if (ENVIRON["SHOW"]) print FILENAME ":" FNR ": " $0 > "/dev/stderr"
    }
    END { print n + 0 }' "$@"
}

dirs=("$@")
if [ ${#dirs[@]} -eq 0 ]; then
    for toml in connectors/*/Cargo.toml; do dirs+=("$(dirname "$toml")"); done
fi
total=0
for dir in "${dirs[@]}"; do
    if [ -f "$dir" ]; then files=("$dir"); else mapfile -t files < <(find "$dir/src" -name '*.rs' | sort); fi
    lines=$(count "${files[@]}")
    total=$((total + lines))
    printf '%-20s %5d\n' "$(basename "$dir")" "$lines"
done
printf '%-20s %5d\n' total "$total"
