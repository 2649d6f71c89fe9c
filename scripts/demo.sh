#!/usr/bin/env bash
# `make demo`: the sandbox contact centre, cxprobe probing it, Prometheus scraping cxprobe and
# Alertmanager behind Prometheus, all on loopback.
# Stops cleanly on Ctrl-C, or after DEMO_SECONDS seconds when that is set.
set -euo pipefail
cd "$(dirname "$0")/.."

workdir=data/demo
mkdir -p "$workdir/prometheus" "$workdir/alertmanager"
export CXPROBE_SANDBOX_IMAP_PASSWORD=probe-secret
export CXPROBE_SANDBOX_TWILIO_TOKEN=sandbox-auth-token-not-a-secret
export CXPROBE_SANDBOX_PEER_TOKEN=sandbox-peer-token-not-a-secret
export CXPROBE_SANDBOX_PEER_SECRET=sandbox-peer-app-secret
pids=()

stop_all() {
  trap - INT TERM EXIT
  echo
  echo "stopping the demo..."
  # Stop in reverse start order, each by the PID we started, and wait for it to exit.
  for ((i=${#pids[@]}-1; i>=0; i--)); do
    kill -TERM "${pids[$i]}" 2>/dev/null || true
    wait "${pids[$i]}" 2>/dev/null || true
  done
  echo "demo stopped; the evidence store is in $workdir/cxprobe.db (try: cxprobe runs -c config/sandbox.yaml)"
}
trap stop_all INT TERM EXIT

wait_for_url() {
  for _ in $(seq 1 100); do
    python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "$1" \
      2>/dev/null && return 0
    sleep 0.2
  done
  echo "timed out waiting for $1" >&2
  return 1
}

# The demo's fixed loopback ports: something already listening (a system Prometheus, an earlier
# demo) would answer in our place.
python3 - <<'PY'
import socket, sys
ports = {2525: "sandbox SMTP", 10143: "sandbox IMAP", 10024: "sandbox LMTP", 8025: "sandbox control",
         8088: "sandbox chat site", 8089: "sandbox chat site (second origin)",
         8030: "sandbox Twilio API", 8031: "sandbox generic messaging peer",
         9464: "cxprobe", 9090: "Prometheus", 9093: "Alertmanager"}
busy = []
for port, what in ports.items():
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            busy.append(f"{port} ({what})")
if busy:
    sys.exit("make demo: ports already in use: " + ", ".join(busy)
             + ". Stop whatever listens there (e.g. `systemctl stop prometheus`) and retry.")
PY

# Prometheus' and Alertmanager's configuration (and the rules) first: a broken or missing file
# stops the demo here, saying what is wrong, rather than after everything else has started.
promtool check config prometheus/prometheus-demo.yml >"$workdir/promtool.log" 2>&1 \
  || { cat "$workdir/promtool.log" >&2; exit 1; }
amtool check-config prometheus/alertmanager.yml >"$workdir/amtool.log" 2>&1 \
  || { cat "$workdir/amtool.log" >&2; exit 1; }

python -m sandbox --profile sandbox/profiles/demo.yaml --workdir "$workdir/sandbox" \
  >"$workdir/sandbox.log" 2>&1 &
pids+=($!)
wait_for_url http://127.0.0.1:8025/healthz

cxprobe validate --require-env config/sandbox.yaml
cxprobe run -c config/sandbox.yaml 2> >(tee "$workdir/cxprobe.log" >&2) &
pids+=($!)
wait_for_url http://127.0.0.1:9464/healthz

# Alertmanager and Prometheus with the project's own configuration, as docker-compose.yml runs
# them: prometheus/prometheus-demo.yml is prometheus/prometheus.yml on loopback; it loads the SLA
# rules of prometheus/rules/cxprobe.yml (`cxprobe rules`). Receivers the demo cannot reach only
# make Alertmanager log failed notifications.
prometheus-alertmanager --config.file=prometheus/alertmanager.yml \
  --storage.path="$workdir/alertmanager/data" --web.listen-address=127.0.0.1:9093 \
  --cluster.listen-address= >"$workdir/alertmanager.log" 2>&1 &
pids+=($!)
wait_for_url http://127.0.0.1:9093/-/ready

prometheus --config.file=prometheus/prometheus-demo.yml \
  --storage.tsdb.path="$workdir/prometheus/data" --web.listen-address=127.0.0.1:9090 \
  >"$workdir/prometheus.log" 2>&1 &
pids+=($!)
wait_for_url http://127.0.0.1:9090/-/ready

cat <<MSG

  cxprobe demo is running — the monitor emails, chats with, calls and texts the sandbox desk.
    metrics      http://127.0.0.1:9464/metrics   (health: /healthz)
    Prometheus   http://127.0.0.1:9090/graph?g0.expr=cxprobe_runs_total
    SLA alerts   http://127.0.0.1:9090/alerts    (rules: /rules, from prometheus/rules/cxprobe.yml)
    Alertmanager http://127.0.0.1:9093           (routing: prometheus/alertmanager.yml)
    sandbox desk http://127.0.0.1:8025/state     (ground truth: /ground-truth)
    sandbox chat http://127.0.0.1:8088/          (switches and ground truth: /_control/state)
    sandbox line http://127.0.0.1:8030/_control/state   (the Twilio-compatible API)
    sandbox peer http://127.0.0.1:8031/_control/state   (the generic messaging platform)
    runs         cxprobe runs -c config/sandbox.yaml
    logs         $workdir/*.log
  Ctrl-C stops everything.

MSG

if [ -n "${DEMO_SECONDS:-}" ]; then
  sleep "$DEMO_SECONDS"
else
  wait "${pids[1]}"
fi
