#!/usr/bin/env bash
# The Kubernetes test control plane: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler and kwok, built from the Go module
# proxy and started on 127.0.0.1 the way controller-runtime's envtest does.
#
#   scripts/k8s.sh build          build (or reuse) the pinned binaries; prints their folder
#   scripts/k8s.sh start DIR      start a control plane whose state, logs and
#                                 kubeconfig live in DIR; prints DIR/kubeconfig
#   scripts/k8s.sh stop DIR       stop the control plane started in DIR, by PID
#   scripts/k8s.sh restart DIR C  stop component C (e.g. kube-apiserver) and start
#                                 it again with the same flags, as after a crash
#
# With AUTOGLM_K8S_OWNER_PID set, `start` also leaves a watchdog that stops
# the control plane once that process is gone: tests set it to their own PID,
# so nothing outlives a test run, even one that is killed.
#
# The binaries are cached under $AUTOGLM_CACHE/k8s/<versions>/bin (default
# ~/.cache/autoglm), so only the first build pays for compiling Kubernetes.
# There is no kubelet: kwok plays the nodes, so pods are scheduled and turn
# Ready but never run.
set -euo pipefail

K8S_VERSION=1.36.3
ETCD_VERSION=3.6.8
KWOK_VERSION=0.8.0
CACHE="${AUTOGLM_CACHE:-$HOME/.cache/autoglm}/k8s/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION"
BIN="$CACHE/bin"
TOOLS=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok)

SCRIPT="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"

log() { echo "k8s: $*" >&2; }
die() {
    echo "k8s: $*" >&2
    exit 1
}

built() {
    local tool
    for tool in "${TOOLS[@]}"; do [[ -x "$BIN/$tool" ]] || return 1; done
    [[ -f "$CACHE/stages.yaml" && -f "$CACHE/storage-class.yaml" ]]
}

# k8s.io/kubernetes replaces its staging modules with ./staging paths, which a
# dependent module cannot see: the wrapper replaces each with its v0.Y.Z release.
build_kubernetes() {
    local work="$1"
    mkdir -p "$work/kube"
    cd "$work/kube"
    cat >tools.go <<'EOF'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
EOF
    go mod init autoglm.local/k8s-build >/dev/null 2>&1
    go mod edit -require "k8s.io/kubernetes@v$K8S_VERSION"
    local gomod staging
    gomod="$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
    [[ -f "$gomod" ]] || die "could not download k8s.io/kubernetes@v$K8S_VERSION from the Go module proxy"
    for staging in $(sed -n 's#^\s*\(k8s.io/[^ ]*\) => ./staging/.*#\1#p' "$gomod"); do
        go mod edit -replace "$staging=$staging@v0.${K8S_VERSION#1.}"
    done
    log "resolving Kubernetes v$K8S_VERSION modules"
    go mod tidy
    local cmd
    for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
        log "compiling $cmd (the first build takes many minutes)"
        go build -o "$BIN.partial/$cmd" "k8s.io/kubernetes/cmd/$cmd"
    done
}

build_etcd() {
    local work="$1"
    mkdir -p "$work/etcd"
    cd "$work/etcd"
    cat >main.go <<'EOF'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
    go mod init autoglm.local/etcd-build >/dev/null 2>&1
    go mod edit -require "go.etcd.io/etcd/server/v3@v$ETCD_VERSION"
    log "resolving etcd v$ETCD_VERSION modules"
    go mod tidy
    log "compiling etcd"
    go build -o "$BIN.partial/etcd" .
}

build_kwok() {
    log "compiling kwok v$KWOK_VERSION"
    GOBIN="$BIN.partial" go install "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION"
    local src stage
    src="$(go mod download -json "sigs.k8s.io/kwok@v$KWOK_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
    # kwok since v0.8 ships no default stages. These make nodes Ready, carry
    # pods through scheduling to Running and Ready, and bind volume claims of
    # the kwok-volume StorageClass (made the default at start).
    : >"$BIN.partial/stages.yaml"
    for stage in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease \
        pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete \
        volume/fast/pvc-provision volume/fast/pv-bind volume/fast/pvc-delete volume/fast/pv-delete; do
        [[ -f "$src/kustomize/stage/$stage.yaml" ]] || die "kwok stage $stage missing in $src"
        { echo "---"; cat "$src/kustomize/stage/$stage.yaml"; } >>"$BIN.partial/stages.yaml"
    done
    cp "$src/kustomize/stage/volume/fast/storage-class.yaml" "$BIN.partial/storage-class.yaml"
}

cmd_build() {
    if built; then
        echo "$BIN"
        return
    fi
    command -v go >/dev/null || die "Go is needed to build the control plane"
    WORK="$(mktemp -d)"
    trap 'rm -rf "$WORK"' EXIT
    rm -rf "$BIN.partial"
    mkdir -p "$BIN.partial"
    (build_kubernetes "$WORK")
    (build_etcd "$WORK")
    (build_kwok)
    mv "$BIN.partial/stages.yaml" "$BIN.partial/storage-class.yaml" "$CACHE/"
    rm -rf "$BIN"
    mv "$BIN.partial" "$BIN"
    log "built into $BIN"
    echo "$BIN"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until a command succeeds; gives up at the deadline or as soon as a
# component has exited, printing the end of the logs that say why.
wait_for() {
    local what="$1" seconds="$2"
    shift 2
    local deadline=$((SECONDS + seconds)) pid name
    until "$@" >/dev/null 2>&1; do
        while read -r pid name; do
            kill -0 "$pid" 2>/dev/null && continue
            show_log "$name"
            die "$name exited while waiting for $what"
        done <"$DIR/pids"
        if ((SECONDS >= deadline)); then
            while read -r pid name; do show_log "$name"; done <"$DIR/pids"
            die "$what did not come up within ${seconds}s; the logs are in $DIR"
        fi
        sleep 0.2
    done
}

show_log() {
    log "the last lines of $1's log:"
    tail -n 15 "$DIR/$1.log" | sed "s/^/k8s:   $1: /" >&2 || true
}

launch() {
    local name="$1"
    shift
    printf '%q ' "$@" >"$DIR/$name.cmd"
    "$@" >>"$DIR/$name.log" 2>&1 &
    echo "$! $name" >>"$DIR/pids"
}

# Kills one component and starts it again with the same flags (and ports),
# as a crash and restart would; the tests use it on kube-apiserver.
cmd_restart() {
    DIR="$(cd "$1" && pwd)"
    local name="$2" pid rest
    [[ -f "$DIR/$name.cmd" ]] || die "no $name runs in $DIR"
    read -r pid rest < <(grep " $name\$" "$DIR/pids")
    log "restarting $name (pid $pid)"
    kill -9 "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    grep -v " $name\$" "$DIR/pids" >"$DIR/pids.next" || true
    eval "$(cat "$DIR/$name.cmd")" '>>"$DIR/$name.log" 2>&1 &'
    echo "$! $name" >>"$DIR/pids.next"
    mv "$DIR/pids.next" "$DIR/pids"
    if [[ "$name" == kube-apiserver ]]; then
        wait_for kube-apiserver 90 "$BIN/kubectl" --kubeconfig "$DIR/kubeconfig" get --raw /readyz
    fi
    log "$name is back"
}

# An admin identity by client certificate, as envtest makes one.
make_certs() {
    local pki="$DIR/pki"
    mkdir -p "$pki"
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=autoglm-test-ca" \
        -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
        -keyout "$pki/server.key" -out "$pki/server.csr" 2>/dev/null
    openssl x509 -req -in "$pki/server.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 30 \
        -extfile <(printf 'subjectAltName=IP:127.0.0.1,DNS:localhost') -out "$pki/server.crt" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=autoglm-admin" \
        -keyout "$pki/admin.key" -out "$pki/admin.csr" 2>/dev/null
    # Extensions make it an X.509 v3 certificate, the only kind rustls accepts.
    openssl x509 -req -in "$pki/admin.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 30 \
        -extfile <(printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth') \
        -out "$pki/admin.crt" 2>/dev/null
    openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
    openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
}

write_kubeconfig() {
    local pki="$DIR/pki"
    cat >"$DIR/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: autoglm-test
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $(base64 -w0 "$pki/ca.crt")
users:
- name: admin
  user:
    client-certificate-data: $(base64 -w0 "$pki/admin.crt")
    client-key-data: $(base64 -w0 "$pki/admin.key")
contexts:
- name: autoglm-test
  context: {cluster: autoglm-test, user: admin}
current-context: autoglm-test
EOF
}

# Fake nodes for kwok: two plain ones, and two carrying a GPU each with the
# label and taint that NVIDIA's GPU operator puts on such nodes.
node_manifest() {
    local name="$1" gpu="$2" labels="" taints="[]" extra=""
    if [[ "$gpu" == 1 ]]; then
        labels=', nvidia.com/gpu.present: "true"'
        taints='[{key: nvidia.com/gpu, value: present, effect: NoSchedule}]'
        extra=', nvidia.com/gpu: "1"'
    fi
    cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: $name
  annotations: {kwok.x-k8s.io/node: fake}
  labels: {kubernetes.io/hostname: $name, type: kwok$labels}
spec:
  taints: $taints
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "1000"$extra}
  capacity: {cpu: "32", memory: 256Gi, pods: "1000"$extra}
EOF
}

create_nodes() {
    {
        node_manifest kwok-node-0 0
        node_manifest kwok-node-1 0
        node_manifest kwok-gpu-0 1
        node_manifest kwok-gpu-1 1
        echo "---"
        cat "$CACHE/storage-class.yaml"
    } | "$BIN/kubectl" --kubeconfig "$DIR/kubeconfig" apply -f - >/dev/null
}

cmd_start() {
    DIR="$(mkdir -p "$1" && cd "$1" && pwd)"
    [[ ! -s "$DIR/pids" ]] || die "a control plane already runs in $DIR; stop it first"
    (cmd_build >/dev/null)
    command -v openssl >/dev/null || die "openssl is needed for the control plane's certificates"
    : >"$DIR/pids"
    # Whatever ends a start early (a failed step, a component that died, a
    # deadline) stops what it had started.
    trap 'cmd_stop "$DIR"' EXIT
    make_certs
    local pki="$DIR/pki" etcd_port etcd_peer
    etcd_port="$(free_port)"
    etcd_peer="$(free_port)"
    API_PORT="$(free_port)"
    log "starting etcd on 127.0.0.1:$etcd_port"
    launch etcd "$BIN/etcd" --data-dir "$DIR/etcd" --name autoglm-test \
        --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
        --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
        --initial-cluster "autoglm-test=http://127.0.0.1:$etcd_peer" --unsafe-no-fsync
    wait_for etcd 30 curl -sf "http://127.0.0.1:$etcd_port/health"
    log "starting kube-apiserver on 127.0.0.1:$API_PORT"
    launch kube-apiserver "$BIN/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" \
        --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" \
        --cert-dir "$pki" --tls-cert-file "$pki/server.crt" --tls-private-key-file "$pki/server.key" \
        --client-ca-file "$pki/ca.crt" --authorization-mode RBAC \
        --service-account-issuer https://kubernetes.default.svc --service-account-key-file "$pki/sa.pub" \
        --service-account-signing-key-file "$pki/sa.key" --service-cluster-ip-range 10.96.0.0/16 \
        --disable-admission-plugins ServiceAccount --allow-privileged=true
    write_kubeconfig
    wait_for kube-apiserver 90 "$BIN/kubectl" --kubeconfig "$DIR/kubeconfig" get --raw /readyz
    log "starting kube-controller-manager, kube-scheduler and kwok"
    # kwok's node heartbeats lag when it is busy (hundreds of pods) or the API
    # server restarts; the node controller would then mark every pod not ready
    # for good, as kwok never turns them back. Fake nodes are always healthy.
    launch kube-controller-manager "$BIN/kube-controller-manager" --kubeconfig "$DIR/kubeconfig" \
        --leader-elect=false --bind-address 127.0.0.1 --secure-port "$(free_port)" \
        --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
        --controllers '*,-serviceaccount-token' --node-monitor-grace-period 10m
    launch kube-scheduler "$BIN/kube-scheduler" --kubeconfig "$DIR/kubeconfig" \
        --leader-elect=false --bind-address 127.0.0.1 --secure-port "$(free_port)"
    launch kwok "$BIN/kwok" --kubeconfig "$DIR/kubeconfig" --manage-all-nodes=true --cidr 10.244.0.0/16 \
        --config "$CACHE/stages.yaml" --server-address "127.0.0.1:$(free_port)"
    create_nodes
    wait_for "ready nodes" 90 "$BIN/kubectl" --kubeconfig "$DIR/kubeconfig" wait --for=condition=Ready node --all --timeout=1s
    trap - EXIT
    if [[ -n "${AUTOGLM_K8S_OWNER_PID:-}" ]]; then
        setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; "$2" stop "$3"' \
            watchdog "$AUTOGLM_K8S_OWNER_PID" "$SCRIPT" "$DIR" </dev/null >/dev/null 2>&1 &
    fi
    log "ready; kubectl --kubeconfig $DIR/kubeconfig get nodes"
    echo "$DIR/kubeconfig"
}

cmd_stop() {
    local dir="$1" pid name
    [[ -f "$dir/pids" ]] || return 0
    # Reverse start order: kwok and the controllers before the API server, etcd last.
    tac "$dir/pids" | while read -r pid name; do
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    : >"$dir/pids"
}

case "${1:-}" in
build) cmd_build ;;
start)
    [[ -n "${2:-}" ]] || die "usage: $0 start DIR"
    # One more try from scratch, on fresh ports, after a failed start: a port
    # that free_port handed out can be taken by another process before the
    # component binds it. The first try's logs stay in DIR/failed-start. Each
    # try is its own process: `set -e` does not hold inside a `&&` list.
    bash "$SCRIPT" start-once "$2" && exit 0
    log "the control plane did not start; trying once more on fresh ports"
    rm -rf "$2/failed-start" && mkdir "$2/failed-start"
    find "$2" -mindepth 1 -maxdepth 1 ! -name failed-start -exec mv -t "$2/failed-start" {} +
    cmd_start "$2"
    ;;
start-once) cmd_start "$2" ;;
stop) [[ -n "${2:-}" ]] || die "usage: $0 stop DIR"; cmd_stop "$2" ;;
restart) [[ -n "${3:-}" ]] || die "usage: $0 restart DIR COMPONENT"; cmd_restart "$2" "$3" ;;
*) die "usage: $0 build | start DIR | stop DIR | restart DIR COMPONENT" ;;
esac
