#!/usr/bin/env bash
# bench/balancing.sh: the gateway's prefix-hash balancing against least
# outstanding requests, on real SmolLM2 replicas, in one run.
#
# What it does:
#   1. builds target/release/autoglm (skipped when AUTOGLM_BIN is set) and
#      fetches the test models (a no-op when cached);
#   2. starts `autoglm up --no-demo`, registers SmolLM2-135M (GGUF, Q4_1) and
#      deploys it twice with the built-in engine, 2 replicas each of
#      THREADS threads and the engine's default 8 sequence slots: service
#      `lo` with `loadBalancing: leastOutstanding`, service `ph` with
#      `loadBalancing: prefixHash` (its default knobs);
#   3. RUNS rounds; in each, both services in turn (the order alternates by
#      round) get bench/balancing_load.py: CONVERSATIONS chats replayed at
#      once through the gateway, TURNS turns each, every chat opening with a
#      long system prompt (a preamble all chats share, then instructions of
#      its own; new prompts each round, so no round finds the last one's);
#   4. prints a markdown table of medians over the rounds: time to first
#      token p50 and p95, the share of prompt tokens answered from a
#      replica's cache, completion tokens/s and requests/s, and the ratios
#      prefixHash / leastOutstanding.
#
# Usage:   bench/balancing.sh
# Knobs (environment): AUTOGLM_BIN=path  RUNS=3  CONVERSATIONS=16  TURNS=4
#                      THREADS=1  MAX_TOKENS=16  THINK_MS=2000  KEEP=1
#                      SHARED=6 OWN=6 (times the shared preamble, about 35
#                      tokens, and each chat's own instructions, about 40
#                      tokens, repeat in its system prompt; SHARED=0: no
#                      preamble shared between chats)
# Needs: python3, curl, jq, bc, ss (`cargo xtask deps bench` installs them)
set -euo pipefail

RUNS=${RUNS:-3}
CONVERSATIONS=${CONVERSATIONS:-16}
TURNS=${TURNS:-4}
THREADS=${THREADS:-1}
MAX_TOKENS=${MAX_TOKENS:-16}
SHARED=${SHARED:-6}
OWN=${OWN:-6}
THINK_MS=${THINK_MS:-2000}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${AUTOGLM_CACHE:-$HOME/.cache/autoglm}
MODELS=$CACHE/models
LOAD=$ROOT/bench/balancing_load.py

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

for tool in python3 curl jq bc ss; do
    command -v "$tool" >/dev/null || die "$tool is missing (cargo xtask deps bench installs it)"
done

UP_PID=
bench_workdir autoglm-balancing-bench UP_PID

autoglm_bin
AUTOGLM_MODELS=$MODELS "$AUTOGLM_BIN" fetch-models >&2
GGUF_DIR=$MODELS/smollm2-135m-instruct-q4_1
[[ -d $GGUF_DIR ]] || die "no SmolLM2 at $GGUF_DIR after fetch-models"

CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
log "machine: $(nproc) CPUs, $CPU_MODEL; $(uname -sr); load average $(cut -d' ' -f1-3 /proc/loadavg)"

# --- autoglm up, SmolLM2 deployed twice ---------------------------------------
CPORT=$(free_port)
GPORT=$(free_port)
CONSOLE=http://127.0.0.1:$CPORT
GATEWAY=http://127.0.0.1:$GPORT
log "starting autoglm up (console $CONSOLE, gateway $GATEWAY)"
"$AUTOGLM_BIN" up --no-demo --nacos-addr off --home "$WORK/home" --addr "127.0.0.1:$CPORT" \
    --gateway-addr "127.0.0.1:$GPORT" --replica-base-port "$(free_port)" >"$WORK/up.log" 2>&1 &
UP_PID=$!
wait_http "$CONSOLE/healthz" || { cat "$WORK/up.log" >&2; die "autoglm up did not start"; }
TOKEN=$(cat "$WORK/home/admin-token")
api() { # METHOD PATH [JSON]
    curl -fsS -X "$1" "$CONSOLE$2" -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' ${3:+-d "$3"}
}
api POST /api/v1/models '{"name": "smollm2"}' >/dev/null
api POST /api/v1/models/smollm2/versions \
    "$(jq -n --arg path "$GGUF_DIR" '{path: $path, task: "text-generation", framework: "llama.cpp"}')" >/dev/null
declare -A STRATEGY=([lo]=leastOutstanding [ph]=prefixHash)
for service in lo ph; do
    api POST /api/v1/services "$(jq -n --arg name "$service" --arg strategy "${STRATEGY[$service]}" \
        --argjson threads "$THREADS" '{apiVersion: "autoglm.io/v1alpha1", kind: "ModelService",
        metadata: {name: $name}, spec: {model: "smollm2", versions: [{version: "1", weight: 100}],
        replicas: 2, runtime: {builtin: {threads: $threads}}, loadBalancing: {strategy: $strategy}}}')" >/dev/null
done
KEY=$(api POST /api/v1/keys '{"name": "bench", "rate_limit": {"requests_per_second": 100000, "tokens_per_minute": 100000000}}' | jq -r .secret)
for service in lo ph; do
    log "waiting for service $service's 2 replicas"
    for _ in $(seq 600); do
        [[ $(api GET "/api/v1/services/$service" | jq -r .status.readyReplicas) == 2 ]] && break
        sleep 0.5
    done
    [[ $(api GET "/api/v1/services/$service" | jq -r .status.readyReplicas) == 2 ]] ||
        { tail -50 "$WORK/up.log" >&2; die "service $service did not get 2 ready replicas"; }
done

# --- measuring ------------------------------------------------------------------
for round in $(seq "$RUNS"); do
    order=(lo ph)
    ((round % 2 == 0)) && order=(ph lo)
    for service in "${order[@]}"; do
        log "round $round/$RUNS: ${STRATEGY[$service]} ($CONVERSATIONS chats x $TURNS turns)"
        python3 "$LOAD" --gateway "$GATEWAY" --key "$KEY" --model "$service" \
            --conversations "$CONVERSATIONS" --turns "$TURNS" --max-tokens "$MAX_TOKENS" \
            --shared "$SHARED" --own "$OWN" --think-ms "$THINK_MS" --tag "r$round-$service" | tee -a "$WORK/$service.jsonl" >&2
        [[ $(tail -1 "$WORK/$service.jsonl" | jq '.failed | length') == 0 ]] || die "turns failed in round $round"
    done
done

# --- the table --------------------------------------------------------------------
med() { # SERVICE JQ_EXPRESSION
    jq -r "$2" "$WORK/$1.jsonl" | median
}
row() { # LABEL JQ_EXPRESSION FORMAT
    local lo ph
    lo=$(med lo "$2")
    ph=$(med ph "$2")
    printf "| %s | $3 | $3 | %.2f |\n" "$1" "$lo" "$ph" "$(echo "$ph / $lo" | bc -l)"
}
SHARE='(.cached_tokens / .prompt_tokens * 100)'
echo
echo "$CONVERSATIONS chats x $TURNS turns at once (system prompt: shared preamble x$SHARED, own instructions x$OWN; about ${THINK_MS} ms between turns), 2 SmolLM2 replicas of $THREADS thread(s) each, medians of $RUNS rounds"
echo
echo "| measure | leastOutstanding | prefixHash | prefixHash / leastOutstanding |"
echo "|---|---:|---:|---:|"
row "time to first token p50 (ms)" .ttft_p50_ms "%.0f"
row "time to first token p95 (ms)" .ttft_p95_ms "%.0f"
row "prompt tokens from the cache (%)" "$SHARE" "%.1f"
row "completion tokens/s" .completion_tokens_per_s "%.1f"
row "requests/s" .requests_per_s "%.2f"
