#!/usr/bin/env bash
# Checks the OpenAPI document with tools from the ecosystem, against the built binary:
#  1. dumps /api-docs/openapi.json from `shop` (embedded profile, free port, no services);
#  2. lints it with Redocly CLI (deploy/openapi/redocly.yaml, the recommended ruleset);
#  3. generates a Python client from it with openapi-python-client and drives a whole shop flow
#     through that client only (deploy/openapi/flow_test.py), then a 429 against a binary with
#     a tiny request budget: a generated client must agree with the server on every answer.
#
#   deploy/openapi.sh            # everything (needs target/debug/shop: cargo build -p bootstrap --bin shop)
#   deploy/openapi.sh install    # only the tools
#
# The tools are pinned and installed once outside the repo (~/.cache/shop-openapi); a warm run
# takes seconds. Installs node/npm or python3-venv with apt when missing.
set -euo pipefail
# Sourced before any `cd`: the path is relative to where the script was called from.
# shellcheck source=deploy/apt.sh
. "$(dirname "$0")/apt.sh"
cd "$(dirname "$0")/.."

# 1.x: the last line that runs on the Node.js of Debian stable (18); 2.x needs 20.19 or later.
REDOCLY_VERSION=1.34.20
OPENAPI_PYTHON_CLIENT_VERSION=0.29.1
DATEUTIL_VERSION=2.9.0.post0
CACHE=${SHOP_OPENAPI_CACHE:-$HOME/.cache/shop-openapi}
NODE_DIR=$CACHE/node
VENV=$CACHE/venv
SHOP_BIN=${SHOP_BIN:-${CARGO_TARGET_DIR:-target}/debug/shop}

# No telemetry, no update banner.
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true

log() { printf '[openapi] %s\n' "$*" >&2; }

install_tools() {
  command -v npm >/dev/null 2>&1 || apt_install nodejs npm
  python3 -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv
  if [ "$("$NODE_DIR/node_modules/.bin/redocly" --version 2>/dev/null)" != "$REDOCLY_VERSION" ]; then
    log "installing @redocly/cli $REDOCLY_VERSION into $NODE_DIR"
    mkdir -p "$NODE_DIR"
    npm install --prefix "$NODE_DIR" --no-audit --no-fund --loglevel=error \
      "@redocly/cli@$REDOCLY_VERSION" >/dev/null
  fi
  # The generated client needs python-dateutil besides what the generator brings (httpx, attrs).
  local stamp="$VENV/.shop-openapi-$OPENAPI_PYTHON_CLIENT_VERSION-$DATEUTIL_VERSION"
  if [ ! -e "$stamp" ]; then
    log "installing openapi-python-client $OPENAPI_PYTHON_CLIENT_VERSION into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
      "openapi-python-client==$OPENAPI_PYTHON_CLIENT_VERSION" "python-dateutil==$DATEUTIL_VERSION"
    touch "$stamp"
  fi
}

install_tools
[ "${1:-}" = install ] && exit 0

[ -x "$SHOP_BIN" ] || { log "$SHOP_BIN is missing: cargo build -p bootstrap --bin shop"; exit 1; }

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# Starts the binary on the embedded profile (whatever the caller's environment points at) on a
# free port, with the given extra variables; sets URL once it listens.
ADMIN_TOKEN=openapi-check-admin-token-0123456789
start_shop() {
  local name=$1; shift
  local log=$WORK/$name.log
  env -u DATABASE_URL -u REDIS_URL -u KAFKA_BROKERS -u DATA_PLATFORM_URL -u METRICS_TOKEN \
    PORT=0 HOST=127.0.0.1 LOG_FORMAT=json RUST_LOG=warn,bootstrap=info ADMIN_TOKEN="$ADMIN_TOKEN" \
    "$@" "$SHOP_BIN" >"$log" 2>&1 &
  PIDS+=("$!")
  local port=
  for _ in $(seq 1 100); do
    port=$(grep -E '"message":"(serving|shop listening)"' "$log" | grep -o '"port":[0-9]*' \
      | head -n 1 | cut -d: -f2 || true)
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || { log "$name: the binary did not start"; cat "$log" >&2; exit 1; }
  URL=http://127.0.0.1:$port
}

# Many sign-ups come from loopback: the anonymous budgets are off (a rate of 0), as in the API
# suite.
start_shop flow ANON_RATE_LIMIT_PER_SECOND=0
DOC=${CARGO_TARGET_DIR:-target}/openapi/openapi.json
mkdir -p "$(dirname "$DOC")"
python3 -c 'import sys, urllib.request; open(sys.argv[2], "wb").write(urllib.request.urlopen(sys.argv[1]).read())' \
  "$URL/api-docs/openapi.json" "$DOC"
log "document: $DOC"

log "redocly lint (deploy/openapi/redocly.yaml)"
"$NODE_DIR/node_modules/.bin/redocly" lint --config deploy/openapi/redocly.yaml "$DOC"

log "generating a Python client (openapi-python-client $OPENAPI_PYTHON_CLIENT_VERSION)"
"$VENV/bin/openapi-python-client" generate --path "$DOC" --meta none \
  --output-path "$WORK/shop_client" --config deploy/openapi/client.yaml --fail-on-warning >/dev/null

log "the whole shop flow through the generated client"
PYTHONPATH=$WORK "$VENV/bin/python" deploy/openapi/flow_test.py flow "$URL" "$ADMIN_TOKEN"

# A budget of 2 requests, refilled at 1 per second: the third request in a row is refused.
start_shop limited RATE_LIMIT_PER_SECOND=1 RATE_LIMIT_BURST=2
log "429 through the generated client"
PYTHONPATH=$WORK "$VENV/bin/python" deploy/openapi/flow_test.py rate-limit "$URL" "$ADMIN_TOKEN"
log "OK"
