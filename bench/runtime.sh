#!/usr/bin/env bash
# bench/runtime.sh: the built-in model runtime against llama.cpp's own server,
# on the same GGUF file, the same threads and the same client, in one run.
#
# What it does:
#   1. builds target/release/autoglm (skipped when AUTOGLM_BIN is set);
#   2. finds or builds the anchor, llama.cpp's `llama-server`, from the
#      llama.cpp sources vendored in the llama-cpp-python sdist on PyPI
#      (pinned version and sha256), with llama.cpp's default CPU flags
#      (GGML_NATIVE): the build lands in $CACHE/llama-server-$LCP_VERSION and
#      is reused;
#   3. fetches the test models (autoglm fetch-models; a no-op when cached);
#   4. for each server in turn (the anchor first, then autoglm), RUNS times:
#      start it, time start-to-ready, then measure with bench/runtime_load.py:
#        single      one streamed greedy chat at a time, max_tokens 128:
#                    time to first token and decode tokens/s (median of 5);
#        concurrent  8 streamed chats at once: aggregate completion tokens/s;
#      both servers get 8 sequences of 2,048 tokens and THREADS threads;
#   5. embeddings (all-MiniLM-L6-v2, no llama.cpp anchor: the comparison is
#      autoglm with dynamic batching off, --max-batch 1, against on):
#      one client, then 16 concurrent clients, one sentence per request;
#   6. prints a markdown table of medians over the RUNS rounds and the ratio
#      autoglm / llama-server.
#
# Usage:   bench/runtime.sh
# Knobs (environment): AUTOGLM_BIN=path  LLAMA_SERVER=path  RUNS=3
#                      THREADS=$(nproc)  KEEP=1 (keep the raw results)
# Needs: cmake, g++, python3 with pip, curl, jq, bc (`cargo xtask deps bench` installs them)
set -euo pipefail

RUNS=${RUNS:-3}
THREADS=${THREADS:-$(nproc)}
LCP_VERSION=0.3.36
LCP_SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${AUTOGLM_CACHE:-$HOME/.cache/autoglm}
MODELS=$CACHE/models
GGUF=$MODELS/smollm2-135m-instruct-q4_1/SmolLM2-135M-Instruct.Q4_1.gguf
LOAD=$ROOT/bench/runtime_load.py

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

for tool in cmake g++ python3 curl jq bc ss; do
    command -v "$tool" >/dev/null || die "$tool is missing (cargo xtask deps bench installs it)"
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/autoglm-runtime-bench.XXXXXX")
SERVER_PID=
cleanup() {
    [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    if [[ -n ${KEEP:-} ]]; then log "raw results kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- autoglm ----------------------------------------------------------------
autoglm_bin

# --- the anchor: llama-server from llama-cpp-python's vendored llama.cpp ----
if [[ -z ${LLAMA_SERVER:-} ]]; then
    LLAMA_SERVER=$CACHE/llama-server-$LCP_VERSION/bin/llama-server
    if [[ ! -x $LLAMA_SERVER ]]; then
        src=$WORK/llama-src
        mkdir -p "$src"
        log "downloading llama-cpp-python $LCP_VERSION (sdist) for its llama.cpp sources"
        python3 -m pip download --no-deps --no-binary :all: --progress-bar on \
            -d "$src" "llama-cpp-python==$LCP_VERSION" >&2
        sdist=$src/llama_cpp_python-$LCP_VERSION.tar.gz
        echo "$LCP_SHA256  $sdist" | sha256sum -c --quiet - || die "sha256 mismatch for $sdist"
        tar -xzf "$sdist" -C "$src"
        llama=$src/llama_cpp_python-$LCP_VERSION/vendor/llama.cpp
        log "building llama-server (cmake, Release, native CPU flags; about 6 min on 2 cores)"
        cmake -S "$llama" -B "$src/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
            -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
            -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF >"$WORK/cmake.log" 2>&1 ||
            { tail -20 "$WORK/cmake.log" >&2; die "cmake configure failed"; }
        cmake --build "$src/build" --target llama-server -j "$(nproc)" 2>&1 |
            grep --line-buffered -E '^\[ *[0-9]+%\]' | awk 'NR % 10 == 0 { print; fflush() }' >&2
        mkdir -p "$(dirname "$LLAMA_SERVER")"
        install -m 0755 "$src/build/bin/llama-server" "$LLAMA_SERVER.tmp"
        mv "$LLAMA_SERVER.tmp" "$LLAMA_SERVER"
    fi
fi

# --- models -----------------------------------------------------------------
"$AUTOGLM_BIN" fetch-models >&2

CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
log "machine: $(nproc) CPUs, $CPU_MODEL; $(uname -sr); load average $(cut -d' ' -f1-3 /proc/loadavg)"
log "anchor: $("$LLAMA_SERVER" --version 2>&1 | head -1) (llama-cpp-python $LCP_VERSION sources)"

# start NAME READY_PATH COMMAND...: starts a server, waits for READY_PATH to
# answer 200, appends the start-to-ready seconds to $WORK/NAME.ready
start() {
    local name=$1 ready=$2
    shift 2
    local began
    began=$(date +%s.%N)
    "$@" >"$WORK/$name.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1200); do
        if curl -fsS -o /dev/null "$BASE$ready" 2>/dev/null; then
            echo "$(date +%s.%N) - $began" | bc >>"$WORK/$name.ready"
            return 0
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.05
    done
    tail -20 "$WORK/$name.log" >&2
    die "$name did not become ready"
}

stop() {
    kill "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}

measure_chat() { # NAME MODEL
    python3 "$LOAD" single --base "$BASE" --model "$2" --runs 5 >>"$WORK/$1.jsonl"
    python3 "$LOAD" concurrent --base "$BASE" --model "$2" --clients 8 --runs 1 >>"$WORK/$1.jsonl"
}

for round in $(seq "$RUNS"); do
    PORT=$(free_port)
    BASE=http://127.0.0.1:$PORT
    log "round $round/$RUNS: llama-server"
    start llama-server /health "$LLAMA_SERVER" -m "$GGUF" --host 127.0.0.1 --port "$PORT" \
        -t "$THREADS" -np 8 -c 16384 --no-webui --alias smollm2
    measure_chat llama-server smollm2
    stop

    PORT=$(free_port)
    BASE=http://127.0.0.1:$PORT
    log "round $round/$RUNS: autoglm runtime"
    start autoglm /readyz "$AUTOGLM_BIN" runtime --model "$GGUF" --name smollm2 \
        --addr "127.0.0.1:$PORT" --threads "$THREADS" --max-sequences 8 --context 2048
    measure_chat autoglm smollm2
    stop
done

MINILM=$MODELS/all-minilm-l6-v2
for batch in 1 32; do
    PORT=$(free_port)
    BASE=http://127.0.0.1:$PORT
    log "embeddings: autoglm runtime --max-batch $batch"
    start "embed-b$batch" /readyz "$AUTOGLM_BIN" runtime --model "$MINILM" --name minilm \
        --addr "127.0.0.1:$PORT" --max-batch "$batch"
    for clients in 1 16; do
        for _ in $(seq "$RUNS"); do
            python3 "$LOAD" embeddings --base "$BASE" --model minilm --clients "$clients" \
                --seconds 5 >>"$WORK/embed-b$batch.jsonl"
        done
    done
    stop
done

# --- report -----------------------------------------------------------------
pick() { jq -r "select(.measure == \"$2\"$3) | .$4" "$WORK/$1.jsonl" | median; }
row() { # LABEL ANCHOR AUTOGLM UNIT
    printf '| %s | %.1f %s | %.1f %s | %.2fx |\n' "$1" "$2" "$4" "$3" "$4" "$(echo "$3 / $2" | bc -l)"
}

echo
echo "| measure ($RUNS rounds, medians) | llama-server | autoglm runtime | autoglm / llama-server |"
echo "|---|---|---|---|"
row "single stream: decode" "$(pick llama-server single '' decode_tok_s)" "$(pick autoglm single '' decode_tok_s)" "tok/s"
a=$(pick llama-server single '' ttft_ms)
b=$(pick autoglm single '' ttft_ms)
printf '| single stream: time to first token | %.1f ms | %.1f ms | %.2fx (lower is better; llama-server / autoglm) |\n' "$a" "$b" "$(echo "$a / $b" | bc -l)"
row "8 concurrent chats: aggregate" "$(pick llama-server concurrent '' aggregate_tok_s)" "$(pick autoglm concurrent '' aggregate_tok_s)" "tok/s"
a=$(median <"$WORK/llama-server.ready")
b=$(median <"$WORK/autoglm.ready")
printf '| start to ready | %.2f s | %.2f s | %.2fx (lower is better; llama-server / autoglm) |\n' "$a" "$b" "$(echo "$a / $b" | bc -l)"
echo
echo "| embeddings/s (all-MiniLM-L6-v2, 1 sentence per request) | 1 client | 16 clients |"
echo "|---|---|---|"
for batch in 1 32; do
    printf '| autoglm --max-batch %s | %.1f | %.1f |\n' "$batch" \
        "$(pick "embed-b$batch" embeddings ' and .clients == 1' per_s)" \
        "$(pick "embed-b$batch" embeddings ' and .clients == 16' per_s)"
done
printf '| start to ready (embeddings) | %.2f s | |\n' "$(cat "$WORK"/embed-b*.ready | median)"
