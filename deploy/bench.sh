#!/usr/bin/env bash
# Benchmarks (issue 5): build the release binaries, start `shop` in a profile on a fresh store,
# run the load scenarios with their correctness checks (crates/bench, binary shop-bench), stop
# the service and print the table. JSON goes to bench-results/<timestamp>-<profile>.json.
#
#   deploy/bench.sh                 # embedded profile (in-memory store, in-process gate/bus)
#   deploy/bench.sh full            # PostgreSQL + Redis + Kafka (tansu)
#   deploy/bench.sh embedded --b1-users 2000 --b4-seconds 5    # extra flags go to shop-bench
#
# Environment: BENCH_PORT (default 18080), BENCH_REDIS_DB (service's Redis db in the full
# profile, flushed first; default 13), BENCH_GATE_REDIS_DB (redis-benchmark's db, default 15),
# BENCH_KEEP_DB=1 keeps the full profile's database afterwards, BENCH_SKIP_BUILD=1 uses the
# binaries already built, RUST_LOG for the service (default: its own, info).
# Exit code: shop-bench's (1 when a correctness check failed).
set -euo pipefail

PROFILE=${1:-embedded}
[ $# -gt 0 ] && shift
case "$PROFILE" in
  embedded|full) ;;
  *) echo "usage: $0 [embedded|full] [shop-bench flags...]" >&2; exit 2 ;;
esac

cd "$(dirname "$0")/.."
ROOT=$(pwd)
PORT=${BENCH_PORT:-18080}
REDIS_DB=${BENCH_REDIS_DB:-13}
GATE_REDIS_DB=${BENCH_GATE_REDIS_DB:-15}
TS=$(date -u +%Y%m%dT%H%M%SZ)
OUT="$ROOT/bench-results"
mkdir -p "$OUT"
SERVICE_LOG="$OUT/$TS-$PROFILE-shop.log"
ADMIN_TOKEN="bench-admin-$TS-$RANDOM$RANDOM"

log() { printf '[bench.sh] %s\n' "$*" >&2; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if port_open "$PORT"; then
  log "port $PORT is already in use; set BENCH_PORT"; exit 2
fi

if [ "${BENCH_SKIP_BUILD:-0}" = 1 ]; then
  log "BENCH_SKIP_BUILD=1: using the binaries already in target/release"
else
  log "building release binaries (shop, shop-bench)"
  cargo build --release -p bootstrap -p bench
fi

# shop-bench signs up thousands of users from 127.0.0.1 in seconds: the per-client budget
# before authentication (ANON_RATE_LIMIT_*, 5/s by default) would refuse all but the first few,
# so it is switched off here, and only here; the per-user budget stays at its default.
SHOP_ENV=(PORT="$PORT" HOST=127.0.0.1 ADMIN_TOKEN="$ADMIN_TOKEN" ANON_RATE_LIMIT_PER_SECOND=0)
BENCH_ARGS=()
DB_NAME=""
TANSU_STARTED=0

if [ "$PROFILE" = full ]; then
  deploy/services.sh up
  DB_NAME="shop_bench_$(echo "$TS" | tr 'A-Z' 'a-z')"
  log "fresh database $DB_NAME, Redis db $REDIS_DB flushed"
  createdb -h 127.0.0.1 -U postgres "$DB_NAME"
  redis-cli -h 127.0.0.1 -p 6379 -n "$REDIS_DB" FLUSHDB >/dev/null
  if ! port_open "${TANSU_PORT:-9092}"; then
    deploy/tansu.sh start
    TANSU_STARTED=1
  fi
  DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB_NAME"
  # Topics of their own: the broker outlives the run, and a fresh database consuming an old
  # topic from offset 0 would replay earlier runs' events into it (coupon.issue.requested
  # from an async-mode run issued coupons to this run's users with the same ids).
  SHOP_ENV+=(DATABASE_URL="$DATABASE_URL"
             REDIS_URL="redis://127.0.0.1:6379/$REDIS_DB"
             KAFKA_BROKERS="127.0.0.1:${TANSU_PORT:-9092}"
             KAFKA_TOPIC_PREFIX="${DB_NAME}.")
  BENCH_ARGS+=(--database-url "$DATABASE_URL"
               --redis-host 127.0.0.1 --redis-port 6379 --redis-db "$GATE_REDIS_DB")
fi

SHOP_PID=""
cleanup() {
  if [ -n "$SHOP_PID" ] && kill -0 "$SHOP_PID" 2>/dev/null; then
    log "stopping shop (pid $SHOP_PID)"
    kill -TERM "$SHOP_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$SHOP_PID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$SHOP_PID" 2>/dev/null || true
  fi
  if [ "$TANSU_STARTED" = 1 ]; then deploy/tansu.sh stop || true; fi
  if [ -n "$DB_NAME" ] && [ "${BENCH_KEEP_DB:-0}" != 1 ]; then
    dropdb -h 127.0.0.1 -U postgres --if-exists "$DB_NAME" || true
  fi
}
trap cleanup EXIT

log "starting shop ($PROFILE) on 127.0.0.1:$PORT, log $SERVICE_LOG"
env "${SHOP_ENV[@]}" "$ROOT/target/release/shop" >"$SERVICE_LOG" 2>&1 &
SHOP_PID=$!

for _ in $(seq 1 150); do
  port_open "$PORT" && break
  if ! kill -0 "$SHOP_PID" 2>/dev/null; then
    log "shop exited during start-up:"; tail -n 20 "$SERVICE_LOG" >&2; exit 2
  fi
  sleep 0.2
done

set +e
"$ROOT/target/release/shop-bench" \
  --base-url "http://127.0.0.1:$PORT" --admin-token "$ADMIN_TOKEN" \
  --service-pid "$SHOP_PID" --profile "$PROFILE" --out-dir "$OUT" \
  "${BENCH_ARGS[@]}" "$@"
STATUS=$?
set -e
exit "$STATUS"
