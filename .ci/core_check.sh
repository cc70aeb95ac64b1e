#!/usr/bin/env bash
# The core install: a venv with lowbit and its core dependencies only (no extras), then .ci/core_smoke.py
# (import, every command's --help, reproduce --list, quantizers, quantize_, fit, INQ, summary, packed files, and
# the one-line "pip install 'lowbit[deploy]'" error of ONNX export). torch comes from constraints.txt (CPU build).
# Usage: .ci/core_check.sh [--fresh]
# The venv ($LOWBIT_CORE_VENV, default /tmp/lowbit-core-venv) is kept between runs (removing torch's files takes
# a minute on a busy disk); lowbit is reinstalled every time, and the run fails if any optional package is in it.
# --fresh removes it first.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PY:-python3}
VENV=${LOWBIT_CORE_VENV:-/tmp/lowbit-core-venv}
if [ "${1:-}" = "--fresh" ]; then rm -rf "$VENV"; fi
TMP=$(mktemp -d /tmp/lowbit-core-work.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
t0=$SECONDS
# a venv without its own pip (fast); the outer pip installs into it (pip >= 22.3: --python)
test -x "$VENV/bin/python" || "$PY" -m venv --without-pip "$VENV"
# a regular install from a clean copy of the sources: no editable paths, no stale build/ folder of the tree
mkdir -p "$TMP/src" "$TMP/work"
cp pyproject.toml README.md constraints.txt "$TMP/src/"
cp -r src "$TMP/src/src"
find "$TMP/src" -name __pycache__ -prune -exec rm -rf {} +
pip() { "$PY" -m pip --python "$VENV/bin/python" "$@" 2>&1 | { grep -v "^WARNING: Location .* is ignored" || true; }; }
pip uninstall -q -y lowbit
pip install -q --no-compile -c constraints.txt "$TMP/src"
echo "core install: $((SECONDS - t0)) s"
for pkg in scipy onnx onnxruntime librosa soundfile sklearn ray tensorboard; do
  if "$VENV/bin/python" -c "import $pkg" 2>/dev/null; then echo "core venv has $pkg (an extra's package; if left from an older run: --fresh)" >&2; exit 1; fi
done
cd "$TMP/work"   # away from the source tree: the installed package is what runs
OMP_NUM_THREADS=1 MPLBACKEND=Agg "$VENV/bin/python" "$ROOT/.ci/core_smoke.py" "$TMP/work"
"$VENV/bin/lowbit" --version
echo "core check: $((SECONDS - t0)) s"
