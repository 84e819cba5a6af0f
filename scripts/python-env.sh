#!/bin/sh
# Makes, once, a Python virtual environment with the official client
# libraries the tests drive autoglm with (pinned, from PyPI), and prints the
# path of its python. Kept in a cache outside the repository:
# $AUTOGLM_PYENV, else ~/.cache/autoglm/pyenv.
set -eu
OPENAI_VERSION=3.57.0
root="${AUTOGLM_PYENV:-$HOME/.cache/autoglm/pyenv}"
dir="$root/openai-$OPENAI_VERSION"
if [ ! -f "$dir/.complete" ]; then
    mkdir -p "$root"
    echo "python-env: creating $dir with openai==$OPENAI_VERSION" >&2
    rm -rf "$dir"
    python3 -m venv "$dir" >&2
    "$dir/bin/pip" install --disable-pip-version-check --progress-bar on "openai==$OPENAI_VERSION" >&2
    touch "$dir/.complete"
fi
echo "$dir/bin/python"
