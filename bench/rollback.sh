#!/usr/bin/env bash
# bench/rollback.sh: how long a failing canary keeps getting requests after
# its analysis failed. autoglm up (release) runs service `echo` on the test
# fixture; version 2 answers 500 to everything. Each round rolls 1 → 2 with
# the default guard, under steady traffic (bench/rollback_load.py records
# every answer's version and send time), and reports the time from the
# failing measurement (its `at`, the decision) to the send time of the last
# request version 2 answered, and to the rollout task's end (the platform
# done with the change). Argo Rollouts, the anchor the issue names, acts
# only at a reconcile after its AnalysisRun fails; it cannot run here (no
# kubelet, no ingress controller), so this reports our side alone.
#
#   bench/rollback.sh        # RUNS=3 RATE=100 (requests per second)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/bench/lib.sh"
RUNS=${RUNS:-3} RATE=${RATE:-100}
for tool in curl jq python3; do
    command -v "$tool" >/dev/null || die "$tool is missing (cargo xtask deps bench installs it)"
done
UPSTREAM=$ROOT/crates/autoglm/tests/fixtures/openai_upstream.py
UP_PID=
bench_workdir autoglm-rollback-bench UP_PID
autoglm_bin
log "machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"

for round in $(seq "$RUNS"); do
    CPORT=$(free_port) GPORT=$(free_port)
    CONSOLE=http://127.0.0.1:$CPORT GATEWAY=http://127.0.0.1:$GPORT
    rm -rf "$WORK/home"
    "$AUTOGLM_BIN" up --no-demo --nacos-addr off --home "$WORK/home" --addr "127.0.0.1:$CPORT" \
        --gateway-addr "127.0.0.1:$GPORT" --replica-base-port "$(free_port)" >"$WORK/up-$round.log" 2>&1 &
    UP_PID=$!
    wait_http "$CONSOLE/healthz" || { cat "$WORK/up-$round.log" >&2; die "autoglm up did not start"; }
    TOKEN=$(cat "$WORK/home/admin-token")
    api() { curl -fsS -X "$1" "$CONSOLE$2" -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' ${3:+-d "$3"}; }
    api POST /api/v1/models '{"name": "echo"}' >/dev/null
    for v in 1 2; do
        mkdir -p "$WORK/files/v$v" && echo "{\"v\": $v}" >"$WORK/files/v$v/params.json"
        api POST /api/v1/models/echo/versions "{\"path\": \"$WORK/files/v$v\"}" >/dev/null
    done
    service() {
        jq -n --arg v "$1" --arg up "$UPSTREAM" '{apiVersion: "autoglm.io/v1alpha1", kind: "ModelService",
            metadata: {name: "echo"}, spec: {model: "echo", versions: [{version: $v, weight: 100}], replicas: 1,
            runtime: {command: {command: ["python3", $up, "{port}", "{version}", "{name}"]}},
            env: [{name: "FAIL_VERSIONS", value: "2"}],
            rollout: {steps: [{setWeight: 50}, {pause: {duration: "60s"}}, {setWeight: 100}]}}}'
    }
    task=$(api POST /api/v1/services "$(service 1)" | jq -r .id)
    api GET "/api/v1/tasks/$task?wait=60s" | jq -e '.state == "succeeded"' >/dev/null || die "v1 did not deploy"
    python3 "$ROOT/bench/rollback_load.py" --gateway "$GATEWAY" --key "$TOKEN" --rate "$RATE" \
        --out "$WORK/answers-$round.jsonl" &
    LOAD_PID=$!
    sleep 2
    task=$(api PUT /api/v1/services/echo "$(service 2)" | jq -r .id)
    for _ in $(seq 600); do
        [[ $(api GET /api/v1/services/echo/rollout | jq -r .phase) == Degraded ]] && break
        sleep 0.1
    done
    api GET "/api/v1/tasks/$task?wait=60s" >"$WORK/task-$round.json"
    sleep 3
    kill "$LOAD_PID" && wait "$LOAD_PID" 2>/dev/null || true
    api GET /api/v1/services/echo/rollout >"$WORK/rollout-$round.json"
    kill "$UP_PID" && wait "$UP_PID" 2>/dev/null || true
    UP_PID=
    python3 - "$WORK/rollout-$round.json" "$WORK/task-$round.json" "$WORK/answers-$round.jsonl" <<'PY' | tee -a "$WORK/rounds.jsonl"
import json, sys
from datetime import datetime
rollout = json.load(open(sys.argv[1])); task = json.load(open(sys.argv[2]))
answers = [json.loads(l) for l in open(sys.argv[3])]
def ts(s): return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
failed = [m for a in rollout["analysis"] for m in a["measurements"] if m["phase"] == "Failed"]
decided = ts(failed[0]["at"])
canary = [a["sent"] for a in answers if a["version"] == "2"]
last = max(canary)
print(json.dumps({"phase": rollout["phase"], "canary_answers": len(canary),
    "last_canary_request_after_decision_ms": round((last - decided) * 1000, 1),
    "task_end_after_decision_ms": round((ts(task["finishedAt"]) - decided) * 1000, 1),
    "answers_after_decision": sum(1 for a in answers if a["sent"] > decided),
    "non_200_after_1s": sum(1 for a in answers if a["sent"] > decided + 1 and a["status"] != 200)}))
PY
done
echo "median last canary request after the failing measurement (ms): $(jq .last_canary_request_after_decision_ms "$WORK/rounds.jsonl" | median)"
echo "median rollout task end after it (ms): $(jq .task_end_after_decision_ms "$WORK/rounds.jsonl" | median)"
