#!/usr/bin/env bash
# The local Kafka-protocol broker for development and tests: tansu 0.6.0 (Apache-2.0), one
# native process with in-memory storage on 127.0.0.1:9092 (see the spec, EVENTS.md).
#
#   deploy/tansu.sh install   # build it once into the cache dir (minutes; reused afterwards)
#   deploy/tansu.sh start     # install if missing, start unless running, wait for the port
#   deploy/tansu.sh stop      # stop the broker started by this script (pid file)
#   deploy/tansu.sh restart | status
#
# Environment: TANSU_HOME (cache dir, default ~/.cache/shop-tansu: outside the repository),
# TANSU_PORT (default 9092). A tansu 0.6.0 already on PATH is used instead of building one.
# Storage is in memory: a restart starts from empty topics (tests create their own).
set -euo pipefail

TANSU_VERSION=0.6.0
# Storage engines: memory (dynostore; the default, fast), SQLite (libsql; durable and creates
# its own tables: the broker-crash test kills and restarts a broker on it) and PostgreSQL
# (postgres; durable, but it needs tansu's schema applied first, which is not part of the
# crates.io package). A cache built with other features is rebuilt.
TANSU_FEATURES=dynostore,postgres,libsql
TANSU_HOME=${TANSU_HOME:-"$HOME/.cache/shop-tansu"}
TANSU_PORT=${TANSU_PORT:-9092}
PID_FILE="$TANSU_HOME/tansu-$TANSU_PORT.pid"
LOG_FILE="$TANSU_HOME/tansu-$TANSU_PORT.log"

log() { printf '[tansu] %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The binary to run: ours in the cache dir, else a matching one on PATH.
tansu_bin() {
  if [ -x "$TANSU_HOME/bin/tansu" ] && [ "$(cat "$TANSU_HOME/features" 2>/dev/null)" = "$TANSU_FEATURES" ]; then
    echo "$TANSU_HOME/bin/tansu"
  elif command -v tansu >/dev/null 2>&1 && tansu --version 2>/dev/null | grep -q " $TANSU_VERSION\$"; then
    command -v tansu
  fi
}

install() {
  if [ -n "$(tansu_bin)" ]; then log "using $(tansu_bin)"; return; fi
  command -v cargo >/dev/null 2>&1 || { log "cargo is needed to build tansu"; exit 1; }
  mkdir -p "$TANSU_HOME"
  log "building tansu $TANSU_VERSION into $TANSU_HOME (takes a few minutes, once)"
  cargo install tansu --version "$TANSU_VERSION" --features "$TANSU_FEATURES" --locked \
    --force --root "$TANSU_HOME" >&2
  echo "$TANSU_FEATURES" >"$TANSU_HOME/features"
}

running_pid() {
  [ -f "$PID_FILE" ] || return 1
  local pid
  pid=$(cat "$PID_FILE")
  kill -0 "$pid" 2>/dev/null && echo "$pid"
}

start() {
  if pid=$(running_pid); then log "already running (pid $pid) on $TANSU_PORT"; return; fi
  if port_open "$TANSU_PORT"; then
    log "port $TANSU_PORT is taken by another process; not starting a second broker"; exit 1
  fi
  install
  mkdir -p "$TANSU_HOME"
  local bin url="tcp://127.0.0.1:$TANSU_PORT"
  bin=$(tansu_bin)
  log "starting $bin on $url (log: $LOG_FILE)"
  # setsid: the broker outlives this shell and is not hit by the caller's Ctrl-C.
  setsid "$bin" broker --kafka-cluster-id dev \
    --kafka-listener-url "$url" --kafka-advertised-listener-url "$url" \
    --storage-engine memory://tansu/ >"$LOG_FILE" 2>&1 < /dev/null &
  echo $! >"$PID_FILE"
  for _ in $(seq 1 100); do
    if port_open "$TANSU_PORT"; then log "up (pid $(cat "$PID_FILE"))"; return; fi
    if ! running_pid >/dev/null; then
      log "tansu exited; last lines of $LOG_FILE:"; tail -n 20 "$LOG_FILE" >&2; exit 1
    fi
    sleep 0.1
  done
  log "tansu did not open port $TANSU_PORT within 10 s"; exit 1
}

stop() {
  local pid
  if ! pid=$(running_pid); then log "not running"; rm -f "$PID_FILE"; return; fi
  kill "$pid"
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$PID_FILE"; log "stopped"; return; }
    sleep 0.1
  done
  log "pid $pid ignored SIGTERM for 5 s; sending SIGKILL"
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$PID_FILE"
}

status() {
  if pid=$(running_pid); then
    log "running (pid $pid), port $TANSU_PORT $(port_open "$TANSU_PORT" && echo open || echo closed)"
  elif port_open "$TANSU_PORT"; then
    log "port $TANSU_PORT open, but not by a broker this script started"
  else
    log "stopped"; return 3
  fi
}

case "${1:-start}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) status ;;
  *) echo "usage: $0 install|start|stop|restart|status" >&2; exit 2 ;;
esac
