#!/usr/bin/env bash
# bench/gateway.sh: the gateway against nginx proxy_pass, side by side in one
# run, in front of the same fast upstream; then the autoscaler's reaction times.
#
# What it does:
#   1. builds target/release/autoglm (skipped when AUTOGLM_BIN is set);
#   2. starts `autoglm up --no-demo` pinned to CPU $PROXY_CPU, registers model
#      `echo` and deploys it with a `command` runtime that is nginx answering
#      every request with a fixed JSON body (the fast upstream, pinned to CPU
#      $LOAD_CPU with wrk); the gateway runs with auth, a rate limit on the key
#      (set high enough never to refuse) and metrics, as always;
#   3. starts the anchor: nginx with proxy_pass to the same upstream (keepalive
#      64, HTTP/1.1), one worker pinned to CPU $PROXY_CPU;
#   4. RUNS rounds, each running one after the other, with the same wrk settings
#      (-t1 -c$CONNECTIONS, POST of a small JSON body, Authorization sent to all):
#        direct   the upstream itself
#        nginx    nginx proxy_pass, by path
#        gateway  autoglm's gateway, by path (/v2/models/echo/infer)
#        model    autoglm's gateway, by the OpenAI `model` field (/v1/chat/completions)
#        filter1  autoglm's gateway, by path, to a service with one proxy-wasm
#                 filter (examples/filters' header injector setting one header)
#        filter3  the same with three such filters in its chain
#      and reads each proxy's CPU time (utime + stime from /proc, all its
#      processes) around each run: CPU µs per proxied request;
#   5. the same four with one connection (-c1): the added latency of a single
#      sequential request is its p50 minus the direct p50;
#   6. autoscaling: the scale-up decision time after a load step (targetInFlight
#      1, wrk -c16 starts; the time until status.desiredReplicas grows) and the
#      time to first response from zero of the built-in runtime serving
#      all-MiniLM-L6-v2 (fetched to ~/.cache/autoglm/models when missing);
#   7. prints a markdown table of medians and ratios.
#
# Usage:   bench/gateway.sh
# Knobs (environment): AUTOGLM_BIN=path RUNS=3 DURATION=10s CONNECTIONS=32
#                      PROXY_CPU=0 LOAD_CPU=1 KEEP=1 (keep the raw outputs)
# Needs: wrk nginx curl jq ss taskset (`cargo xtask deps bench` installs them),
#        the wasm32-wasip1 Rust target for the filters (`cargo xtask test` adds it)
set -euo pipefail

RUNS=${RUNS:-3}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

for tool in wrk nginx curl jq ss taskset; do
    command -v "$tool" >/dev/null || [[ -x /usr/sbin/$tool ]] ||
        die "$tool is missing (cargo xtask deps bench installs it)"
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
autoglm_bin

UP_PID=
PROXY_PID=
bench_workdir autoglm-gateway-bench PROXY_PID UP_PID
chmod 755 "$WORK"
mkdir -p "$WORK/results" "$WORK/tmp"

CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
log "machine: $(nproc) CPUs, $CPU_MODEL; $(uname -sr); load average $(cut -d' ' -f1-3 /proc/loadavg)"
log "tools: $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), nginx $("$NGINX" -v 2>&1 | cut -d/ -f2), autoglm $("$AUTOGLM_BIN" --version | cut -d' ' -f2) (tree $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown))"

# An nginx configuration: $1 = file, $2 = listen port, $3 = the server block's body.
nginx_conf() {
    cat >"$1" <<CONF
worker_processes 1;
pid $1.pid;
error_log $1.error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $WORK/tmp/body;
    proxy_temp_path $WORK/tmp/proxy;
    fastcgi_temp_path $WORK/tmp/fastcgi;
    uwsgi_temp_path $WORK/tmp/uwsgi;
    scgi_temp_path $WORK/tmp/scgi;
    default_type application/json;
    $3
}
CONF
}

# --- autoglm up, and the upstream as a service's command runtime ------------
CPORT=$(free_port)
GPORT=$(free_port)
CONSOLE=http://127.0.0.1:$CPORT
GATEWAY=http://127.0.0.1:$GPORT
log "starting autoglm up on CPU $PROXY_CPU (console $CONSOLE, gateway $GATEWAY)"
taskset -c "$PROXY_CPU" "$AUTOGLM_BIN" up --no-demo --nacos-addr off --home "$WORK/home" --addr "127.0.0.1:$CPORT" \
    --gateway-addr "127.0.0.1:$GPORT" --replica-base-port "$(free_port)" >"$WORK/up.log" 2>&1 &
UP_PID=$!
wait_http "$CONSOLE/healthz" || { cat "$WORK/up.log" >&2; die "autoglm up did not start"; }
TOKEN=$(cat "$WORK/home/admin-token")
AUTH="Authorization: Bearer $TOKEN"
api() { # METHOD PATH [JSON]
    curl -fsS -X "$1" "$CONSOLE$2" -H "$AUTH" -H 'content-type: application/json' ${3:+-d "$3"}
}

BODY='{"id":"bench","object":"chat.completion","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}'
nginx_conf "$WORK/upstream.tmpl" @PORT@ "server { listen 127.0.0.1:@PORT@; location / { return 200 '$BODY'; } }"
mkdir -p "$WORK/echo-v1"
echo '{}' >"$WORK/echo-v1/params.json"
api POST /api/v1/models '{"name": "echo"}' >/dev/null
api POST /api/v1/models/echo/versions "{\"path\": \"$WORK/echo-v1\"}" >/dev/null
UPSTREAM_CMD="sed s/@PORT@/{port}/g $WORK/upstream.tmpl > $WORK/upstream-{port}.conf && exec taskset -c $LOAD_CPU $NGINX -e $WORK/upstream-{port}.error.log -p $WORK -c $WORK/upstream-{port}.conf -g 'daemon off;'"
# The filters: the example header injector, built from source, uploaded
# three times so that a chain can hold it thrice, one header each.
log "building the example filters (examples/filters, wasm32-wasip1)"
(cd "$ROOT/examples/filters" && CARGO_TARGET_DIR="$WORK/filters-target" cargo build --release --quiet --target wasm32-wasip1) ||
    die "the example filters did not build (rustup target add wasm32-wasip1)"
INJECTOR=$WORK/filters-target/wasm32-wasip1/release/header_injector.wasm
for n in 1 2 3; do
    curl -fsS -X PUT "$CONSOLE/api/v1/filters/header-$n" -H "$AUTH" -H 'content-type: application/wasm' \
        --data-binary "@$INJECTOR" >/dev/null
done
chain() { # N: the spec.filters of a service with N header filters
    jq -n --argjson n "$1" '[range(1; $n + 1) | {name: "header-\(.)", config: {request: {"x-bench-\(.)": "1"}}}]'
}
for service in echo:0 echo1:1 echo3:3; do
    api POST /api/v1/services "$(jq -n --arg cmd "$UPSTREAM_CMD" --arg name "${service%:*}" --argjson filters "$(chain "${service#*:}")" \
        '{apiVersion: "autoglm.io/v1alpha1", kind: "ModelService",
        metadata: {name: $name}, spec: {model: "echo", versions: [{version: "1", weight: 100}], replicas: 1, filters: $filters,
        runtime: {command: {command: ["sh", "-c", $cmd], protocol: "v2", readyPath: "/v2/health/ready"}}}}')" >/dev/null
done
KEY=$(api POST /api/v1/keys '{"name": "bench", "rate_limit": {"requests_per_second": 100000000, "tokens_per_minute": 100000000}}' | jq -r .secret)
KAUTH="Authorization: Bearer $KEY"
for service in echo echo1 echo3; do
    wait_http "$GATEWAY/v2/models/$service/infer" -X POST -H "$KAUTH" -d '{}' || { cat "$WORK/up.log" >&2; die "the gateway does not reach $service's upstream"; }
done
UPORT=$(api GET /api/v1/services/echo | jq -r '.status.replicas[0].port')
UPSTREAM=http://127.0.0.1:$UPORT
log "upstream: nginx on $UPSTREAM (CPU $LOAD_CPU), started by the local platform"

# --- the anchor: nginx proxy_pass -------------------------------------------
PPORT=$(free_port)
PROXY=http://127.0.0.1:$PPORT
nginx_conf "$WORK/proxy.conf" "$PPORT" "upstream up { server 127.0.0.1:$UPORT; keepalive 64; }
    server { listen 127.0.0.1:$PPORT; location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
taskset -c "$PROXY_CPU" "$NGINX" -e "$WORK/proxy.conf.error.log" -p "$WORK" -c "$WORK/proxy.conf" -g 'daemon off;' \
    >"$WORK/proxy.log" 2>&1 &
PROXY_PID=$!
wait_http "$PROXY/v2/models/echo/infer" -X POST -d '{}' || die "the nginx proxy did not start"
log "anchor: nginx proxy_pass on $PROXY (CPU $PROXY_CPU)"

# --- measuring ----------------------------------------------------------------
cat >"$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("WRK_BODY")
LUA
declare -A URL=(
    [direct]="$UPSTREAM/v2/models/echo/infer"
    [nginx]="$PROXY/v2/models/echo/infer"
    [gateway]="$GATEWAY/v2/models/echo/infer"
    [model]="$GATEWAY/v1/chat/completions"
    [filter1]="$GATEWAY/v2/models/echo1/infer"
    [filter3]="$GATEWAY/v2/models/echo3/infer"
)
declare -A PIDS_OF=([nginx]=proxy [gateway]=up [model]=up [filter1]=up [filter3]=up)
NAMES=(direct nginx gateway model filter1 filter3)
TICKS=$(getconf CLK_TCK)

# utime + stime, in ticks, of a process and its children.
cpu_ticks() {
    local pids=$1 total=0 pid
    pids="$pids $(pgrep -P "$1" | tr '\n' ' ')"
    for pid in $pids; do
        total=$((total + $(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0)))
    done
    echo "$total"
}

measure() { # NAME CONNECTIONS DURATION TAG
    local name=$1 out=$WORK/results/$1.$4 pid= before=0 after
    case ${PIDS_OF[$name]:-} in proxy) pid=$PROXY_PID ;; up) pid=$UP_PID ;; esac
    [[ -n $pid ]] && before=$(cpu_ticks "$pid")
    WRK_BODY='{"model": "echo", "inputs": [], "messages": []}' taskset -c "$LOAD_CPU" \
        wrk -t1 "-c$2" "-d$3" --latency -s "$WORK/post.lua" -H "$KAUTH" "${URL[$name]}" >"$out" 2>&1
    if [[ -n $pid ]]; then
        after=$(cpu_ticks "$pid")
        echo "$((after - before))" >"$out.ticks"
    fi
    local parsed
    parsed=$(parse_wrk "$out")
    local cpu=n/a
    [[ -n $pid ]] && cpu=$(awk -v t="$(cat "$out.ticks")" -v hz="$TICKS" -v n="$(cut -d' ' -f6 <<<"$parsed")" 'BEGIN { printf "%.1f", (n > 0 ? t * 1e6 / hz / n : 0) }')
    echo "$cpu" >"$out.cpu"
    log "  $(printf '%-8s' "$name") $4: $(awk '{ printf "%s req/s, p50 %s ms, p99 %s ms, non-2xx %s, errors %s", $1, $2, $3, $4, $5 }' <<<"$parsed"), CPU $cpu µs/req"
}

log "warming up"
for name in "${NAMES[@]}"; do measure "$name" "$CONNECTIONS" 2s warm >/dev/null 2>&1; done
for ((r = 1; r <= RUNS; r++)); do
    log "round $r of $RUNS (-c$CONNECTIONS, $DURATION)"
    for name in "${NAMES[@]}"; do measure "$name" "$CONNECTIONS" "$DURATION" "$r"; done
done
for ((r = 1; r <= RUNS; r++)); do
    log "round $r of $RUNS, one connection (-c1, 5s)"
    for name in "${NAMES[@]}"; do measure "$name" 1 5s "seq$r"; done
done

col() { # NAME TAG_PREFIX FIELD
    for ((r = 1; r <= RUNS; r++)); do parse_wrk "$WORK/results/$1.$2$r" | cut -d' ' -f"$3"; done | median
}
cpu() { for ((r = 1; r <= RUNS; r++)); do cat "$WORK/results/$1.$r.cpu"; done | median; }
errors() { for ((r = 1; r <= RUNS; r++)); do parse_wrk "$WORK/results/$1.$r" | awk '{ print $4 + $5 }'; done | awk '{ s += $1 } END { print s }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf (b > 0 ? "%.2f" : "n/a"), a / b }'; }
minus() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.3f", a - b }'; }

# --- autoscaling --------------------------------------------------------------
log "autoscaling: scale-up decision after a load step"
api PUT /api/v1/services/echo "$(api GET /api/v1/services/echo | jq 'del(.status) | .spec |= (del(.replicas) | .autoscaling = {minReplicas: 1, maxReplicas: 4, targetInFlight: 1, scaleDownStabilization: "2s"})')" >/dev/null
sleep 3
DECISIONS=()
for ((r = 1; r <= RUNS; r++)); do
    until [[ $(api GET /api/v1/services/echo | jq .status.desiredReplicas) == 1 ]]; do sleep 0.2; done
    sleep 2
    WRK_BODY='{}' taskset -c "$LOAD_CPU" wrk -t1 -c16 -d6s -s "$WORK/post.lua" -H "$KAUTH" "${URL[gateway]}" >/dev/null 2>&1 &
    wrk_pid=$!
    start=$(date +%s%N)
    decided=
    while [[ -z $decided ]]; do
        desired=$(api GET /api/v1/services/echo | jq .status.desiredReplicas)
        ((desired > 1)) && decided=$((($(date +%s%N) - start) / 1000000))
        (( ($(date +%s%N) - start) > 5000000000 )) && decided=timeout
    done
    wait "$wrk_pid"
    log "  round $r: desiredReplicas > 1 after $decided ms"
    DECISIONS+=("$decided")
done
DECISION=$(printf '%s\n' "${DECISIONS[@]}" | median)

log "autoscaling: time to first response from zero (built-in runtime, all-MiniLM-L6-v2)"
MODELS=${AUTOGLM_MODELS:-$HOME/.cache/autoglm/models}
AUTOGLM_MODELS=$MODELS "$AUTOGLM_BIN" fetch-models >&2
api POST /api/v1/models '{"name": "minilm"}' >/dev/null
api POST /api/v1/models/minilm/versions "{\"path\": \"$MODELS/all-minilm-l6-v2\"}" >/dev/null
api POST /api/v1/services '{"apiVersion": "autoglm.io/v1alpha1", "kind": "ModelService", "metadata": {"name": "embeddings"},
    "spec": {"model": "minilm", "versions": [{"version": "1", "weight": 100}],
             "autoscaling": {"minReplicas": 0, "maxReplicas": 1, "targetInFlight": 4, "scaleToZeroAfter": "2s", "scaleDownStabilization": "1s"}}}' >/dev/null
COLD=()
for ((r = 1; r <= RUNS; r++)); do
    until api GET /api/v1/services/embeddings | jq -e '.status.desiredReplicas == 0 and ([.status.replicas[]? | select(.state != "stopped")] | length == 0)' >/dev/null; do sleep 0.2; done
    sleep 1.5
    t=$(curl -fsS -o /dev/null -w '%{time_total}' "$GATEWAY/v1/embeddings" -H "$KAUTH" -H 'content-type: application/json' -d '{"model": "embeddings", "input": "hello"}')
    log "  round $r: first answer from zero after $t s"
    COLD+=("$t")
done
COLD_MEDIAN=$(printf '%s\n' "${COLD[@]}" | median)

# --- the table ----------------------------------------------------------------
D50=$(col direct "" 2); D99=$(col direct "" 3); S50=$(col direct seq 2)
N_RPS=$(col nginx "" 1)
echo
echo "| path | req/s | vs nginx | CPU µs/req | p50 ms | p99 ms | added p50 / p99 ms | 1 conn p50 ms | added, 1 conn ms | errors |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for name in "${NAMES[@]}"; do
    rps=$(col "$name" "" 1); p50=$(col "$name" "" 2); p99=$(col "$name" "" 3); s50=$(col "$name" seq 2)
    if [[ $name == direct ]]; then
        echo "| direct (upstream alone) | $rps | | | $p50 | $p99 | | $s50 | | $(errors "$name") |"
    else
        label=$name
        case $name in
        nginx) label="nginx proxy_pass (path)" ;; gateway) label="autoglm gateway (path)" ;; model) label="autoglm gateway (model field)" ;;
        filter1) label="autoglm gateway (path), 1 header filter" ;; filter3) label="autoglm gateway (path), 3 header filters" ;;
        esac
        echo "| $label | $rps | $(ratio "$rps" "$N_RPS") | $(cpu "$name") | $p50 | $p99 | $(minus "$p50" "$D50") / $(minus "$p99" "$D99") | $s50 | $(minus "$s50" "$S50") | $(errors "$name") |"
    fi
done
echo
# The machine's speed drifts between rounds; runs of the same round are
# minutes apart at most, so their ratios are the steadier comparison.
for name in gateway model filter1 filter3; do
    rps_ratios=() cpu_ratios=()
    for ((r = 1; r <= RUNS; r++)); do
        rps_ratios+=("$(ratio "$(parse_wrk "$WORK/results/$name.$r" | cut -d' ' -f1)" "$(parse_wrk "$WORK/results/nginx.$r" | cut -d' ' -f1)")")
        cpu_ratios+=("$(ratio "$(cat "$WORK/results/$name.$r.cpu")" "$(cat "$WORK/results/nginx.$r.cpu")")")
    done
    echo "Same-round ratios to nginx, $name: req/s ${rps_ratios[*]} (median $(printf '%s\n' "${rps_ratios[@]}" | median)); CPU per request ${cpu_ratios[*]} (median $(printf '%s\n' "${cpu_ratios[@]}" | median))."
done
# What the filters cost: the same gateway path with and without them, per round.
for name in filter1 filter3; do
    rps_ratios=() cpu_ratios=()
    for ((r = 1; r <= RUNS; r++)); do
        rps_ratios+=("$(ratio "$(parse_wrk "$WORK/results/$name.$r" | cut -d' ' -f1)" "$(parse_wrk "$WORK/results/gateway.$r" | cut -d' ' -f1)")")
        cpu_ratios+=("$(ratio "$(cat "$WORK/results/$name.$r.cpu")" "$(cat "$WORK/results/gateway.$r.cpu")")")
    done
    echo "Same-round ratios to the gateway without filters, $name: req/s ${rps_ratios[*]} (median $(printf '%s\n' "${rps_ratios[@]}" | median)); CPU per request ${cpu_ratios[*]} (median $(printf '%s\n' "${cpu_ratios[@]}" | median))."
done
echo "Scale-up decision after a load step (median of $RUNS): $DECISION ms; first answer from zero (MiniLM, median of $RUNS): $COLD_MEDIAN s."
echo "Medians of $RUNS rounds; wrk -t1 -c$CONNECTIONS -d$DURATION on CPU $LOAD_CPU (with the upstream), proxies on CPU $PROXY_CPU."
