#!/usr/bin/env bash
# bench/console.sh: throughput and latency of the console's model registry,
# measured with wrk, side by side with an nginx anchor in the same run.
#
# What it does:
#   1. builds target/release/autoglm (skipped when AUTOGLM_BIN is set);
#   2. starts a console on a free loopback port with a fresh home under
#      $TMPDIR, and registers 1,000 models m-0001..m-1000 (labels team=nlp);
#   3. starts nginx on another free port serving, as static files, the exact
#      bytes the console returned for the first 100-model page and for one
#      model: the anchor, i.e. what an HTTP server alone costs on this machine;
#   4. phase 1, reads, RUNS rounds; each round runs, one after the other:
#        nginx  GET /page.json               (same bytes as the 100-model page)
#        console GET /api/v1/models?limit=100
#        nginx  GET /one.json                (same bytes as one model)
#        console GET /api/v1/models/m-0500
#        console GET /api/v1/models?limit=100 with If-None-Match: the page's
#                ETag (a poller whose data did not change: 304, no body)
#   5. phase 2, writes, RUNS runs of console POST /api/v1/models, one new
#      model per request (bench/create.lua), after the reads so that those ran
#      against exactly 1,000 models; its ratio is to the nginx page anchor;
#   6. when strace is there (FSYNC_CHECK=0 skips it), one more short creation
#      run under `strace -f -w -c -e fsync,fdatasync` to count the fsyncs per
#      acknowledged creation and their wall time (strace slows the console
#      down, so this run is not in the table);
#   7. kills the console with SIGKILL, starts it again on the same home, and
#      checks that every acknowledged creation is in the registry; prints
#      a markdown table: median req/s, p50, p99 over the runs, the ratio to
#      the anchor, and the non-2xx count wrk saw.
# Every wrk run uses the same settings and sends the same Authorization header
# (nginx ignores it). Medians are taken per column, independently.
#
# Usage:   bench/console.sh
# Knobs (environment): AUTOGLM_BIN=path  RUNS=3  DURATION=10s  THREADS=2
#                      CONNECTIONS=16  WARMUP=3s  MODELS=1000  KEEP=1 (keep
#                      the temporary folder with the raw wrk outputs)
# Needs: wrk, nginx, curl, jq (`cargo xtask deps bench` installs them); strace optional
set -euo pipefail

RUNS=${RUNS:-3}
DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-16}
WARMUP=${WARMUP:-3s}
MODELS=${MODELS:-1000}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

for tool in wrk nginx curl jq ss; do
    command -v "$tool" >/dev/null || [[ -x /usr/sbin/$tool ]] ||
        die "$tool is missing (cargo xtask deps bench installs it)"
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

# --- the binary ------------------------------------------------------------
autoglm_bin

# --- temporary folder, and stopping everything on exit ----------------------
CONSOLE_PID=
NGINX_PID=
bench_workdir autoglm-bench CONSOLE_PID NGINX_PID
mkdir -p "$WORK/results"

# --- the machine -----------------------------------------------------------
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
MEM=$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
FS=$(findmnt -n -o FSTYPE,SOURCE -T "$WORK" 2>/dev/null | tr -s ' ' || echo unknown)
log "machine: $(nproc) CPUs, $CPU_MODEL, $MEM; $(uname -sr); home on $FS; load average $(cut -d' ' -f1-3 /proc/loadavg)"
REV=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)
log "tools: $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), $("$NGINX" -v 2>&1 | cut -d' ' -f3), autoglm $("$AUTOGLM_BIN" --version | cut -d' ' -f2) (tree $REV)"

# --- the console -----------------------------------------------------------
PORT=$(free_port)
BASE=http://127.0.0.1:$PORT
log "starting the console on $BASE (home $WORK/home)"
"$AUTOGLM_BIN" console --nacos-addr off --home "$WORK/home" --addr "127.0.0.1:$PORT" >"$WORK/console.log" 2>&1 &
CONSOLE_PID=$!
wait_http "$BASE/healthz" || { cat "$WORK/console.log" >&2; die "the console did not answer /healthz"; }
TOKEN=$(cat "$WORK/home/admin-token")
AUTH="Authorization: Bearer $TOKEN"

# --- seeding: MODELS models, 100 per curl process (one keep-alive connection)
log "registering $MODELS models"
created=0
for ((start = 1; start <= MODELS; start += 100)); do
    cfg=$WORK/seed.curlrc
    : >"$cfg"
    for ((i = start; i < start + 100 && i <= MODELS; i++)); do
        ((i > start)) && echo next >>"$cfg"
        printf 'url = "%s/api/v1/models"\nheader = "%s"\nheader = "Content-Type: application/json"\ndata = "{\\"name\\":\\"m-%04d\\",\\"labels\\":{\\"team\\":\\"nlp\\"}}"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n' \
            "$BASE" "$AUTH" "$i" >>"$cfg"
    done
    codes=$(curl -s -K "$cfg")
    created=$((created + $(grep -c '^201$' <<<"$codes" || true)))
    log "  $created / $MODELS created"
done
[[ $created == "$MODELS" ]] || die "only $created of $MODELS models were created"

# --- the anchor: nginx serving the console's own response bodies ------------
NGINX_DIR=$WORK/nginx
mkdir -p "$NGINX_DIR/www" "$NGINX_DIR/tmp"
chmod 755 "$WORK" "$NGINX_DIR" "$NGINX_DIR/www" # nginx workers may run as another user
curl -fsS -H "$AUTH" "$BASE/api/v1/models?limit=100" -o "$NGINX_DIR/www/page.json"
curl -fsS -H "$AUTH" "$BASE/api/v1/models/m-0500" -o "$NGINX_DIR/www/one.json"
chmod 644 "$NGINX_DIR/www/"*.json
ETAG=$(curl -fsS -o /dev/null -D - -H "$AUTH" "$BASE/api/v1/models?limit=100" | tr -d '\r' |
    sed -n 's/^etag: //Ip')
if [[ -n $ETAG ]]; then
    [[ $(curl -s -o /dev/null -w '%{http_code}' -H "$AUTH" -H "If-None-Match: $ETAG" "$BASE/api/v1/models?limit=100") == 304 ]] ||
        die "the console did not answer 304 to the page's own ETag"
else
    log "this console sends no ETag (a build from before conditional reads): no If-None-Match workload"
fi
items=$(jq '.items | length' "$NGINX_DIR/www/page.json")
[[ $items == 100 && $(jq -r .next_page_token "$NGINX_DIR/www/page.json") == m-0100 ]] ||
    die "unexpected first page: $items items"
NPORT=$(free_port)
NBASE=http://127.0.0.1:$NPORT
cat >"$NGINX_DIR/nginx.conf" <<EOF
worker_processes auto;   # one per CPU, like the console's tokio runtime
pid $NGINX_DIR/nginx.pid;
error_log $NGINX_DIR/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;      # the console logs no line per request either
    keepalive_requests 1000000;
    client_body_temp_path $NGINX_DIR/tmp/body;
    proxy_temp_path $NGINX_DIR/tmp/proxy;
    fastcgi_temp_path $NGINX_DIR/tmp/fastcgi;
    uwsgi_temp_path $NGINX_DIR/tmp/uwsgi;
    scgi_temp_path $NGINX_DIR/tmp/scgi;
    default_type application/json;
    server {
        listen 127.0.0.1:$NPORT;
        root $NGINX_DIR/www;
    }
}
EOF
log "starting nginx on $NBASE"
"$NGINX" -e "$NGINX_DIR/error.log" -p "$NGINX_DIR" -c "$NGINX_DIR/nginx.conf" -g 'daemon off;' \
    >"$NGINX_DIR/stdout.log" 2>&1 &
NGINX_PID=$!
wait_http "$NBASE/page.json" || { cat "$NGINX_DIR/error.log" >&2; die "nginx did not start"; }
cmp -s "$NGINX_DIR/www/page.json" <(curl -fsS "$NBASE/page.json") || die "nginx serves other bytes"
log "anchor bodies: page.json $(stat -c %s "$NGINX_DIR/www/page.json") bytes, one.json $(stat -c %s "$NGINX_DIR/www/one.json") bytes"

# --- measuring --------------------------------------------------------------
WRK=(wrk "-t$THREADS" "-c$CONNECTIONS" "-d$DURATION" --latency -H "$AUTH")
declare -A URL=(
    [nginx-page]="$NBASE/page.json"
    [list]="$BASE/api/v1/models?limit=100"
    [nginx-one]="$NBASE/one.json"
    [get]="$BASE/api/v1/models/m-0500"
    [list304]="$BASE/api/v1/models?limit=100"
)
READS=(nginx-page list nginx-one get)
[[ -n $ETAG ]] && READS+=(list304)

measure() { # NAME RUN: one wrk run, output kept in results/NAME.RUN
    local name=$1 run=$2 out=$WORK/results/$1.$2
    if [[ $name == create ]]; then
        "${WRK[@]}" -s "$ROOT/bench/create.lua" "$BASE/api/v1/models" -- "$TOKEN" "$run" >"$out" 2>&1
    elif [[ $name == list304 ]]; then
        "${WRK[@]}" -H "If-None-Match: $ETAG" "${URL[$name]}" >"$out" 2>&1
    else
        "${WRK[@]}" "${URL[$name]}" >"$out" 2>&1
    fi
    log "  $(printf '%-10s' "$name") run $run: $(parse_wrk "$out" | awk '{ printf "%s req/s, p50 %s ms, p99 %s ms, non-2xx %s", $1, $2, $3, $4 }')"
}

sum() { awk '{ s += $1 } END { print s + 0 }'; }
column_of() { # NAME FIELD: FIELD of every run of NAME, one a line
    for ((r = 1; r <= RUNS; r++)); do parse_wrk "$WORK/results/$1.$r" | cut -d' ' -f"$2"; done
}

log "warm-up: $WARMUP of each read target"
for name in "${READS[@]}"; do
    wrk "-t$THREADS" "-c$CONNECTIONS" "-d$WARMUP" -H "$AUTH" "${URL[$name]}" >/dev/null
done

log "phase 1, reads: $RUNS rounds of ${READS[*]}; wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency"
for ((r = 1; r <= RUNS; r++)); do
    for name in "${READS[@]}"; do measure "$name" "$r"; done
done

log "phase 2, creation: $RUNS runs"
for ((r = 1; r <= RUNS; r++)); do measure create "$r"; done

# fsyncs per acknowledged creation, counted by strace on the console's threads.
FSYNC_LINE="not run (strace missing or FSYNC_CHECK=0)"
if [[ ${FSYNC_CHECK:-1} == 1 ]] && command -v strace >/dev/null; then
    strace -f -w -c -e trace=fsync,fdatasync -o "$WORK/strace.txt" -p "$CONSOLE_PID" 2>/dev/null &
    STRACE_PID=$!
    sleep 1 # let strace attach to every thread
    wrk "-t$THREADS" "-c$CONNECTIONS" -d5s -s "$ROOT/bench/create.lua" "$BASE/api/v1/models" -- "$TOKEN" strace \
        >"$WORK/results/create.strace" 2>&1
    sleep 0.5
    kill -INT "$STRACE_PID"
    wait "$STRACE_PID" || true
    syncs=$(awk '$NF ~ /^f(data)?sync$/ { n += $4 } END { print n + 0 }' "$WORK/strace.txt")
    usecs=$(awk '$NF ~ /^f(data)?sync$/ { s += $2; n += $4 } END { if (n) printf "%.2f", s / n * 1000; else print "?" }' "$WORK/strace.txt")
    acked_strace=$(sed -n 's/^statuses: 201=\([0-9]*\).*/\1/p' "$WORK/results/create.strace")
    FSYNC_LINE="$syncs fsync calls for ${acked_strace:-?} acknowledged creations, mean wall time $usecs ms per fsync (5 s run under strace, not in the table)"
    log "fsync check: $FSYNC_LINE"
fi

# --- checks -----------------------------------------------------------------
# A crash right after the creations: every 201 wrk saw must still be a row.
log "killing the console with SIGKILL and starting it again on the same home"
kill -KILL "$CONSOLE_PID"
wait "$CONSOLE_PID" 2>/dev/null || true
"$AUTOGLM_BIN" console --nacos-addr off --home "$WORK/home" --addr "127.0.0.1:$PORT" >>"$WORK/console.log" 2>&1 &
CONSOLE_PID=$!
wait_http "$BASE/healthz" || { cat "$WORK/console.log" >&2; die "the console did not come back after SIGKILL"; }
# Page through the whole registry.
acked=0
for f in "$WORK/results"/create.*; do
    n=$(sed -n 's/^statuses: 201=\([0-9]*\).*/\1/p' "$f")
    acked=$((acked + ${n:-0}))
done
total=0
token=
while :; do
    page=$(curl -fsS -G -H "$AUTH" "$BASE/api/v1/models" --data-urlencode limit=1000 \
        ${token:+--data-urlencode "page_token=$token"})
    total=$((total + $(jq '.items | length' <<<"$page")))
    token=$(jq -r '.next_page_token // empty' <<<"$page")
    [[ -z $token ]] && break
done
# A request wrk sent but whose answer came after the run stopped was committed
# without being counted: at most CONNECTIONS per run more rows than 201s.
unacked=$((total - MODELS - acked))
if ((unacked >= 0 && unacked <= (RUNS + 1) * CONNECTIONS)); then
    verdict="ok: no acknowledged creation is missing; $unacked more were in flight when wrk stopped"
else
    verdict="MISMATCH"
fi
log "after SIGKILL and restart, the registry holds $total models: $MODELS seeded + $acked acknowledged creations; $verdict"
for name in "${READS[@]}"; do
    bad=$(column_of "$name" 4 | sum)
    [[ $bad == 0 ]] || log "WARNING: $name got $bad non-2xx responses"
done

# --- the table ----------------------------------------------------------------
anchor_of() { case $1 in list | create) echo nginx-page ;; get | list304) echo nginx-one ;; *) echo "$1" ;; esac; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf (b > 0 ? "%.3f" : "n/a"), a / b }'; }

echo
echo "Machine: $(nproc) CPUs ($CPU_MODEL), $MEM, $(uname -sr); console home on $FS."
echo "autoglm built from tree $REV; wrk $(wrk -v 2>&1 | head -1 | cut -d' ' -f2), $("$NGINX" -v 2>&1 | cut -d' ' -f3)."
echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (other processes share these CPUs)."
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, $RUNS runs each, medians per column; console and nginx on loopback, same machine, same run."
echo
echo "| workload | req/s (median) | req/s of each run | p50 ms | p99 ms | req/s ÷ anchor | p50 ÷ anchor | non-2xx / requests |"
echo "|---|---:|---|---:|---:|---:|---:|---:|"
declare -A LABEL=(
    [nginx-page]="nginx, static page.json (anchor for list, create)"
    [list]="console GET /api/v1/models?limit=100"
    [nginx-one]="nginx, static one.json (anchor for get)"
    [get]="console GET /api/v1/models/m-0500"
    [list304]="console GET /api/v1/models?limit=100, If-None-Match (304)"
    [create]="console POST /api/v1/models"
)
declare -A RPS P50 P99
for name in "${READS[@]}" create; do
    RPS[$name]=$(column_of "$name" 1 | median)
    P50[$name]=$(column_of "$name" 2 | median)
    P99[$name]=$(column_of "$name" 3 | median)
done
for name in "${READS[@]}" create; do
    anchor=$(anchor_of "$name")
    runs=$(column_of "$name" 1 | paste -sd' ' | sed 's/ /, /g')
    bad=$(column_of "$name" 4 | sum)
    all=$(column_of "$name" 6 | sum)
    if [[ $anchor == "$name" ]]; then rr="1"; rp="1"; else
        rr=$(ratio "${RPS[$name]}" "${RPS[$anchor]}")
        rp=$(ratio "${P50[$name]}" "${P50[$anchor]}")
    fi
    printf '| %s | %s | %s | %s | %s | %s | %s | %s / %s |\n' "${LABEL[$name]}" "${RPS[$name]}" "$runs" \
        "${P50[$name]}" "${P99[$name]}" "$rr" "$rp" "$bad" "$all"
done
echo
for ((r = 1; r <= RUNS; r++)); do
    echo "create run $r: $(grep '^statuses:' "$WORK/results/create.$r" || echo 'statuses: ?')"
done
echo "fsync check: $FSYNC_LINE."
echo "registry after the runs, a SIGKILL and a restart: $total models = $MODELS seeded + $acked acknowledged creations (all runs, the strace one too) + $unacked; $verdict."
