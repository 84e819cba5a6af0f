#!/bin/sh
# Makes, once, a Python virtual environment with the official client
# libraries the tests drive and check autoglm with (pinned, from PyPI): the
# openai client, and the Grafana Foundation SDK's dashboard model. Prints the
# path of its python. Kept in a cache outside the repository:
# $AUTOGLM_PYENV, else ~/.cache/autoglm/pyenv.
set -eu
OPENAI_VERSION=3.57.0
# The SDK's PyPI versions carry an epoch: this is its 10.1.0 (for Grafana 10.1).
GRAFANA_SDK_VERSION='1769699998!10.1.0'
root="${AUTOGLM_PYENV:-$HOME/.cache/autoglm/pyenv}"
dir="$root/openai-$OPENAI_VERSION-grafana-10.1.0"
if [ ! -f "$dir/.complete" ]; then
    mkdir -p "$root"
    echo "python-env: creating $dir with openai==$OPENAI_VERSION, grafana-foundation-sdk==$GRAFANA_SDK_VERSION" >&2
    rm -rf "$dir"
    python3 -m venv "$dir" >&2
    "$dir/bin/pip" install --disable-pip-version-check --progress-bar on \
        "openai==$OPENAI_VERSION" "grafana-foundation-sdk==$GRAFANA_SDK_VERSION" >&2
    touch "$dir/.complete"
fi
echo "$dir/bin/python"
