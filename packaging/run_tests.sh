#!/usr/bin/env bash
# Install what is missing (Xvfb included), then check the import contract and run the whole
# test suite. GUI tests open real windows on Xvfb (pytest-xvfb starts it). Extra arguments go
# to pytest.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/packaging/setup.sh" test
VENV=${HAND_STUDIO_VENV:-$ROOT/.venv}
cd "$ROOT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
unset QT_QPA_PLATFORM  # VisPy needs a real GL context on Xvfb, not Qt's offscreen platform
"$VENV/bin/lint-imports"
exec "$VENV/bin/python" -m pytest "$@"
