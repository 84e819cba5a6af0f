#!/usr/bin/env bash
# bench/config.sh: the config center's publish-to-notify latency with 1,000
# watchers, and its publishes per second with them attached, side by side
# in one run with etcd (the etcd that scripts/k8s.sh builds for the
# Kubernetes test plane) watching the same number of keys.
#
# What it does:
#   1. builds target/release/autoglm (skipped when AUTOGLM_BIN is set), the
#      etcd of scripts/k8s.sh (cached; skipped when ETCD_BIN is set) and the
#      load generator bench/configwatch (Go, etcd's official client v3) into
#      $AUTOGLM_CACHE/bench (default ~/.cache/autoglm/bench);
#   2. starts, on free loopback ports with their data in one temporary
#      folder, a console (`autoglm console --nacos-addr off`) and a one-member
#      etcd with its defaults (fsync on: every acknowledged write is durable
#      in both systems);
#   3. for each MODE (distinct: WATCHERS watchers on as many keys; same:
#      WATCHERS watchers on one key, the fan-out case) and each system (etcd
#      watch streams, one client connection per watcher; autoglm long-polls
#      `POST /api/v1/config/watch`; autoglm server-sent events
#      `GET .../events?key=`), runs bench/configwatch once: the watchers
#      register, then ROUNDS (distinct) or FANOUT_ROUNDS (same) publishes go
#      out one at a time, each timed from its send to every watcher's
#      notification (the next waits until every watcher is notified and
#      waiting again, plus GAP or FANOUT_GAP); then, with the watchers still
#      attached, publishes for DURATION with 1 and with 8 publishers
#      (PUBLISHERS), after which every watcher must come to hold its key's
#      final value;
#   4. repeats that RUNS times and prints a markdown table: per mode and
#      system, the median over runs of each column, and autoglm ÷ etcd.
# Each scenario gets a fresh key space: its own environment (autoglm) or
# prefix (etcd), holding only its own keys.
#
# Usage:   bench/config.sh
# Knobs (environment): AUTOGLM_BIN=path  ETCD_BIN=path  RUNS=1  WATCHERS=1000
#                      ROUNDS=1000  FANOUT_ROUNDS=100  GAP=10ms  FANOUT_GAP=50ms
#                      DURATION=5s  PUBLISHERS=1,8  MODES="distinct same"
#                      SYSTEMS="etcd long-poll sse"  ETCD_CONNS=0 (client
#                      connections etcd's watchers share; 0: one each)  KEEP=1
#                      (keep the temporary folder with the raw JSON and the logs)
# Needs: go, curl, jq, ss
set -euo pipefail

RUNS=${RUNS:-1}
WATCHERS=${WATCHERS:-1000}
ROUNDS=${ROUNDS:-1000}
FANOUT_ROUNDS=${FANOUT_ROUNDS:-100}
GAP=${GAP:-10ms}
FANOUT_GAP=${FANOUT_GAP:-50ms}
DURATION=${DURATION:-5s}
PUBLISHERS=${PUBLISHERS:-1,8}
MODES=${MODES:-distinct same}
SYSTEMS=${SYSTEMS:-etcd long-poll sse}
ETCD_CONNS=${ETCD_CONNS:-0}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${AUTOGLM_CACHE:-$HOME/.cache/autoglm}/bench

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

for tool in go curl jq ss; do
    command -v "$tool" >/dev/null || die "$tool is missing"
done
# Two sockets per watcher (client and server side), all in this session.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
(($(ulimit -n) > 2 * WATCHERS + 256)) || die "ulimit -n is $(ulimit -n); $WATCHERS watchers need more"

# --- the binaries ------------------------------------------------------------
autoglm_bin
if [[ -z ${ETCD_BIN:-} ]]; then
    log "building etcd with scripts/k8s.sh (cached after the first build)"
    ETCD_BIN=$("$ROOT/scripts/k8s.sh" build)/etcd
fi
[[ -x $ETCD_BIN ]] || die "no executable at ETCD_BIN=$ETCD_BIN"
log "building the load generator bench/configwatch"
mkdir -p "$CACHE"
(cd "$ROOT/bench/configwatch" && go build -o "$CACHE/configwatch" .)
LOADGEN=$CACHE/configwatch

# --- temporary folder, and stopping everything on exit ------------------------
CONSOLE_PID=
ETCD_PID=
bench_workdir autoglm-config-bench CONSOLE_PID ETCD_PID

CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
MEM=$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
FS=$(findmnt -n -o FSTYPE,SOURCE -T "$WORK" 2>/dev/null | tr -s ' ' || echo unknown)
REV=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)
log "machine: $(nproc) CPUs, $CPU_MODEL, $MEM; $(uname -sr); data on $FS; load average $(cut -d' ' -f1-3 /proc/loadavg)"
log "versions: autoglm $("$AUTOGLM_BIN" --version | cut -d' ' -f2) (tree $REV), etcd $("$ETCD_BIN" --version | awk '/^etcd Version/ { print $3 }'), $(go version | cut -d' ' -f3)"

# --- the servers --------------------------------------------------------------
PORT=$(free_port)
BASE=http://127.0.0.1:$PORT
log "starting the console on $BASE"
"$AUTOGLM_BIN" console --nacos-addr off --home "$WORK/home" --addr "127.0.0.1:$PORT" >"$WORK/console.log" 2>&1 &
CONSOLE_PID=$!
wait_http "$BASE/healthz" || { cat "$WORK/console.log" >&2; die "the console did not answer /healthz"; }
TOKEN=$(cat "$WORK/home/admin-token")

EPORT=$(free_port)
EPEER=$(free_port)
log "starting etcd on 127.0.0.1:$EPORT (fsync on)"
"$ETCD_BIN" --data-dir "$WORK/etcd" --name bench --log-level warn \
    --listen-client-urls "http://127.0.0.1:$EPORT" --advertise-client-urls "http://127.0.0.1:$EPORT" \
    --listen-peer-urls "http://127.0.0.1:$EPEER" --initial-advertise-peer-urls "http://127.0.0.1:$EPEER" \
    --initial-cluster "bench=http://127.0.0.1:$EPEER" >"$WORK/etcd.log" 2>&1 &
ETCD_PID=$!
wait_http "http://127.0.0.1:$EPORT/health" || { cat "$WORK/etcd.log" >&2; die "etcd did not start"; }

# --- measuring ----------------------------------------------------------------
RESULTS=$WORK/results.jsonl
: >"$RESULTS"
for run in $(seq "$RUNS"); do
    for mode in $MODES; do
        if [[ $mode == same ]]; then rounds=$FANOUT_ROUNDS gap=$FANOUT_GAP; else rounds=$ROUNDS gap=$GAP; fi
        for system in $SYSTEMS; do
            log "run $run of $RUNS: $mode keys, $system"
            args=(-mode "$mode" -watchers "$WATCHERS" -rounds "$rounds" -gap "$gap" -duration "$DURATION"
                -publishers "$PUBLISHERS" -env "$system-$mode-$run" -group bench)
            if [[ $system == etcd ]]; then
                args+=(-system etcd -addr "127.0.0.1:$EPORT" -pid "$ETCD_PID" -etcd-conns "$ETCD_CONNS")
            else
                args+=(-system autoglm -watch "$system" -addr "$BASE" -token "$TOKEN" -pid "$CONSOLE_PID")
            fi
            "$LOADGEN" "${args[@]}" 2>>"$WORK/configwatch.log" | jq -c --argjson run "$run" '. + {run: $run}' >>"$RESULTS"
            tail -1 "$RESULTS" | jq -r '"  notify p50 \(.notify_ms.p50) ms, p99 \(.notify_ms.p99) ms, missed \(.missed); " +
                ([.throughput[] | "\(.publishers) publisher(s) \(.per_s)/s"] | join(", ")) + "; errors \(.errors)"' >&2
            sleep 1
        done
    done
done
log "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
# Stopped here, not by bench_cleanup: etcd exits 143 on SIGTERM, and under
# set -e that status would end the cleanup before it removes $WORK.
kill "$ETCD_PID" && { wait "$ETCD_PID" || true; }
ETCD_PID=
[[ $(jq -s 'map(.errors + .missed) | add' "$RESULTS") == 0 ]] || log "warning: some runs saw errors or missed notifications (see $RESULTS)"
KEEP_RESULTS=$CACHE/config-results-$(date -u +%Y%m%dT%H%M%SZ).jsonl
cp "$RESULTS" "$KEEP_RESULTS"
log "raw results copied to $KEEP_RESULTS"

# --- the table: medians over runs, autoglm ÷ etcd -----------------------------
jq -rs --arg pubs "$PUBLISHERS" '
    def median: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor]
        else (.[length / 2 - 1] + .[length / 2]) / 2 end;
    def r2: if . == null then "–" else (. * 100 | round / 100 | tostring) end;
    def r1: if . == null then "–" else (. * 10 | round / 10 | tostring) end;
    def ratio($a; $b): if $a == null or $b == null or $b == 0 then "–" else ($a / $b | r2) end;
    ($pubs | split(",") | map(tonumber)) as $P
    | group_by(.mode) | map(
        . as $rows
        | (group_by(.system + " " + .watch) | map({
            name: (.[0].system + " " + .[0].watch),
            runs: length,
            p50: (map(.notify_ms.p50) | median), p99: (map(.notify_ms.p99) | median),
            max: (map(.notify_ms.max) | median), last99: (map(.last_watcher_ms.p99) | median),
            ack50: (map(.ack_to_notify_ms.p50) | median), pub50: (map(.publish_ms.p50) | median),
            cpu: (map(.server_cpu_ms_per_round) | median),
            per_s: [$P[] as $p | map(.throughput[] | select(.publishers == $p) | .per_s) | median],
            settle: [$P[] as $p | map(.throughput[] | select(.publishers == $p) | .settle_ms) | median],
            conv: (map(.throughput[] | .converged) | min), watchers: .[0].watchers,
            missed: (map(.missed) | add), errors: (map(.errors) | add)
          }) | sort_by(.name != "etcd watch")) as $sys
        | ($sys | map(select(.name == "etcd watch")) | .[0]) as $etcd
        | "\n### \(if $rows[0].mode == "same" then "fan-out" else "distinct keys" end): \($rows[0].watchers) watchers on \($rows[0].keys) key(s), \($rows[0].rounds) timed publishes, \($sys[0].runs) run(s)\n",
          "| system | notify p50 ms | p99 ms | max ms | p99 until the last watcher ms | ack→notify p50 ms | publish ack p50 ms | server CPU ms / timed publish | " + ($P | map("publishes/s, \(.) publisher(s)") | join(" | ")) + " | missed / errors |",
          "|---|---:|---:|---:|---:|---:|---:|---:|" + ($P | map("---:") | join("|")) + "|---:|",
          ($sys[] | "| \(.name) | \(.p50 | r2) | \(.p99 | r2) | \(.max | r2) | \(.last99 | r2) | \(.ack50 | r2) | \(.pub50 | r2) | \(.cpu | r2) | " +
              (.per_s | map(r1) | join(" | ")) + " | \(.missed) / \(.errors) |"),
          ($sys[] | select(.name != "etcd watch") | . as $s |
              "| \($s.name) ÷ etcd | \(ratio($s.p50; $etcd.p50)) | \(ratio($s.p99; $etcd.p99)) | \(ratio($s.max; $etcd.max)) | \(ratio($s.last99; $etcd.last99)) | | \(ratio($s.pub50; $etcd.pub50)) | \(ratio($s.cpu; $etcd.cpu)) | " +
              ([range($P | length) as $i | ratio($s.per_s[$i]; $etcd.per_s[$i])] | join(" | ")) + " | |")
      ) | .[]
' "$RESULTS"
