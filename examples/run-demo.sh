#!/usr/bin/env bash
# Starts the upstream fakes and the Airlock daemon with examples/demo.toml (used by `make run`).
set -euo pipefail
cd "$(dirname "$0")/.."
AIRLOCK=target/release/airlock
FAKE=target/release/fake-saas
CONFIG=examples/demo.toml

"$FAKE" demo &
FAKE_PID=$!
trap 'kill $FAKE_PID 2>/dev/null || true' EXIT
sleep 0.5

# The fake's demo credential goes into the encrypted vault, read from stdin as an operator would.
printf '%s' "demo-confluence-token" | "$AIRLOCK" secrets --config "$CONFIG" set confluence_token >/dev/null
printf '%s' "demo-zendesk-token" | "$AIRLOCK" secrets --config "$CONFIG" set zendesk_token >/dev/null

cat <<MSG

Airlock demo: daemon on http://127.0.0.1:7700; fakes: Confluence on :8781, Zendesk on :8782.
The daemon syncs both into its local store now and every 5 minutes.
Try, in another terminal:
  curl -s http://127.0.0.1:7700/v1/connectors | python3 -m json.tool
  curl -s -X POST http://127.0.0.1:7700/v1/connectors/confluence/invoke \\
       -H 'content-type: application/json' -d '{"op":"search","input":{"query":"quarterly airlock review"}}'
  curl -s -X POST http://127.0.0.1:7700/v1/search -H 'content-type: application/json' \\
       -d '{"query":"zendesk planted canary phrase"}' | python3 -m json.tool
  $AIRLOCK search --config $CONFIG "quarterly airlock review"
  $AIRLOCK sync --config $CONFIG --status
  $AIRLOCK invoke --config $CONFIG confluence get '{"id":"1000117"}'
  $AIRLOCK audit --config $CONFIG tail
  $AIRLOCK audit --config $CONFIG verify
Press Ctrl-C to stop.

MSG
"$AIRLOCK" serve --config "$CONFIG"
