#!/usr/bin/env bash
# Makes sure the local PostgreSQL and Redis the tests and the full profile need are running on
# 127.0.0.1 (5432, 6379): starts them when installed but stopped, installs them (Debian
# packages) when missing. Idempotent; safe to run again and again.
#
#   deploy/services.sh up      # ensure both are up
#   deploy/services.sh status
set -euo pipefail
# Sourced before any `cd`: the path is relative to where the script was called from.
# shellcheck source=deploy/apt.sh
. "$(dirname "$0")/apt.sh"

PG_PORT=${PG_PORT:-5432}
REDIS_PORT=${REDIS_PORT:-6379}

log() { printf '[services] %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 what=$2
  for _ in $(seq 1 60); do
    port_open "$port" && return 0
    sleep 0.5
  done
  log "$what did not open port $port"; return 1
}

ensure_postgres() {
  if port_open "$PG_PORT"; then log "PostgreSQL already up on $PG_PORT"; return; fi
  if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    apt_install postgresql postgresql-contrib
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  # Tests connect as postgres over TCP without a password, as CI's PostgreSQL allows.
  local hba="/etc/postgresql/$version/main/pg_hba.conf"
  if ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
    sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  fi
  log "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null \
    || pg_ctlcluster "$version" main start
  wait_port "$PG_PORT" PostgreSQL
}

ensure_redis() {
  if port_open "$REDIS_PORT"; then log "Redis already up on $REDIS_PORT"; return; fi
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
  mkdir -p /var/lib/redis /var/log/redis
  log "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" \
    --appendonly no --dir /var/lib/redis --logfile /var/log/redis/shop.log
  wait_port "$REDIS_PORT" Redis
}

case "${1:-up}" in
  up) ensure_postgres; ensure_redis ;;
  status)
    port_open "$PG_PORT" && log "PostgreSQL: up" || log "PostgreSQL: down"
    port_open "$REDIS_PORT" && log "Redis: up" || log "Redis: down" ;;
  *) echo "usage: $0 up|status" >&2; exit 2 ;;
esac
