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
for pair in confluence_token:demo-confluence-token zendesk_token:demo-zendesk-token \
            jira_token:demo-jira-token atera_key:demo-atera-key azure_secret:demo-azure-secret \
            azure_openai_key:demo-azure-openai-key openai_key:demo-openai-key \
            graph_secret:demo-graph-secret; do
  printf '%s' "${pair#*:}" | "$AIRLOCK" secrets --config "$CONFIG" set "${pair%%:*}" >/dev/null
done

# An admin API token for the demo's `default` tenant; the previous run's token is revoked first.
"$AIRLOCK" tokens --config "$CONFIG" revoke demo-admin >/dev/null 2>&1 || true
TOKEN=$("$AIRLOCK" tokens --config "$CONFIG" create --principal demo-admin --admin --groups atera-technicians,zendesk-agents,jsm-agents:SD 2>/dev/null)

cat <<MSG

Airlock demo: daemon on http://127.0.0.1:7700; local fakes: Confluence :8781, Zendesk :8782,
Jira SM :8783, Atera :8784, Azure :8785, OpenAI :8786, LM Studio :8787, Azure OpenAI :8788,
Microsoft Graph :8789.
The daemon syncs every stream into its local store now and every 5 minutes.
Dashboard (connectors, sync, approvals, audit; the token is in the fragment, which the browser
keeps to itself and the page moves into session storage):
  http://127.0.0.1:7700/#token=$TOKEN
Every /v1 route needs a bearer token. An admin token of the demo (tenant "default"; a new one
each run, shown only now):
  export AIRLOCK_TOKEN=$TOKEN
Try, in another terminal (after that export):
  curl -s -H "Authorization: Bearer \$AIRLOCK_TOKEN" http://127.0.0.1:7700/v1/connectors | python3 -m json.tool
  curl -s -X POST http://127.0.0.1:7700/v1/connectors/confluence/invoke -H "Authorization: Bearer \$AIRLOCK_TOKEN" \\
       -H 'content-type: application/json' -d '{"op":"search","input":{"query":"quarterly airlock review"}}'
  curl -s -X POST http://127.0.0.1:7700/v1/search -H "Authorization: Bearer \$AIRLOCK_TOKEN" \\
       -H 'content-type: application/json' -d '{"query":"zendesk planted canary phrase"}' | python3 -m json.tool
  curl -s -H "Authorization: Bearer \$AIRLOCK_TOKEN" 'http://127.0.0.1:7700/v1/audit?limit=5' | python3 -m json.tool
  $AIRLOCK search --config $CONFIG "quarterly airlock review"
  $AIRLOCK invoke --config $CONFIG chat chat '{"messages":[{"role":"user","content":"hello"}]}'
  $AIRLOCK invoke --config $CONFIG azure failed-provisions
  $AIRLOCK invoke --config $CONFIG msgraph user-context '{"email":"ada.adams@contoso.com"}'
  curl -s http://127.0.0.1:7700/metrics | grep airlock_
  $AIRLOCK sync --config $CONFIG --status
  $AIRLOCK invoke --config $CONFIG confluence get '{"id":"1000117"}'
  $AIRLOCK audit --config $CONFIG tail
  $AIRLOCK audit --config $CONFIG verify
  $AIRLOCK tokens --config $CONFIG list
Press Ctrl-C to stop.

MSG
"$AIRLOCK" serve --config "$CONFIG"
