#!/usr/bin/env bash
# bench/webhook.sh: the latency the admission webhook adds to a ModelService
# write at a real kube-apiserver (the test plane of scripts/k8s.sh), with the
# 20 policies of bench/policy.sh in the namespace's policies-acme
# ConfigMap. crates/autoglm-operator/examples/admission_latency.rs times N
# server-side dry-run creates (the whole API path: authn, schema, admission,
# no etcd write) without the webhook, then with it (served in the same
# process over TLS, self-signed, failurePolicy Fail), in one run. The anchor
# is the same API server without the webhook.
#
# Usage: bench/webhook.sh        Knobs: N=1000
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
N=${N:-1000}
NAMESPACE=acme

BIN=$("$ROOT/scripts/k8s.sh" build)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/autoglm-webhook-bench.XXXXXX")
trap '"$ROOT/scripts/k8s.sh" stop "$WORK/plane" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT

log "machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo); load average $(cut -d' ' -f1-3 /proc/loadavg)"
log "building the examples (release)"
(cd "$ROOT" && cargo build -q --release -p autoglm-policy --example decide \
    && cargo build -q --release -p autoglm-operator --example admission_latency \
    && cargo build -q -p autoglm --bin autoglm)
# The CRD only: the debug build of autoglm serves.
CRD_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug/autoglm
OUT=${CARGO_TARGET_DIR:-$ROOT/target}/release
"$OUT/examples/decide" "$WORK/policies" 10 >/dev/null

mkdir -p "$WORK/plane"
KUBECONFIG=$("$ROOT/scripts/k8s.sh" start "$WORK/plane")
kubectl() { "$BIN/kubectl" --kubeconfig "$KUBECONFIG" "$@"; }
"$CRD_BIN" crd | kubectl apply -f - >/dev/null
kubectl wait --for=condition=Established crd/modelservices.autoglm.io --timeout=30s >/dev/null
kubectl create namespace "$NAMESPACE" >/dev/null
jq -n --arg ns "$NAMESPACE" --slurpfile data "$WORK/policies/configmap-data.json" \
    '{apiVersion: "v1", kind: "ConfigMap",
      metadata: {name: ("policies-" + $ns), namespace: $ns, labels: {"autoglm.io/policies": "true", "autoglm.io/tenant": $ns}},
      data: $data[0]}' | kubectl apply -f - >/dev/null

log "$N dry-run creates without, then with, the webhook (20 policies)"
result=$("$OUT/examples/admission_latency" "$KUBECONFIG" "$NAMESPACE" "$WORK/policies/service.json" "$N" "$(free_port)")
log "$result"
field() { grep "^$1" <<<"$result" | sed -n "s/.*$2=\([-0-9.]*\).*/\1/p"; }
# kube-apiserver's own account of the webhook: its admission-duration
# histogram for policies.autoglm.io (bucket bounds in seconds).
bucket() {
    kubectl get --raw /metrics | grep '^apiserver_admission_webhook_admission_duration_seconds_' \
        | grep 'name="policies.autoglm.io"' | grep "$1" | awk '{ s += $2 } END { print s + 0 }'
}
calls=$(bucket '_count')
within5=$(bucket 'le="0.005"')
within25=$(bucket 'le="0.025"')
echo
echo "| ModelService dry-run create, $N each | p50 ms | p90 ms | p99 ms |"
echo "|---|---:|---:|---:|"
echo "| kube-apiserver, no webhook | $(field "without webhook" p50_ms) | $(field "without webhook" p90_ms) | $(field "without webhook" p99_ms) |"
echo "| kube-apiserver + autoglm webhook (20 policies) | $(field "with webhook" p50_ms) | $(field "with webhook" p90_ms) | $(field "with webhook" p99_ms) |"
echo "| added by the webhook | $(field added p50_ms) | | $(field added p99_ms) |"
echo
echo "kube-apiserver's histogram of the webhook's calls: $within5 of $calls within 5 ms, $within25 within 25 ms"
echo
echo "goal: p99 added <= 5 ms"
