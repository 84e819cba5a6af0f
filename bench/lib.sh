# bench/lib.sh: helpers the benchmark scripts share. Source it; it defines
# functions only.

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

# A port nothing listens on (there is a small race until the server binds it).
free_port() {
    local port
    while :; do
        port=$((20000 + RANDOM % 40000))
        [[ -z $(ss -Htln "sport = :$port") ]] && { echo "$port"; return; }
    done
}

wait_http() { # URL [CURL_ARGS...]: wait up to 30 s for a 2xx
    local url=$1
    shift
    for _ in $(seq 300); do
        curl -fsS -o /dev/null "$@" "$url" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# The median of the numbers on stdin, one a line.
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# Builds target/release/autoglm unless AUTOGLM_BIN names one; sets AUTOGLM_BIN.
autoglm_bin() {
    if [[ -z ${AUTOGLM_BIN:-} ]]; then
        log "building autoglm (release; a no-op when it is up to date)"
        (cd "$ROOT" && cargo build --release -p autoglm)
        AUTOGLM_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/autoglm
    fi
    [[ -x $AUTOGLM_BIN ]] || die "no executable at AUTOGLM_BIN=$AUTOGLM_BIN"
}

# wrk output file → "req/s p50_ms p99_ms non2xx socket_errors requests"
parse_wrk() {
    awk '
        function ms(v) {
            if (v ~ /us$/) return v / 1000
            if (v ~ /ms$/) return v + 0
            if (v ~ /m$/) return v * 60000
            if (v ~ /s$/) return v * 1000
            return v
        }
        /requests in/          { requests = $1 }
        /^ +50%/               { p50 = ms($2) }
        /^ +99%/               { p99 = ms($2) }
        /^Requests\/sec:/      { rps = $2 }
        /Non-2xx or 3xx/       { non2xx = $NF }
        /^ +Socket errors:/    { gsub(/,/, ""); errors = $4 + $6 + $8 + $10 }
        END { printf "%.0f %.3f %.3f %d %d %d\n", rps, p50, p99, non2xx, errors, requests }
    ' "$1"
}

# Makes WORK, a fresh temporary folder named after $1, and on exit stops the
# processes whose pids are in the variables named by the other arguments (in
# that order), then removes WORK unless KEEP=1 or the script failed.
bench_workdir() { # NAME PID_VARIABLE...
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
    shift
    BENCH_STOP=("$@")
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

bench_cleanup() {
    local rc=$? name pid
    for name in "${BENCH_STOP[@]}"; do
        pid=${!name:-}
        # A process that ends with a signal's status (143) must not stop the cleanup.
        [[ -n $pid ]] && kill "$pid" 2>/dev/null && { wait "$pid" 2>/dev/null || true; }
    done
    if [[ ${KEEP:-0} == 1 || $rc != 0 ]]; then
        log "raw outputs and logs kept in $WORK"
    else
        rm -rf "$WORK"
    fi
    return "$rc"
}
