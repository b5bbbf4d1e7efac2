#!/usr/bin/env bash
# The main job, end to end through the service on the embedded defaults (a SQLite file under
# .nas/, trials on the local Ray instance the service starts): start `nas serve`, create an API key, submit an
# example spec, watch its live progress, show the best architecture and trials, stop the
# service and say what to do next (where the results are, how to export them).
#   usage: scripts/demo.sh [SPEC]     (default examples/mnist1d-random.yaml)
# Its output can be redirected to a file (scripts/demo.sh >demo.log 2>&1).
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
# Not 'tee /dev/stderr': that reopens a redirected log file and truncates it.
SUBMITTED=$($NAS submit "$SPEC")
echo "$SUBMITTED"
JOB=$(echo "$SUBMITTED" | sed -n 's/^job \([0-9][0-9]*\) .*/\1/p')
echo "\$ nas watch $JOB"
STATUS=0
$NAS watch "$JOB" || STATUS=$?
echo "\$ nas show $JOB"
$NAS show "$JOB"
echo "\$ nas trials $JOB --top 5"
$NAS trials "$JOB" --top 5

cat <<EOF

Job $JOB has ended. Its records (spec, trials, summary) are in the database $NAS_DATA_DIR/nas.db,
its files (retrained weights, exports) under $NAS_DATA_DIR/artifacts/jobs/$JOB/, the service's
log in $NAS_DATA_DIR/serve.log. The demo stops its server now; to look further or export:
  export NAS_DATA_DIR=$NAS_DATA_DIR
  .venv/bin/nas serve &                                       # the same database
  export NAS_API_KEY=\$(.venv/bin/nas keys create --name me)
  .venv/bin/nas show $JOB                                       # best architecture, test accuracy
  .venv/bin/nas export $JOB --format pytorch -o model.zip       # model.py (+ weights.pt)
  .venv/bin/nas export $JOB --format model-card -o card.md
EOF
exit "$STATUS"
