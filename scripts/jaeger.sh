#!/usr/bin/env bash
# Jaeger v2 (an OpenTelemetry Collector distribution), the OTLP trace
# collector the tests export to and then read back through its query API.
# Built from the Go module proxy: the `jaeger` command (cmd/jaeger) of the
# module github.com/jaegertracing/jaeger v1.75.0, the release also tagged
# v2.12.0 (the v2 binaries are published under the module's v1 versions).
#
#   scripts/jaeger.sh build         build (or reuse) the pinned binary; prints its path
#   scripts/jaeger.sh config OTLP_GRPC OTLP_HTTP QUERY_HTTP QUERY_GRPC
#                                   prints a configuration that listens on those
#                                   127.0.0.1 ports (and nowhere else), storing
#                                   traces in memory
#   scripts/jaeger.sh start DIR     start one on free ports, its configuration,
#                                   log and PID in DIR; prints DIR/ports, lines
#                                   such as OTLP_HTTP=http://127.0.0.1:PORT
#   scripts/jaeger.sh stop DIR      stop the one started in DIR, by PID
#
# The binary is cached under $AUTOGLM_CACHE/jaeger/jaeger-<version>/bin
# (default ~/.cache/autoglm), so only the first build pays for compiling it;
# a lock beside that folder keeps test processes that start together from
# building it twice. The tests (crates/autoglm/tests/common/jaeger.rs) use
# `build` and `config` and start the binary themselves, so it dies with them.
set -euo pipefail

JAEGER_VERSION=1.75.0
CACHE="${AUTOGLM_CACHE:-$HOME/.cache/autoglm}/jaeger/jaeger-$JAEGER_VERSION"
BIN="$CACHE/bin"

log() { echo "jaeger: $*" >&2; }
die() {
    echo "jaeger: $*" >&2
    exit 1
}

# shellcheck source=scripts/go-tool.sh
source "$(dirname "${BASH_SOURCE[0]}")/go-tool.sh"

# `go install …/cmd/jaeger@v…` refuses the module: its go.mod has a replace
# directive (sarama). Built as the main module, in its own downloaded source,
# it gets exactly its go.mod and go.sum.
compile_jaeger() {
    local src
    src="$(go mod download -json "github.com/jaegertracing/jaeger@v$JAEGER_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
    [[ -f "$src/go.mod" ]] || die "could not download github.com/jaegertracing/jaeger@v$JAEGER_VERSION from the Go module proxy"
    (cd "$src" && go build -o "$1/jaeger" ./cmd/jaeger)
}

cmd_build() { go_tool_build jaeger "v$JAEGER_VERSION" "$BIN" compile_jaeger; }

# Only what the tests need: the OTLP receiver, in-memory storage and the query
# API. Every listener is on 127.0.0.1 and a port of the caller's; the
# Collector's own metrics (by default a Prometheus page on :8888) are off.
cmd_config() {
    local otlp_grpc="$1" otlp_http="$2" query_http="$3" query_grpc="$4"
    cat <<EOF
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: info

extensions:
  jaeger_storage:
    backends:
      memory_store:
        memory:
          max_traces: 100000
  jaeger_query:
    storage:
      traces: memory_store
    enable_tracing: false
    http:
      endpoint: 127.0.0.1:$query_http
    grpc:
      endpoint: 127.0.0.1:$query_grpc

receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:$otlp_grpc
      http:
        endpoint: 127.0.0.1:$otlp_http

processors:
  batch:
    timeout: 100ms

exporters:
  jaeger_storage_exporter:
    trace_storage: memory_store
EOF
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

cmd_start() {
    local dir
    dir="$(mkdir -p "$1" && cd "$1" && pwd)"
    [[ ! -s "$dir/pid" ]] || die "Jaeger already runs in $dir; stop it first"
    local jaeger otlp_grpc otlp_http query_http query_grpc
    jaeger="$(cmd_build)"
    otlp_grpc="$(free_port)"
    otlp_http="$(free_port)"
    query_http="$(free_port)"
    query_grpc="$(free_port)"
    cmd_config "$otlp_grpc" "$otlp_http" "$query_http" "$query_grpc" >"$dir/jaeger.yaml"
    "$jaeger" --config "$dir/jaeger.yaml" >>"$dir/jaeger.log" 2>&1 &
    echo $! >"$dir/pid"
    cat >"$dir/ports" <<EOF
OTLP_GRPC=http://127.0.0.1:$otlp_grpc
OTLP_HTTP=http://127.0.0.1:$otlp_http
QUERY=http://127.0.0.1:$query_http
EOF
    local deadline=$((SECONDS + 30))
    until curl -sf "http://127.0.0.1:$query_http/api/services" >/dev/null 2>&1; do
        if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null || ((SECONDS >= deadline)); then
            cmd_stop "$dir"
            die "Jaeger did not come up; see $dir/jaeger.log"
        fi
        sleep 0.1
    done
    log "ready; curl http://127.0.0.1:$query_http/api/services"
    cat "$dir/ports"
}

cmd_stop() {
    local dir="$1" pid
    [[ -s "$dir/pid" ]] || return 0
    pid="$(cat "$dir/pid")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    : >"$dir/pid"
}

case "${1:-}" in
build) cmd_build ;;
config) [[ -n "${5:-}" ]] || die "usage: $0 config OTLP_GRPC OTLP_HTTP QUERY_HTTP QUERY_GRPC"; cmd_config "$2" "$3" "$4" "$5" ;;
start) [[ -n "${2:-}" ]] || die "usage: $0 start DIR"; cmd_start "$2" ;;
stop) [[ -n "${2:-}" ]] || die "usage: $0 stop DIR"; cmd_stop "$2" ;;
*) die "usage: $0 build | config OTLP_GRPC OTLP_HTTP QUERY_HTTP QUERY_GRPC | start DIR | stop DIR" ;;
esac
