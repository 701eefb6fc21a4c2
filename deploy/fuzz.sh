#!/usr/bin/env bash
# Schema-driven fuzzing of the live API: Schemathesis, driven by the server's own OpenAPI
# document, sends generated requests (valid and invalid) to the built binary, once on the
# embedded store and once on PostgreSQL (+ Redis and Kafka when they answer), side by side.
#
#   deploy/fuzz.sh                      # both profiles side by side, about 3 minutes warm
#   FUZZ_PROFILES=postgres deploy/fuzz.sh
#   FUZZ_SEED=random deploy/fuzz.sh     # explore: a new seed each run (printed)
#
# It fails on any 5xx, dropped connection, timed-out request or dead server, and on every
# failure of the enforced checks (FUZZ_CHECKS). Needs the binary: cargo build -p bootstrap --bin shop
#
# Environment:
#   FUZZ_CHECKS        Schemathesis checks run and enforced (comma-separated); default: no 5xx
#                      plus every response-conformance check and positive data acceptance
#   FUZZ_MAX_EXAMPLES  test cases per operation and phase in each pass (default 20)
#   FUZZ_SEED          Schemathesis seed (default fixed, so a run is repeatable; `random`)
#   FUZZ_TIMEOUT       hard bound per profile, seconds (default 420; a run takes about 3 minutes
#                      on an idle 2-core machine): a pass still running then fails the stage
#   FUZZ_PROFILES      `embedded postgres` (default), or one of them
#   FUZZ_OUT           reports and server logs (default $CARGO_TARGET_DIR/fuzz)
#   FUZZ_HOME          cache dir with the virtualenv (default ~/.cache/shop-fuzz: outside the repo)
#   SHOP_BIN           the binary (default $CARGO_TARGET_DIR/debug/shop)
#   TEST_DATABASE_URL  the PostgreSQL server for the scratch database (default 127.0.0.1:5432)
set -euo pipefail
# Sourced before any `cd`: the path is relative to where the script was called from.
# shellcheck source=deploy/apt.sh
. "$(dirname "$0")/apt.sh"
cd "$(dirname "$0")/.."
REPO=$(pwd)

# Pinned: the checks' names, the CLI and the report format are this version's.
SCHEMATHESIS_VERSION=4.32.5
ALL_CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,positive_data_acceptance

TARGET_DIR=${CARGO_TARGET_DIR:-target}
FUZZ_HOME=${FUZZ_HOME:-"$HOME/.cache/shop-fuzz"}
FUZZ_CHECKS=${FUZZ_CHECKS:-$ALL_CHECKS}
FUZZ_MAX_EXAMPLES=${FUZZ_MAX_EXAMPLES:-20}
FUZZ_SEED=${FUZZ_SEED:-20261202}
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-420}
FUZZ_PROFILES=${FUZZ_PROFILES:-"embedded postgres"}
FUZZ_OUT=$(realpath -m "${FUZZ_OUT:-"$TARGET_DIR/fuzz"}")
SHOP_BIN=${SHOP_BIN:-"$TARGET_DIR/debug/shop"}
TEST_DATABASE_URL=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432}
TEST_DATABASE_URL=${TEST_DATABASE_URL%/}
VENV="$FUZZ_HOME/venv"
PY="$VENV/bin/python"

log() { printf '[fuzz] %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The virtualenv with the pinned Schemathesis; a no-op (a second) when it is there already.
ensure_schemathesis() {
  if [ -x "$VENV/bin/schemathesis" ] \
    && [ "$("$VENV/bin/schemathesis" --version 2>/dev/null)" = "schemathesis, version $SCHEMATHESIS_VERSION" ]; then
    return
  fi
  command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv
  mkdir -p "$FUZZ_HOME"
  rm -rf "$VENV"
  # Debian splits venv (and the ensurepip it needs) out of python3.
  if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
    rm -rf "$VENV"
    apt_install python3-venv
    python3 -m venv "$VENV"
  fi
  log "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
}

free_port() {
  "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# `json_get FIELD` prints one top-level field of the JSON document on stdin.
json_get() { "$PY" -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# `api METHOD PATH TOKEN [BODY]`: one call that must succeed (2xx); prints the body.
api() {
  local method=$1 path=$2 token=$3 body=${4:-}
  local args=(-sS --fail-with-body -X "$method" "$BASE$path" -H 'content-type: application/json')
  [ -n "$token" ] && args+=(-H "Authorization: Bearer $token")
  [ -n "$body" ] && args+=(-d "$body")
  curl "${args[@]}"
}

rfc3339() { date -u -d "$1" +%Y-%m-%dT%H:%M:%SZ; }

# Users, a product, a coupon and a paid order, so that generated ids hit real objects and the
# deep paths (pay, cancel, refund, stock ledger, outbox) are reached, not only 404s.
seed_data() {
  SELLER=$(api POST /api/v1/users "$ADMIN" '{"name":"Fuzz Seller","role":"SELLER"}' | json_get token)
  BUYER=$(api POST /api/v1/users "" '{"name":"Fuzz Buyer"}' | json_get token)
  local product coupon issue order
  product=$(api POST /api/v1/products "$SELLER" '{"name":"Fuzz tea","price":1200,"stock":500}' | json_get id)
  api POST /api/v1/products "$SELLER" '{"name":"Paused tea","price":900,"stock":5,"status":"PAUSED"}' >/dev/null
  coupon=$(api POST /api/v1/coupons "$SELLER" "{\"name\":\"Fuzz drop\",\"discountType\":\"AMOUNT\",\"amount\":100,\"totalQuantity\":1000,\"perUserLimit\":5,\"startsAt\":\"$(rfc3339 '-1 minute')\",\"expiresAt\":\"$(rfc3339 '+1 day')\"}" | json_get id)
  api POST /api/v1/balance/charge "$BUYER" '{"amount":500000}' >/dev/null
  issue=$(api POST "/api/v1/coupons/$coupon/issue" "$BUYER" | json_get id)
  order=$(api POST /api/v1/orders "$BUYER" "{\"items\":[{\"productId\":$product,\"quantity\":2}],\"couponIssueId\":$issue}" | json_get id)
  api POST /api/v1/payments "$BUYER" "{\"orderId\":$order}" >/dev/null
  api POST /api/v1/orders "$BUYER" "{\"items\":[{\"productId\":$product,\"quantity\":1}]}" >/dev/null
}

# `fuzz_pass NAME TOKEN [schemathesis options...]`: Schemathesis as one caller, within what is
# left of the profile's time. Returns non-zero on any failure.
fuzz_pass() {
  local name=$1 token=$2
  shift 2
  local status=0
  schemathesis_run "$name" "$token" --phases examples,coverage,fuzzing "$@" || status=1
  # The stateful phase fills parameters from links it infers between operations, and such a
  # link can carry a value no schema allows: `null` (`GET /orders/None` from a coupon's unused
  # `orderId`) or an integral float (`"price": 21297962.0`, an integer to JSON Schema, a float
  # to the API, which refuses floats for money). Every check but positive data acceptance runs.
  schemathesis_run "$name-stateful" "$token" --phases stateful \
    --exclude-checks positive_data_acceptance "$@" || status=1
  return "$status"
}

schemathesis_run() {
  local name=$1 token=$2
  shift 2
  local left=$((DEADLINE - SECONDS))
  if [ "$left" -le 0 ]; then
    echo "pass $name: not started, the profile's ${FUZZ_TIMEOUT}s are spent" >>"$DIR/summary"
    return 1
  fi
  local auth=()
  [ -n "$token" ] && auth=(-H "Authorization: Bearer $token")
  local status=0
  # From the cache dir: Schemathesis and Hypothesis keep their own caches in the working directory.
  (cd "$FUZZ_HOME" && exec timeout --kill-after=5 "$left" "$VENV/bin/schemathesis" \
    --config-file "$REPO/deploy/schemathesis.toml" \
    run "$BASE/api-docs/openapi.json" \
    --checks "$FUZZ_CHECKS" --max-examples "$FUZZ_MAX_EXAMPLES" --seed "$SEED" \
    --workers 1 --request-timeout 10 --generation-database none --no-color \
    --continue-on-failure \
    --report junit --report-junit-path "$DIR/$name.junit.xml" \
    "${auth[@]}" "$@") >"$DIR/$name.log" 2>&1 || status=$?
  if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    echo "pass $name: TIMED OUT after ${left}s (a hang?)" >>"$DIR/summary"
  elif [ "$status" -ne 0 ]; then
    echo "pass $name: FAILED (exit $status), see $DIR/$name.log" >>"$DIR/summary"
  fi
  return "$status"
}

# The server's own count of the requests it answered, and of those answered with a 5xx.
server_counts() {
  curl -sS "$BASE/metrics" | "$PY" -c '
import re, sys
total = errors = 0
for line in sys.stdin:
    m = re.match(r"http_requests_total\{(.*)\} (\S+)$", line.strip())
    if m:
        n = int(float(m.group(2)))
        total += n
        if re.search(r"status=\"5\d\d\"", m.group(1)):
            errors += n
print(total, errors)'
}

# One profile, start to end; runs in a subshell of its own (its trap stops its server and drops
# its database). Writes $DIR/summary and $DIR/result.
run_profile() {
  local profile=$1
  DIR="$FUZZ_OUT/$profile"
  rm -rf "$DIR" && mkdir -p "$DIR"
  DEADLINE=$((SECONDS + FUZZ_TIMEOUT))
  local started=$SECONDS port
  # Not local: the EXIT trap runs after this function has returned.
  pid="" db=""
  port=$(free_port)
  BASE="http://127.0.0.1:$port"
  ADMIN="fuzz-admin-$RANDOM$RANDOM$RANDOM"
  cleanup_profile() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    if [ -n "$db" ]; then
      psql -q "$TEST_DATABASE_URL/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
      # The run's Redis keys too (its topics stay in the broker, as the test suite's do).
      if command -v redis-cli >/dev/null 2>&1 && port_open 6379; then
        redis-cli -p 6379 --scan --pattern "fuzz-$db:*" | xargs -r redis-cli -p 6379 del >/dev/null 2>&1 || true
      fi
    fi
  }
  trap cleanup_profile EXIT
  trap 'exit 130' INT TERM

  # No throttling: the fuzzer is one client sending thousands of requests.
  local vars=(PORT="$port" HOST=127.0.0.1 ADMIN_TOKEN="$ADMIN" RATE_LIMIT_PER_SECOND=0
    ANON_RATE_LIMIT_PER_SECOND=0 LOG_FORMAT=json RUST_LOG=info)
  local stack=memory
  if [ "$profile" = postgres ]; then
    db="shop_fuzz_$$_$port"
    psql -q "$TEST_DATABASE_URL/postgres" -c "CREATE DATABASE $db" >/dev/null
    vars+=(DATABASE_URL="$TEST_DATABASE_URL/$db")
    stack=postgresql
    # The rest of the full stack when it is up, under names of this run's own.
    if port_open 6379; then
      vars+=(REDIS_URL=redis://127.0.0.1:6379 REDIS_KEY_PREFIX="fuzz-$db:"); stack+="+redis"
    fi
    if port_open 9092; then
      vars+=(KAFKA_BROKERS=127.0.0.1:9092 KAFKA_TOPIC_PREFIX="fuzz-$db-"); stack+="+kafka"
    fi
  fi
  env -u DATABASE_URL -u REDIS_URL -u KAFKA_BROKERS "${vars[@]}" "$SHOP_BIN" >"$DIR/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 150); do
    curl -fsS "$BASE/health/ready" >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || { log "$profile: the server exited at start-up"; tail -n 20 "$DIR/server.log" >&2; exit 1; }
    sleep 0.2
  done
  curl -fsS "$BASE/health/ready" >/dev/null || { log "$profile: not ready within 30 s"; exit 1; }
  seed_data

  # Rolling or reissuing a token ends the caller's (or a victim's) session, so those two
  # operations get passes of their own, last, each with a caller made for it.
  local no_tokens=(--exclude-path-regex '/token$')
  local failed=0
  # Without a token a keyed POST /users is refused (400: its answer would carry a token), which
  # no schema can say; every other anonymous answer to valid data is a 401 or the public one.
  fuzz_pass anonymous "" "${no_tokens[@]}" --exclude-checks positive_data_acceptance || failed=1
  fuzz_pass admin "$ADMIN" "${no_tokens[@]}" || failed=1
  fuzz_pass seller "$SELLER" "${no_tokens[@]}" || failed=1
  fuzz_pass buyer "$BUYER" "${no_tokens[@]}" || failed=1
  local issuer roller
  issuer=$(api POST /api/v1/users "$ADMIN" '{"name":"Fuzz Issuer","role":"ADMIN"}' | json_get token)
  # One operation each: no links between operations, so no stateful run.
  local one=(--phases examples,coverage,fuzzing)
  schemathesis_run reissue-token "$issuer" "${one[@]}" --include-path-regex '/users/\{id\}/token$' || failed=1
  roller=$(api POST /api/v1/users "" '{"name":"Fuzz Roller"}' | json_get token)
  schemathesis_run roll-token "$roller" "${one[@]}" --include-path-regex '/users/me/token$' || failed=1

  # The server must have survived it all: alive, ready, and without a panic in its log.
  if ! kill -0 "$pid" 2>/dev/null || ! curl -fsS "$BASE/health/ready" >/dev/null 2>&1; then
    echo "the server is down or not ready after fuzzing" >>"$DIR/summary"; failed=1
  fi
  if grep -q 'panicked' "$DIR/server.log"; then
    echo "the server panicked: $(grep -m1 'panicked' "$DIR/server.log")" >>"$DIR/summary"; failed=1
  fi
  local counts requests server_errors cases
  counts=$(server_counts)
  requests=${counts% *}
  server_errors=${counts#* }
  [ "$server_errors" -eq 0 ] || { echo "the server answered $server_errors request(s) with a 5xx" >>"$DIR/summary"; failed=1; }
  # Schemathesis's counts: test cases generated (from each run's log) and failing tests (one
  # test per operation and caller, one per stateful run; from the JUnit reports).
  cases=$("$PY" - "$DIR" <<'PY'
import glob, re, sys
generated = tests = failing = 0
for log in glob.glob(sys.argv[1] + "/*.log"):
    m = re.search(r"^Test cases:\n\s+(\d+) generated", open(log, errors="replace").read(), re.M)
    generated += int(m.group(1)) if m else 0
for report in glob.glob(sys.argv[1] + "/*.junit.xml"):
    m = re.search(r'<testsuite [^>]*?errors="(\d+)" failures="(\d+)"[^>]*? tests="(\d+)"', open(report).read())
    if m:
        failing += int(m.group(1)) + int(m.group(2))
        tests += int(m.group(3))
print(f"{generated} test cases, {failing} of {tests} tests failing")
PY
)
  printf '%s (%s): %s requests sent in %ss, %s; %s\n' "$profile" "$stack" "$requests" \
    "$((SECONDS - started))" "$cases" "$([ "$failed" -eq 0 ] && echo PASSED || echo FAILED)" \
    | tee -a "$DIR/summary" >&2
  echo "$failed" >"$DIR/result"
}

main() {
  [ -x "$SHOP_BIN" ] || { log "no binary at $SHOP_BIN: cargo build -p bootstrap --bin shop"; exit 1; }
  ensure_schemathesis
  SEED=$FUZZ_SEED
  [ "$SEED" = random ] && SEED=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
  log "schemathesis $SCHEMATHESIS_VERSION, seed $SEED, $FUZZ_MAX_EXAMPLES examples, checks $FUZZ_CHECKS"
  log "profiles: $FUZZ_PROFILES (at most ${FUZZ_TIMEOUT}s each, side by side); reports in $FUZZ_OUT"
  mkdir -p "$FUZZ_OUT"
  local pids=() profile
  for profile in $FUZZ_PROFILES; do
    case $profile in embedded | postgres) ;; *) log "unknown profile $profile"; exit 2 ;; esac
    (run_profile "$profile") &
    pids+=($!)
  done
  trap 'kill "${pids[@]}" 2>/dev/null || true; wait' INT TERM
  wait "${pids[@]}" || true
  local status=0
  for profile in $FUZZ_PROFILES; do
    if [ "$(cat "$FUZZ_OUT/$profile/result" 2>/dev/null)" != 0 ]; then
      status=1
      log "$profile FAILED:"
      cat "$FUZZ_OUT/$profile/summary" >&2 2>/dev/null || true
      # Schemathesis's own account of each failure, with the curl command that reproduces it
      # (the first of it; the whole is in the pass's log).
      for f in "$FUZZ_OUT/$profile"/*.log; do
        [ "$(basename "$f")" = server.log ] && continue
        grep -q -E '^=+ (FAILURES|ERRORS) =+$' "$f" || continue
        log "--- $f"
        awk '/^=+ (FAILURES|ERRORS) =+$/ { p = 1 } /^=+ (WARNINGS|SUMMARY) =+$/ { p = 0 } p && n++ < 120' "$f" >&2
        sed -n '/^=* SUMMARY =*$/,$p' "$f" >&2
      done
    fi
  done
  [ "$status" -eq 0 ] && log "no 5xx, no dropped connection, no failed check (seed $SEED)"
  [ "$status" -eq 0 ] || log "reproduce with FUZZ_SEED=$SEED (and FUZZ_PROFILES=...); see $FUZZ_OUT"
  return "$status"
}

# On one line: bash stops reading this file here, even if it is edited during the run.
main "$@"; exit
