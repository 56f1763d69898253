#!/usr/bin/env bash
# Runs Helm (v3.22.0), building it once from its Go module into a cached directory.
#
#   scripts/helm.sh ARGS...     run helm with ARGS (e.g. `lint charts/multicloud-ecs`)
#   scripts/helm.sh --path      print the path of the helm binary (building it if missing)
#
# Helm built with `go install` has no version ldflags and assumes Kubernetes v1.20 unless told:
# pass `--kube-version` to `template`/`lint` (KUBE_VERSION below matches the test control plane).
#
# Environment:
#   MCE_CACHE_DIR  binary cache (default: ${XDG_CACHE_HOME:-~/.cache}/multicloud-ecs)
set -euo pipefail

HELM_VERSION=v3.22.0
CACHE_DIR=${MCE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/multicloud-ecs}
BIN_DIR=$CACHE_DIR/helm-$HELM_VERSION
HELM=$BIN_DIR/helm

if [[ ! -x $HELM ]]; then
  command -v go >/dev/null || { echo "[helm] error: go is required to build helm" >&2; exit 1; }
  echo "[helm] building helm $HELM_VERSION into $BIN_DIR (first time: a few minutes)..." >&2
  mkdir -p "$BIN_DIR"
  # A private GOBIN, then an atomic rename: concurrent callers never see a half-written binary.
  tmp=$(mktemp -d "$BIN_DIR/.build.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  GOBIN=$tmp CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  mv -f "$tmp/helm" "$HELM"
  rm -rf "$tmp"
  trap - EXIT
  echo "[helm] built $HELM" >&2
fi

if [[ ${1:-} == --path ]]; then
  echo "$HELM"
  exit 0
fi
exec "$HELM" "$@"
