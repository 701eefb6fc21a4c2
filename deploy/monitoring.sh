#!/usr/bin/env bash
# Checks the monitoring set-up in deploy/monitoring: the alert rules are valid Prometheus rules
# and their unit tests pass (promtool, from Debian's `prometheus` package, installed when
# missing), and the Grafana dashboard is valid JSON. That every metric the rules and the
# dashboard name is exported by the service is checked against a live /metrics by
# tests/tests/monitoring.rs (part of the workspace tests).
#
#   deploy/monitoring.sh
set -euo pipefail
# Sourced before any `cd`: the path is relative to where the script was called from.
# shellcheck source=deploy/apt.sh
. "$(dirname "$0")/apt.sh"
cd "$(dirname "$0")/monitoring"

log() { printf '[monitoring] %s\n' "$*" >&2; }

# promtool comes with Debian's prometheus package (the server is not started).
command -v promtool >/dev/null 2>&1 || apt_install --no-install-recommends prometheus

promtool check rules alerts.yml
promtool test rules alerts.test.yml
python3 -m json.tool dashboard.json >/dev/null
log "alert rules, their tests and the dashboard are valid"
