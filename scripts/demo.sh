#!/usr/bin/env bash
# The main job in one command, on the embedded default: a local control plane (real
# kube-apiserver + etcd), the cloud emulator and the operator; applies examples/quickstart.yaml,
# waits for its EcsInstances (one on Alibaba Cloud, one on Tencent Cloud) to be Ready and prints them.
#
#   scripts/demo.sh        start everything (reuses what already runs) and show the result
#   scripts/demo.sh down   stop the emulator, the operator and the control plane
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
STATE=${MCE_DEMO_DIR:-${TMPDIR:-/tmp}/multicloud-ecs-demo}
BIN=$ROOT/target/debug/multicloud-ecs
EMULATOR_BIN=$ROOT/target/debug/multicloud-ecs-emulator

log() { printf '[demo] %s\n' "$*" >&2; }

stop_pid() {
  local f=$1
  if [[ -f $f ]] && kill -0 "$(cat "$f")" 2>/dev/null; then
    kill "$(cat "$f")" 2>/dev/null || true
    log "stopped $(basename "$f" .pid) (pid $(cat "$f"))"
  fi
  rm -f "$f"
}

if [[ ${1:-} == down ]]; then
  stop_pid "$STATE/operator.pid"
  stop_pid "$STATE/emulator.pid"
  # The control plane may be shared (tests): stop it only if the demo started it.
  [[ -f $STATE/started-control-plane ]] && scripts/control-plane.sh down
  rm -rf "$STATE"
  exit 0
fi

mkdir -p "$STATE"
scripts/control-plane.sh build
scripts/control-plane.sh status >/dev/null 2>&1 || touch "$STATE/started-control-plane"
scripts/control-plane.sh up
export KUBECONFIG
KUBECONFIG=$(scripts/control-plane.sh kubeconfig)

log "building the operator and the cloud emulator"
cargo build --quiet -p multicloud-ecs --bin multicloud-ecs -p mce-emulator --bin multicloud-ecs-emulator

if ! { [[ -f $STATE/emulator.pid ]] && kill -0 "$(cat "$STATE/emulator.pid")" 2>/dev/null; }; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$EMULATOR_BIN" --listen "127.0.0.1:$port" >"$STATE/emulator.log" 2>&1 &
  echo $! >"$STATE/emulator.pid"
  echo "$port" >"$STATE/emulator.port"
  for _ in $(seq 1 50); do curl -fsS "http://127.0.0.1:$port/_emulator/calls" >/dev/null 2>&1 && break; sleep 0.1; done
  log "cloud emulator on 127.0.0.1:$port (log $STATE/emulator.log)"
fi
port=$(cat "$STATE/emulator.port")

kubectl apply --server-side -f crds/ >/dev/null
kubectl wait --for condition=established --timeout=60s crd --all >/dev/null

if ! { [[ -f $STATE/operator.pid ]] && kill -0 "$(cat "$STATE/operator.pid")" 2>/dev/null; }; then
  "$BIN" run >"$STATE/operator.log" 2>&1 &
  echo $! >"$STATE/operator.pid"
  log "operator started (log $STATE/operator.log)"
fi

# The quickstart points at the emulator's default port; use the one started here.
sed "s#http://127.0.0.1:18080#http://127.0.0.1:$port#" examples/quickstart.yaml | kubectl apply -f -
log "waiting for the EcsInstances (Alibaba Cloud and Tencent Cloud) to be Ready"
start=$SECONDS
for name in gpu-box gpu-box-tencent; do
  if ! kubectl wait --for condition=Ready --timeout=120s -n ml-team "ecs/$name"; then
    kubectl get ecs,unet -A -o wide
    kubectl describe ecs -n ml-team "$name" | tail -20
    tail -20 "$STATE/operator.log"
    exit 1
  fi
done
log "both Ready in $((SECONDS - start)) s"

# Placement: an A100 on the cheaper cloud with stock, and a quote of both clouds.
kubectl apply -f examples/placement.yaml
start=$SECONDS
if ! kubectl wait --for condition=Ready --timeout=120s -n ml-team ecs/gpu-cheapest; then
  kubectl describe ecs -n ml-team gpu-cheapest | tail -20
  tail -20 "$STATE/operator.log"
  exit 1
fi
log "gpu-cheapest Ready in $((SECONDS - start)) s: $(kubectl get ecs -n ml-team gpu-cheapest -o jsonpath='{.status.placement.reason}')"
kubectl wait --for condition=Quoted --timeout=60s -n ml-team pq/a100-monthly >/dev/null
kubectl get pq -n ml-team
kubectl get ecs -A -o wide
kubectl get unet -A
cat <<EOF

Running in the background. Try:
  export KUBECONFIG=$KUBECONFIG
  kubectl get ecs,unet,cprov -A -o wide
  kubectl describe ecs -n ml-team gpu-box
  curl -s http://127.0.0.1:$port/_emulator/resources | python3 -m json.tool
Stop everything with: scripts/demo.sh down
EOF
