#!/usr/bin/env bash
# Installs the real embedding model of the retrieval bench into target/embedding-model/venv (once;
# again when requirements.txt changes) and checks it against the model card's similarities.
# Never fails: when it cannot install (no python3 with venv, no package index), it writes the
# reason to target/embedding-model/skipped, and the bench prints that instead of the figures.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
out="$(cd "$here/../.." && pwd)/target/embedding-model"
venv="$out/venv"
mkdir -p "$out"
rm -f "$out/skipped"
if cmp -s "$here/requirements.txt" "$venv/.installed" 2>/dev/null; then
	exit 0
fi
skip() {
	echo "$1" >"$out/skipped"
	echo "embedding model: skipped: $1"
	rm -rf "$venv"
	exit 0
}
python="${PYTHON:-python3}"
command -v "$python" >/dev/null || skip "no $python on PATH"
rm -rf "$venv"
"$python" -m venv "$venv" >"$out/setup.log" 2>&1 || skip "$python -m venv failed (see $out/setup.log)"
"$venv/bin/pip" install --quiet --disable-pip-version-check --retries 2 --timeout 30 --no-deps -r "$here/requirements.txt" >>"$out/setup.log" 2>&1 \
	|| skip "pip install of tests/embedding-model/requirements.txt failed (see $out/setup.log)"
"$venv/bin/python" "$here/serve.py" --check >>"$out/setup.log" 2>&1 \
	|| skip "the model's check against its published similarities failed (see $out/setup.log)"
cp "$here/requirements.txt" "$venv/.installed"
echo "embedding model: installed in $venv"
