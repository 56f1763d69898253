#!/usr/bin/env bash
# Runs every test and check: formatting, clippy, generated files current, Rust unit and integration
# tests (against a real kube-apiserver + etcd and the cloud emulator over loopback HTTP), and the
# official-SDK tests of the emulator. Starts what it needs; stops what it started.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

step() { printf '\n==> %s\n' "$*"; }

step "control-plane binaries"
scripts/control-plane.sh build
if ! scripts/control-plane.sh status >/dev/null 2>&1; then
  trap 'scripts/control-plane.sh down' EXIT
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (every crate of the workspace)"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "cargo build"
cargo build --quiet --workspace --bins

step "crds/ is generated from the API types"
generated=$(mktemp -d)
target/debug/multicloud-ecs crdgen --out "$generated"
if ! diff -ru crds "$generated"; then
  echo "crds/ is stale: run 'target/debug/multicloud-ecs crdgen --out crds' and commit" >&2
  exit 1
fi
rm -rf "$generated"

step "the operator neither depends on nor contains the emulator"
scripts/check-operator-binary.sh target/debug/multicloud-ecs target/debug/multicloud-ecs-emulator

# --- Helm chart (issue 5): CRD templates generated from crds/, helm lint, and the rendered chart
# accepted by the real API server (kubectl apply --dry-run=server). Builds Helm once if missing;
# tests/chart_rbac.rs (in cargo test below) uses it too.
step "Helm chart: CRD templates current, helm lint, kubectl apply --dry-run=server"
scripts/chart-check.sh
# --- end Helm chart

step "cargo test (every crate of the workspace)"
cargo test --workspace --quiet

if [[ -d tests/python ]]; then
  step "official SDK and Argo CD health-check tests (pytest, in the project's own venv)"
  venv=$(scripts/python-venv.sh)
  MCE_BIN="$ROOT/target/debug/multicloud-ecs" MCE_EMULATOR_BIN="$ROOT/target/debug/multicloud-ecs-emulator" \
    "$venv/bin/python" -m pytest -q tests/python
fi

step "the main job in one command (scripts/demo.sh, on its own control plane)"
MCE_CP_DIR=$(mktemp -d) MCE_DEMO_DIR=$(mktemp -d) bash -c 'trap "scripts/demo.sh down" EXIT; scripts/demo.sh'
