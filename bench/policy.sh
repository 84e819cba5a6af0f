#!/usr/bin/env bash
# bench/policy.sh: the cost of judging one deploy by 20 policies, autoglm
# (regorus, crates/autoglm-policy/examples/decide.rs) beside OPA (`opa bench`,
# v1.22.4 from scripts/opa.sh) evaluating the same 20 policies on the same
# input documents, in one run on this machine.
#
# autoglm times whole decisions (all 20 policies, in-process, one after the
# other, as a deploy is judged); OPA times each policy's `deny` query on its
# own, and its 20 medians and 20 p99s are summed: what a webhook that asks
# OPA for each policy in turn would spend at best (no HTTP, no batching).
#
# Usage: bench/policy.sh        Knobs: ITERATIONS=20000 (opa bench runs each query about a second)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
ITERATIONS=${ITERATIONS:-20000}

OPA=$("$ROOT/scripts/opa.sh" build)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/autoglm-policy-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

log "machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo); load average $(cut -d' ' -f1-3 /proc/loadavg)"
log "building the decide example (release)"
(cd "$ROOT" && cargo build -q --release -p autoglm-policy --example decide)
EXAMPLE=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/decide

log "autoglm: $ITERATIONS decisions of 20 policies"
ours=$("$EXAMPLE" "$WORK" "$ITERATIONS")
log "  $ours"

log "OPA $("$OPA" version | head -1 | cut -d' ' -f2): opa bench of each policy's deny query"
opa_p50=0
opa_p99=0
for rego in "$WORK"/*.rego; do
    n=$(basename "$rego" .rego)
    answer=$("$OPA" bench --benchmem=false --fail=false --format json \
        -d "$rego" -i "$WORK/$n.json" "$(cat "$WORK/$n.query")")
    p50=$(jq '.Extra["histogram_timer_rego_query_eval_ns_median"]' <<<"$answer")
    p99=$(jq '.Extra["histogram_timer_rego_query_eval_ns_99%"]' <<<"$answer")
    opa_p50=$(awk -v a="$opa_p50" -v b="$p50" 'BEGIN { print a + b / 1000 }')
    opa_p99=$(awk -v a="$opa_p99" -v b="$p99" 'BEGIN { print a + b / 1000 }')
done

field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" <<<"$ours"; }
p50=$(field p50_us)
p99=$(field p99_us)
echo
echo "| 20 policies per deploy | p50 µs | p99 µs |"
echo "|---|---:|---:|"
echo "| autoglm (regorus), one decision | $p50 | $p99 |"
printf '| OPA %s, sum of 20 queries | %.1f | %.1f |\n' "$("$OPA" version | head -1 | cut -d' ' -f2)" "$opa_p50" "$opa_p99"
awk -v a="$p50" -v b="$opa_p50" -v c="$p99" -v d="$opa_p99" 'BEGIN { printf "| autoglm ÷ OPA | %.2f | %.2f |\n", a / b, c / d }'
echo
echo "goal: p99 <= 1000 µs per deploy with 20 policies"
