#!/bin/sh
# Makes, once, a Python virtual environment with the official client
# libraries the tests drive and check autoglm with (pinned, from PyPI): the
# openai client, the Grafana Foundation SDK's dashboard model, and the Nacos
# client 3.x (gRPC); beside it, in nacos-2.0.9/, the Nacos client 2.0.9's
# wheel unpacked (its `nacos` package speaks HTTP v1; both versions cannot
# share one environment). Prints the path of its python. Kept in a cache
# outside the repository: $AUTOGLM_PYENV, else ~/.cache/autoglm/pyenv.
set -eu
OPENAI_VERSION=3.57.0
# The SDK's PyPI versions carry an epoch: this is its 10.1.0 (for Grafana 10.1).
GRAFANA_SDK_VERSION='1769699998!10.1.0'
NACOS_VERSION=3.2.0
NACOS_HTTP_VERSION=2.0.9
root="${AUTOGLM_PYENV:-$HOME/.cache/autoglm/pyenv}"
dir="$root/openai-$OPENAI_VERSION-grafana-10.1.0-nacos-$NACOS_VERSION-$NACOS_HTTP_VERSION"
if [ ! -f "$dir/.complete" ]; then
    mkdir -p "$root"
    echo "python-env: creating $dir with openai==$OPENAI_VERSION, grafana-foundation-sdk==$GRAFANA_SDK_VERSION, nacos-sdk-python==$NACOS_VERSION and $NACOS_HTTP_VERSION" >&2
    rm -rf "$dir"
    python3 -m venv "$dir" >&2
    "$dir/bin/pip" install --disable-pip-version-check --progress-bar on \
        "openai==$OPENAI_VERSION" "grafana-foundation-sdk==$GRAFANA_SDK_VERSION" \
        "nacos-sdk-python==$NACOS_VERSION" >&2
    "$dir/bin/pip" download --disable-pip-version-check --no-deps \
        -d "$dir/wheels" "nacos-sdk-python==$NACOS_HTTP_VERSION" >&2
    "$dir/bin/python" -m zipfile -e "$dir/wheels/nacos_sdk_python-$NACOS_HTTP_VERSION-py3-none-any.whl" \
        "$dir/nacos-$NACOS_HTTP_VERSION" >&2
    touch "$dir/.complete"
fi
echo "$dir/bin/python"
