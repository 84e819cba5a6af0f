# scripts/go-tool.sh: building a Go tool once into a versioned cache, shared
# by the scripts that build one (jaeger.sh, opa.sh). Source it; it defines
# functions only.
#
#   go_tool_build NAME VERSION BIN COMPILE
#
# prints BIN/NAME, building it first when it is not there: COMPILE is called
# with a fresh folder to put NAME into, and its result replaces BIN only when
# it succeeded. A lock beside BIN keeps test processes that start together
# from building it twice.

go_tool_build() {
    local name=$1 version=$2 bin=$3 compile=$4
    if [[ -x "$bin/$name" ]]; then
        echo "$bin/$name"
        return
    fi
    command -v go >/dev/null || {
        echo "$name: Go is needed to build $name, as for scripts/k8s.sh (go on PATH, the Go module proxy reachable)" >&2
        exit 1
    }
    mkdir -p "$(dirname "$bin")"
    exec 9>"$bin.lock"
    if ! flock -n 9; then
        echo "$name: waiting for another process building $name" >&2
        flock 9
    fi
    if [[ -x "$bin/$name" ]]; then
        echo "$bin/$name"
        return
    fi
    rm -rf "$bin.partial"
    mkdir -p "$bin.partial"
    echo "$name: compiling $name $version from the Go module proxy (the first build takes minutes)" >&2
    local started=$SECONDS
    "$compile" "$bin.partial" || {
        echo "$name: could not build $name $version (see above)" >&2
        exit 1
    }
    rm -rf "$bin"
    mv "$bin.partial" "$bin"
    echo "$name: built into $bin in $((SECONDS - started))s" >&2
    echo "$bin/$name"
}
