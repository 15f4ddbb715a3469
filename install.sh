#!/usr/bin/env bash
# humus installer. Idempotent: every step checks before it acts and says what it did.
#   ./install.sh                 development machine: .venv with .[cpu,train,dev]
#   ./install.sh --dry-run       print the plan, change nothing
# Device mode (Jetson, detected by /etc/nv_tegra_release) is added by the appliance work.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${HUMUS_VENV:-$HERE/.venv}"
PYTHON="${PYTHON:-python3}"
EXTRAS="${HUMUS_EXTRAS:-cpu,train,dev}"
DRY_RUN=0

for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

step() { printf '==> %s\n' "$*"; }
run() { if [ "$DRY_RUN" = 1 ]; then printf '    would run: %s\n' "$*"; else "$@"; fi; }

step_python() {
  step "checking Python ($PYTHON)"
  "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 10), sys.version' \
    || { echo "install.sh: Python 3.10+ is required" >&2; exit 1; }
}

step_venv() {
  if [ -x "$VENV/bin/python" ]; then
    step "virtual environment exists: $VENV"
  else
    step "creating virtual environment: $VENV"
    run "$PYTHON" -m venv "$VENV"
  fi
}

step_packages() {
  step "installing humus with extras [$EXTRAS] into $VENV"
  run "$VENV/bin/python" -m pip install --quiet --upgrade pip setuptools wheel
  run "$VENV/bin/python" -m pip install --quiet -e "$HERE[$EXTRAS]"
}

step_check() {
  step "checking the install"
  run "$VENV/bin/humus" --version
}

step_python
step_venv
step_packages
step_check
step "done. Next: $VENV/bin/humus run --sim --record preview.mp4"
