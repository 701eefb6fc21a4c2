# Recipes for day-to-day work. Each is a thin alias for a plain command (see README.md), so
# nothing here is required: `just` is a convenience (`cargo install just`).

# Serve the whole API on 127.0.0.1:8080 with the embedded in-memory store.
run:
    cargo run -p bootstrap

# The whole test suite: starts PostgreSQL, Redis and the tansu broker as needed.
test *args:
    deploy/test.sh {{args}}

# Lints exactly as CI would want them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

fmt:
    cargo fmt --all

# Local stack for the full profile: PostgreSQL, Redis, tansu (Kafka protocol).
stack-up:
    deploy/services.sh up
    deploy/tansu.sh start

stack-down:
    deploy/tansu.sh stop

# Serve on PostgreSQL + Redis + Kafka (run `just stack-up` first).
run-full:
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/shop REDIS_URL=redis://127.0.0.1:6379 KAFKA_BROKERS=127.0.0.1:9092 cargo run -p bootstrap

# Benchmarks (docs/BENCHMARKS.md): embedded or full profile.
bench profile="embedded":
    deploy/bench.sh {{profile}}
