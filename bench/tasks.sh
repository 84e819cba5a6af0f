#!/usr/bin/env bash
# bench/tasks.sh: the task scheduler's own costs over a real SQLite file,
# without a platform: how fast it drains TASKS queued no-op tasks with
# WORKERS workers (each claim and each end is an fsynced, audited write),
# their enqueue-to-start, and how long a traffic split queued behind TASKS
# deploys waits to start (PROBES of them, one at a time). RUNS rounds;
# prints each round's JSON and the medians.
#
#   bench/tasks.sh                      # TASKS=1000 WORKERS=4 PROBES=50 RUNS=3
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/bench/lib.sh"
TASKS=${TASKS:-1000} WORKERS=${WORKERS:-4} PROBES=${PROBES:-50} RUNS=${RUNS:-3}

log "building the queue benchmark (release)"
(cd "$ROOT" && cargo build -q --release -p autoglm-tasks --example queue_bench)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/queue_bench
OUT=$(mktemp -d)
for run in $(seq "$RUNS"); do
    log "round $run of $RUNS: $TASKS tasks, $WORKERS workers, $PROBES probes"
    "$BIN" "$TASKS" "$WORKERS" "$PROBES" | tee "$OUT/$run.json"
done
med() { jq -r "$1" "$OUT"/*.json | median; }
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(nproc) cores"
echo "median tasks/s:                       $(med .tasks_per_second)"
echo "median queued enqueue-to-start p50 ms: $(med .queued_enqueue_to_start_ms.p50)"
echo "median queued enqueue-to-start p99 ms: $(med .queued_enqueue_to_start_ms.p99)"
echo "median probe enqueue-to-start p50 ms:  $(med .probe_enqueue_to_start_ms_behind_queue.p50)"
echo "median probe enqueue-to-start p99 ms:  $(med .probe_enqueue_to_start_ms_behind_queue.p99)"
