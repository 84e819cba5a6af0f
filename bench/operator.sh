#!/usr/bin/env bash
# bench/operator.sh: the operator against `kubectl apply` of the same rendered
# children, side by side in one run on one fresh test control plane
# (scripts/k8s.sh: etcd, kube-apiserver, controller-manager, scheduler, kwok).
#
# What it does:
#   1. builds target/release/autoglm (skipped when AUTOGLM_BIN is set) and
#      starts a control plane in a temporary folder, with the CRD installed;
#   2. writes N ModelServices (one version, one replica each), and renders
#      each with `autoglm render` (offline, before any clock runs);
#   3. anchor: `kubectl apply --server-side` of all rendered children into
#      namespace bench-kubectl, then `kubectl wait --for=condition=Available`
#      on every Deployment: the time from the apply to the last one Available;
#   4. operator: `autoglm operator` (leader election on) watching namespace
#      bench-operator; `kubectl apply --server-side` of the N ModelServices,
#      then `kubectl wait --for=condition=Ready` on every one: the time from
#      the apply to the last one Ready;
#   5. resync: with --resync-interval $RESYNC, waits until every ModelService
#      has been reconciled again with nothing changed and reads the writes the
#      operator counted meanwhile (autoglm_operator_api_writes_total), and its
#      resident memory (VmRSS, VmHWM) at N services;
#   6. restart: kills the operator, starts another, and counts its writes
#      until it has reconciled every ModelService once;
#   7. prints a markdown table.
#
# Usage:   bench/operator.sh
# Knobs (environment): AUTOGLM_BIN=path N=500 RESYNC=30 KEEP=1 (keep the folder)
# Needs: curl, openssl, python3 and Go (for the first control-plane build).
set -euo pipefail

N=${N:-500}
RESYNC=${RESYNC:-30}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
autoglm_bin

WORK=$(mktemp -d "${TMPDIR:-/tmp}/autoglm-operator-bench.XXXXXX")
OPERATOR_PID=
cleanup() {
    local rc=$?
    [[ -n $OPERATOR_PID ]] && kill "$OPERATOR_PID" 2>/dev/null && wait "$OPERATOR_PID" 2>/dev/null
    "$ROOT/scripts/k8s.sh" stop "$WORK/k8s"
    if [[ ${KEEP:-0} == 1 || $rc != 0 ]]; then log "raw outputs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

KUBECTL="$("$ROOT/scripts/k8s.sh" build)/kubectl"
"$ROOT/scripts/k8s.sh" start "$WORK/k8s" >/dev/null
k() { "$KUBECTL" --kubeconfig "$WORK/k8s/kubeconfig" "$@"; }
"$AUTOGLM_BIN" crd | k apply -f - >/dev/null
k wait --for=condition=Established crd/modelservices.autoglm.io --timeout=60s >/dev/null
k create namespace bench-kubectl >/dev/null
k create namespace bench-operator >/dev/null

log "writing and rendering $N ModelServices"
spec='{model: smollm2, versions: [{version: "1", weight: 100}], replicas: 1}'
for i in $(seq "$N"); do
    printf -- '---\napiVersion: autoglm.io/v1alpha1\nkind: ModelService\nmetadata: {name: svc-%d, namespace: bench-operator}\nspec: %s\n' "$i" "$spec" >>"$WORK/services.yaml"
    printf 'apiVersion: autoglm.io/v1alpha1\nkind: ModelService\nmetadata: {name: svc-%d}\nspec: %s\n' "$i" "$spec" >"$WORK/one.yaml"
    "$AUTOGLM_BIN" render -f "$WORK/one.yaml" -n bench-kubectl >>"$WORK/children.yaml"
done
children=$(grep -c '^kind:' "$WORK/children.yaml")

now() { date +%s.%N; }

log "anchor: kubectl apply --server-side of $children rendered children"
start=$(now)
k apply --server-side -f "$WORK/children.yaml" >/dev/null
applied_kubectl=$(now)
k wait --for=condition=Available deployment --all -n bench-kubectl --timeout=1200s >/dev/null
done_kubectl=$(now)

metrics_port=$(free_port)
metric() { # NAME: the sum of its samples
    curl -fsS "http://127.0.0.1:$metrics_port/metrics" | awk -v m="$1" 'index($1, m) == 1 { s += $2 } END { print s + 0 }'
}
start_operator() {
    "$AUTOGLM_BIN" operator --kubeconfig "$WORK/k8s/kubeconfig" --namespace bench-operator \
        --metrics-addr "127.0.0.1:$metrics_port" --resync-interval "$RESYNC" >>"$WORK/operator.log" 2>&1 &
    OPERATOR_PID=$!
    wait_http "http://127.0.0.1:$metrics_port/readyz" || die "the operator did not lead within 30 s"
}
start_operator

log "operator: kubectl apply --server-side of $N ModelServices"
start_op=$(now)
k apply --server-side -f "$WORK/services.yaml" >/dev/null
applied_op=$(now)
k wait --for=condition=Ready modelservice --all -n bench-operator --timeout=1200s >/dev/null
done_op=$(now)

log "resync: waiting for every ModelService to be reconciled again (interval ${RESYNC}s)"
sleep 5
writes_before=$(metric autoglm_operator_api_writes_total)
reconciles_before=$(metric 'autoglm_operator_reconciles_total{result="success"}')
deadline=$((SECONDS + 3 * RESYNC + 60))
while (($(metric 'autoglm_operator_reconciles_total{result="success"}') < reconciles_before + N)); do
    ((SECONDS < deadline)) || die "no full resync within $((3 * RESYNC + 60)) s"
    sleep 1
done
writes_resync=$(($(metric autoglm_operator_api_writes_total) - writes_before))
rss_kib=$(awk '/^VmRSS/ { print $2 }' "/proc/$OPERATOR_PID/status")
hwm_kib=$(awk '/^VmHWM/ { print $2 }' "/proc/$OPERATOR_PID/status")

log "restart: a new operator reconciles every ModelService once"
kill -9 "$OPERATOR_PID"
wait "$OPERATOR_PID" 2>/dev/null || true
OPERATOR_PID=
restart_start=$(now)
# The killed leader's lease (15 s) must run out first.
start_operator
restart_leading=$(now)
deadline=$((SECONDS + 300))
while (($(metric 'autoglm_operator_reconciles_total{result="success"}') < N)); do
    ((SECONDS < deadline)) || die "the restarted operator did not reconcile every service within 300 s"
    sleep 1
done
restart_done=$(now)
writes_restart=$(metric autoglm_operator_api_writes_total)
applies_restart=$(metric 'autoglm_operator_api_writes_total{verb="apply"}')

awk -v n="$N" -v children="$children" \
    -v ka="$applied_kubectl" -v ks="$start" -v kd="$done_kubectl" \
    -v oa="$applied_op" -v os="$start_op" -v od="$done_op" \
    -v wr="$writes_resync" -v rss="$rss_kib" -v hwm="$hwm_kib" \
    -v rs="$restart_start" -v rl="$restart_leading" -v rd="$restart_done" \
    -v wrs="$writes_restart" -v ars="$applies_restart" 'BEGIN {
    kt = kd - ks; ot = od - os
    printf "| %d ModelServices (one replica each) | kubectl apply of the rendered children | autoglm operator | ratio |\n", n
    printf "|---|---:|---:|---:|\n"
    printf "| objects sent by kubectl | %d children | %d ModelServices | |\n", children, n
    printf "| kubectl apply returned after | %.1f s | %.1f s | |\n", ka - ks, oa - os
    printf "| all Available / Ready after | %.1f s | %.1f s | %.2f |\n", kt, ot, ot / kt
    printf "\n"
    printf "| operator at %d ModelServices | value |\n|---|---:|\n", n
    printf "| API writes during a full resync with nothing changed | %d |\n", wr
    printf "| resident memory (VmRSS) after the resync | %.1f MiB |\n", rss / 1024
    printf "| peak resident memory (VmHWM) | %.1f MiB |\n", hwm / 1024
    printf "| restart: lease wait until leading | %.1f s |\n", rl - rs
    printf "| restart: until every service reconciled once | %.1f s |\n", rd - rs
    printf "| restart: API writes (of which no-op applies) | %d (%d) |\n", wrs, ars
}'
