#!/usr/bin/env bash
# Install what is missing for Hand Studio, and nothing else: Debian packages (GL, Qt's xcb
# libraries; Xvfb for tests), a virtual environment in .venv, torch (the local CPU wheel: plain
# `pip install torch` would pull GBs of CUDA packages) and the project, editable.
# Idempotent: a second run with nothing changed only checks. Messages go to stderr, so
# `run_app.sh info --json` stays parseable.   usage: setup.sh [app|test]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODE=${1:-app}
VENV=${HAND_STUDIO_VENV:-$ROOT/.venv}
case "$MODE" in app|test) ;; *) echo "setup.sh: mode must be app or test; got '$MODE'" >&2; exit 2;; esac

APT_APP=(libgl1 libegl1 libgl1-mesa-dri libglx-mesa0 libegl-mesa0 libxkbcommon-x11-0 libxcb-cursor0
         libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-randr0 libxcb-render-util0 libxcb-shape0
         libxcb-xfixes0 libxcb-xkb1 libxcb-sync1 libfontconfig1 libdbus-1-3 libglib2.0-0)
APT_TEST=(xvfb xauth blender python3-numpy)  # Blender 3.4 imports our FBX/BVH/glTF in tests
want=("${APT_APP[@]}")
[ "$MODE" = test ] && want+=("${APT_TEST[@]}")
python3 -m venv --help >/dev/null 2>&1 || want+=(python3-venv)

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV" >&2
  python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
stamp="$VENV/.hand-studio-$MODE"
want_stamp=$(cat "$ROOT/pyproject.toml" <(echo "$MODE") | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want_stamp" ]; then
  export PIP_DISABLE_PIP_VERSION_CHECK=1
  if ! "$PY" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null; then
    echo "setup: installing torch==2.13.0 (CPU)" >&2
    "$PY" -m pip install -q "torch==2.13.0"
  fi
  extra=""; [ "$MODE" = test ] && extra="[test]"
  echo "setup: installing hand-studio$extra (editable)" >&2
  "$PY" -m pip install -q -e "$ROOT$extra"
  echo "$want_stamp" > "$stamp"
fi
