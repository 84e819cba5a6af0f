#!/usr/bin/env bash
# bench/alerts.sh: the alert evaluator's costs. (1) One evaluation round of
# 1,000 rules (10 per service) over 100 services of two versions with an
# hour of traffic each, and the rules it starts from (read and checked after
# the table changed, one stamp query when not): the round_bench example,
# RUNS times. (2) From a condition becoming true to its playbook's task
# starting, end to end: autoglm up (release) runs service `echo` on the test
# fixture (each replica takes START_DELAY_MS to listen); a rule fires on
# replicasUnavailable >= 1 held for FOR; the script kill -9s the replica
# (the condition is true from then on, until a new replica is ready) and
# reads the restart task the playbook queued: its start minus the kill,
# minus FOR, is the evaluator's own delay. KILLS kills, one incident each.
# Prometheus with Alertmanager, the tools users bring, evaluate at their
# `evaluation_interval` (1 m by default) and group before notifying; they
# cannot run a playbook, so this reports our side alone.
#
#   bench/alerts.sh          # RUNS=3 KILLS=5 FOR=3s START_DELAY_MS=8000
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/bench/lib.sh"
RUNS=${RUNS:-3} KILLS=${KILLS:-5} FOR=${FOR:-3s} START_DELAY_MS=${START_DELAY_MS:-8000}
for tool in curl jq python3; do
    command -v "$tool" >/dev/null || die "$tool is missing (cargo xtask deps bench installs it)"
done
UPSTREAM=$ROOT/crates/autoglm/tests/fixtures/openai_upstream.py
UP_PID=
bench_workdir autoglm-alerts-bench UP_PID
log "machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"

log "building the round benchmark (release)"
(cd "$ROOT" && cargo build -q --release -p autoglm-alerts --example round_bench)
ROUND_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/round_bench
for run in $(seq "$RUNS"); do
    "$ROUND_BIN" 500 | tee "$WORK/round-$run.json"
done
med() { jq -r "$1" "$WORK"/round-*.json | median; }
echo "median round p50 ms (1000 rules, 2000 series):     $(med .round_ms.p50)"
echo "median round p99 ms:                              $(med .round_ms.p99)"
echo "median rules unchanged (stamp query) p50 ms:       $(med .rules_unchanged_ms.p50)"
echo "median rules changed (read and check 1000) p50 ms: $(med .rules_changed_ms.p50)"

autoglm_bin
CPORT=$(free_port) GPORT=$(free_port)
CONSOLE=http://127.0.0.1:$CPORT
"$AUTOGLM_BIN" up --no-demo --nacos-addr off --home "$WORK/home" --addr "127.0.0.1:$CPORT" \
    --gateway-addr "127.0.0.1:$GPORT" --replica-base-port "$(free_port)" >"$WORK/up.log" 2>&1 &
UP_PID=$!
wait_http "$CONSOLE/healthz" || { cat "$WORK/up.log" >&2; die "autoglm up did not start"; }
TOKEN=$(cat "$WORK/home/admin-token")
api() { curl -fsS -X "$1" "$CONSOLE$2" -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' ${3:+-d "$3"}; }
api POST /api/v1/models '{"name": "echo"}' >/dev/null
mkdir -p "$WORK/files/v1" && echo '{"v": 1}' >"$WORK/files/v1/params.json"
api POST /api/v1/models/echo/versions "{\"path\": \"$WORK/files/v1\"}" >/dev/null
task=$(api POST /api/v1/services "$(jq -n --arg up "$UPSTREAM" --arg delay "$START_DELAY_MS" '{apiVersion: "autoglm.io/v1alpha1",
    kind: "ModelService", metadata: {name: "echo"}, spec: {model: "echo", versions: [{version: "1", weight: 100}], replicas: 1,
    runtime: {command: {command: ["python3", $up, "{port}", "{version}", "{name}"]}},
    env: [{name: "START_DELAY_MS", value: $delay}]}}')" | jq -r .id)
api GET "/api/v1/tasks/$task?wait=60s" | jq -e '.state == "succeeded"' >/dev/null || die "echo did not deploy"
api POST /api/v1/alerts/rules "$(jq -n --arg for "$FOR" '{name: "replica-down", service: "echo", metric: "replicasUnavailable",
    condition: "result >= 1", for: $for, playbook: {steps: [{restart: {}}], cooldown: "0s", maxPerHour: 60}}')" >/dev/null
ready_pid() {
    for _ in $(seq 600); do
        pid=$(api GET /api/v1/services/echo | jq -r '[.status.replicas[] | select(.state == "ready") | .pid][0] // empty')
        [[ -n $pid && $(api GET /api/v1/incidents?state=open | jq '.items | length') == 0 ]] && { echo "$pid"; return; }
        sleep 0.1
    done
    die "no ready replica"
}
for kill in $(seq "$KILLS"); do
    pid=$(ready_pid)
    killed=$(date +%s.%N)
    kill -9 "$pid"
    for _ in $(seq 600); do
        n=$(api GET '/api/v1/incidents?rule=replica-down' | jq '.items | length')
        [[ $n == "$kill" ]] && break
        sleep 0.1
    done
    id=$(api GET '/api/v1/incidents?rule=replica-down' | jq -r '.items[0].id')
    for _ in $(seq 600); do
        task=$(api GET "/api/v1/incidents/$id" | jq -r '[.timeline[] | select(.kind == "playbookStarted") | .taskId][0] // empty')
        [[ -n $task ]] && break
        sleep 0.1
    done
    api GET "/api/v1/tasks/$task?wait=60s" >"$WORK/task-$kill.json"
    api GET "/api/v1/incidents/$id" >"$WORK/incident-$kill.json"
    python3 - "$killed" "$FOR" "$WORK/task-$kill.json" "$WORK/incident-$kill.json" <<'PY' | tee -a "$WORK/kills.jsonl"
import json, sys
from datetime import datetime
killed, hold = float(sys.argv[1]), float(sys.argv[2].rstrip("s"))
task = json.load(open(sys.argv[3])); incident = json.load(open(sys.argv[4]))
def ts(s): return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
fired = ts(incident["openedAt"])
print(json.dumps({"for_s": hold, "fired_after_kill_ms": round((fired - killed) * 1000),
    "task_start_after_kill_ms": round((ts(task["startedAt"]) - killed) * 1000),
    "task_start_minus_for_ms": round((ts(task["startedAt"]) - killed - hold) * 1000)}))
PY
done
kill "$UP_PID" && wait "$UP_PID" 2>/dev/null || true
UP_PID=
echo "median fired after the kill, ms:              $(jq -r .fired_after_kill_ms "$WORK/kills.jsonl" | median)"
echo "median task start after the kill minus for, ms: $(jq -r .task_start_minus_for_ms "$WORK/kills.jsonl" | median)"
echo "max task start after the kill minus for, ms:    $(jq -r .task_start_minus_for_ms "$WORK/kills.jsonl" | sort -g | tail -1)"
