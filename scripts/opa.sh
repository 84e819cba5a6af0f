#!/usr/bin/env bash
# OPA, the Open Policy Agent, as the oracle that the tests compare autoglm's
# Rego evaluation (regorus) against. Built from the Go module proxy:
# github.com/open-policy-agent/opa at v1.22.4.
#
#   scripts/opa.sh build    build (or reuse) the pinned binary; prints its path
#
# The binary is cached under $AUTOGLM_CACHE/opa/opa-<version>/bin (default
# ~/.cache/autoglm), so only the first build pays for compiling it; a lock
# beside that folder keeps test processes that start together from building
# it twice. The tests (crates/autoglm-policy/tests/opa.rs) run `opa test` and
# `opa eval` with it themselves.
set -euo pipefail

OPA_VERSION=1.22.4
CACHE="${AUTOGLM_CACHE:-$HOME/.cache/autoglm}/opa/opa-$OPA_VERSION"
BIN="$CACHE/bin"

die() {
    echo "opa: $*" >&2
    exit 1
}

# shellcheck source=scripts/go-tool.sh
source "$(dirname "${BASH_SOURCE[0]}")/go-tool.sh"

compile_opa() { GOBIN="$1" go install "github.com/open-policy-agent/opa@v$OPA_VERSION"; }

case "${1:-}" in
build) go_tool_build opa "v$OPA_VERSION" "$BIN" compile_opa ;;
*) die "usage: scripts/opa.sh build" ;;
esac
