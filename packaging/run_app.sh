#!/usr/bin/env bash
# Install what is missing, then run Hand Studio. No arguments opens the app; on a machine
# without a screen pass a command instead, e.g. `run_app.sh info --json` or
# `run_app.sh generate "the right hand waves" --out wave.npz`.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/packaging/setup.sh" app
exec "${HAND_STUDIO_VENV:-$ROOT/.venv}/bin/hand-studio" "$@"
