#!/usr/bin/env bash
# Runs promtool (Prometheus v3.16, Go module github.com/prometheus/prometheus v0.316.0, pinned by
# hack/promtool/go.mod), building it once into a cached directory, like scripts/helm.sh.
#
#   scripts/promtool.sh ARGS...     run promtool with ARGS (e.g. `check rules rules.yaml`)
#   scripts/promtool.sh --path      print the path of the promtool binary (building it if missing)
#
# Environment:
#   MCE_CACHE_DIR  binary cache (default: ${XDG_CACHE_HOME:-~/.cache}/multicloud-ecs)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

PROMETHEUS_MODULE_VERSION=v0.316.0
CACHE_DIR=${MCE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/multicloud-ecs}
BIN_DIR=$CACHE_DIR/promtool-$PROMETHEUS_MODULE_VERSION
PROMTOOL=$BIN_DIR/promtool

if [[ ! -x $PROMTOOL ]]; then
  command -v go >/dev/null || { echo "[promtool] error: go is required to build promtool" >&2; exit 1; }
  echo "[promtool] building promtool ($PROMETHEUS_MODULE_VERSION) into $BIN_DIR (first time: a few minutes)..." >&2
  mkdir -p "$BIN_DIR"
  # A private output, then an atomic rename: concurrent callers never see a half-written binary.
  tmp=$(mktemp -d "$BIN_DIR/.build.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  (cd "$ROOT/hack/promtool" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" \
    -o "$tmp/promtool" github.com/prometheus/prometheus/cmd/promtool)
  mv -f "$tmp/promtool" "$PROMTOOL"
  rm -rf "$tmp"
  trap - EXIT
  echo "[promtool] built $PROMTOOL" >&2
fi

if [[ ${1:-} == --path ]]; then
  echo "$PROMTOOL"
  exit 0
fi
exec "$PROMTOOL" "$@"
