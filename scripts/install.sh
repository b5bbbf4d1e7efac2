#!/usr/bin/env bash
# Install the project and its dev tools into ./.venv (idempotent).
# On a machine without an NVIDIA GPU, torch's CPU build is installed first so that no
# multi-GB CUDA build is downloaded; the project's own `torch>=2.2` is then already met.
set -euo pipefail
cd "$(dirname "$0")/.."
# With --browser (make test): the dashboard's browser tests (tests/api/dashboard) drive
# Debian's chromium through Playwright; nothing is downloaded at test time, so the browser is
# installed here. Running the product (make run) needs no browser.
BROWSER=0
[ "${1:-}" = "--browser" ] && BROWSER=1
CHROMIUM=${NAS_TEST_CHROMIUM:-/usr/bin/chromium}
if [ "$BROWSER" = 1 ] && [ ! -x "$CHROMIUM" ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "install.sh: $CHROMIUM is missing and there is no apt-get to install Debian's chromium;" \
      "install a Chromium and set NAS_TEST_CHROMIUM to it" >&2
    exit 1
  fi
  echo "install.sh: installing Debian's chromium (for the dashboard's browser tests)"
  if ! { DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends chromium \
         || { DEBIAN_FRONTEND=noninteractive $SUDO apt-get update \
              && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends chromium; }; }; then
    echo "install.sh: could not install chromium with apt-get (root or passwordless sudo needed)" >&2
    exit 1
  fi
  [ -x "$CHROMIUM" ] || { echo "install.sh: chromium installed but $CHROMIUM is missing" >&2; exit 1; }
fi
PY=${PYTHON:-python3}
TORCH_VERSION=${NAS_TORCH_VERSION:-2.13.0}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
VPIP=".venv/bin/python -m pip"
$VPIP install --quiet --upgrade pip >/dev/null 2>&1 || true
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    $VPIP install "torch==${TORCH_VERSION}"
  else
    # A local wheel (pip's find-links) first; otherwise PyTorch's CPU index.
    $VPIP install "torch==${TORCH_VERSION}+cpu" 2>/dev/null \
      || $VPIP install "torch==${TORCH_VERSION}" --index-url https://download.pytorch.org/whl/cpu
  fi
fi
$VPIP install --quiet -e ".[dev]"
# The project's own modules compiled once, here: Python reads these files even where it may
# not write them (PYTHONDONTWRITEBYTECODE=1), so that each `nas` command, server and Ray
# worker process does not compile some 30,000 lines again (about 0.8 s of a core each).
.venv/bin/python -m compileall -q -j 0 nas api workers controllers >/dev/null
