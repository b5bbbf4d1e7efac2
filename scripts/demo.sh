#!/usr/bin/env bash
# The main job, end to end through the service on the embedded defaults (a SQLite file under
# .nas/, trials on the local Ray instance the service starts): start `nas serve`, create an API key, submit an
# example spec, watch its live progress, print the best trials, stop the service.
#   usage: scripts/demo.sh [SPEC]     (default examples/mnist1d-random.yaml)
set -euo pipefail
cd "$(dirname "$0")/.."
SPEC=${1:-examples/mnist1d-random.yaml}
NAS=.venv/bin/nas
export NAS_DATA_DIR=${NAS_DATA_DIR:-.nas}
mkdir -p "$NAS_DATA_DIR"
PORT=${NAS_PORT:-$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
export NAS_SERVER="http://127.0.0.1:$PORT"

$NAS serve --port "$PORT" >"$NAS_DATA_DIR/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  if .venv/bin/python -c "import httpx,sys; sys.exit(httpx.get('$NAS_SERVER/healthz').status_code != 200)" 2>/dev/null; then
    break
  fi
  kill -0 $SERVER 2>/dev/null || { cat "$NAS_DATA_DIR/serve.log"; exit 1; }
  sleep 0.5
done
echo "nas serve: $NAS_SERVER (database and artifacts under $NAS_DATA_DIR/, log $NAS_DATA_DIR/serve.log)"

NAS_API_KEY=$($NAS keys create --name "demo-$(date +%Y%m%d-%H%M%S)" 2>/dev/null)
export NAS_API_KEY
echo "\$ nas submit $SPEC"
JOB=$($NAS submit "$SPEC" | tee /dev/stderr | sed -n 's/^job \([0-9][0-9]*\) .*/\1/p')
echo "\$ nas watch $JOB"
$NAS watch "$JOB"
echo "\$ nas trials $JOB --top 5"
$NAS trials "$JOB" --top 5
