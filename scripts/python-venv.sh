#!/usr/bin/env bash
# Prints the path of a Python virtual environment holding tests/python/requirements.txt,
# creating it on first use. It lives in the cache directory, keyed by the requirements' hash,
# so the system interpreter is never modified and a changed requirements file gets a fresh one.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REQUIREMENTS=$ROOT/tests/python/requirements.txt
CACHE_DIR=${MCE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/multicloud-ecs}
VENV=$CACHE_DIR/venv-$(sha256sum "$REQUIREMENTS" | cut -c1-12)

# The marker is written last, so an interrupted install is redone rather than trusted.
if [[ ! -f $VENV/.installed ]]; then
  printf '[python-venv] creating %s\n' "$VENV" >&2
  rm -rf "$VENV"
  mkdir -p "$CACHE_DIR"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS" >&2
  touch "$VENV/.installed"
fi
printf '%s\n' "$VENV"
