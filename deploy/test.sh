#!/usr/bin/env bash
# The whole test suite, from a fresh clone: starts (or installs) what the tests talk to, then
# runs every test of the workspace and the HTTP API suite once more on the full stack, then
# fuzzes the built binary's API from its OpenAPI document (deploy/fuzz.sh).
#
#   deploy/test.sh            # everything
#   deploy/test.sh -p memory  # extra arguments go to the test runner (first pass only)
#
# Real services, real connections: PostgreSQL (127.0.0.1:5432), Redis (127.0.0.1:6379) and a
# Kafka-protocol broker (tansu on 127.0.0.1:9092, built once and cached outside the repo).
set -euo pipefail
cd "$(dirname "$0")/.."

export TEST_DATABASE_URL=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
export KAFKA_BROKERS=${KAFKA_BROKERS:-127.0.0.1:9092}
export RUST_BACKTRACE=${RUST_BACKTRACE:-1}

deploy/services.sh up

# On a new machine the broker's one-time build and the workspace's build run side by side (both
# are long and neither waits for the other); on a warm machine both are no-ops.
deploy/tansu.sh install &
tansu_install=$!
cargo test --no-run --workspace --features messaging-kafka/kafka-tests --quiet
wait "$tansu_install"
deploy/tansu.sh start

if cargo nextest --version >/dev/null 2>&1; then
  run_tests() { cargo nextest run --no-fail-fast "$@"; }
else
  run_tests() { cargo test --no-fail-fast "$@"; }
fi

echo "== monitoring: alert rules (promtool check + rule tests) and the dashboard"
deploy/monitoring.sh

echo "== every crate (adapters against the real services; API suite on the embedded profile)"
run_tests --workspace --features messaging-kafka/kafka-tests "$@"

if [ "$#" -eq 0 ]; then
  echo "== the HTTP API suite again on PostgreSQL + Redis + Kafka"
  TEST_PROFILE=full run_tests -p bootstrap --test api
fi

# The OpenAPI document checked by ecosystem tools against the built binary (embedded profile):
# Redocly lint, and a whole shop flow through a generated Python client (deploy/openapi.sh).
if [ "$#" -eq 0 ]; then
  echo "== the OpenAPI document: redocly lint and a generated client's flow"
  cargo build -p bootstrap --bin shop --quiet
  deploy/openapi.sh

  # Schema-driven fuzzing of the built binary (Schemathesis, installed into ~/.cache/shop-fuzz):
  # embedded store and PostgreSQL side by side, a few minutes; fails on any 5xx, dropped
  # connection or answer that contradicts the OpenAPI document. See docs/FUZZING.md.
  echo "== fuzzing the live API on the embedded store and on PostgreSQL + Redis + Kafka"
  deploy/fuzz.sh
fi
