#!/usr/bin/env bash
# A real Kubernetes control plane (etcd + kube-apiserver + kube-controller-manager, no kubelet) on
# loopback, envtest-style.
#
#   scripts/control-plane.sh build        build (or reuse) the cached binaries
#   scripts/control-plane.sh up           start etcd, kube-apiserver and kube-controller-manager,
#                                         write a kubeconfig
#   scripts/control-plane.sh down         stop exactly what `up` started and remove its data
#   scripts/control-plane.sh status       report whether it runs and where
#   scripts/control-plane.sh kubeconfig   print the kubeconfig path (for --kubeconfig / KUBECONFIG)
#   scripts/control-plane.sh env          print `export` lines (KUBECONFIG and the binary paths)
#
# Environment:
#   MCE_CP_DIR     state directory (default: $XDG_RUNTIME_DIR or /tmp, /multicloud-ecs-cp)
#   MCE_CACHE_DIR  binary cache     (default: ${XDG_CACHE_HOME:-~/.cache}/multicloud-ecs)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KUBE_VERSION=v1.34.4
ETCD_VERSION=v3.6.16
CACHE_DIR=${MCE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/multicloud-ecs}
KUBE_APISERVER=$CACHE_DIR/kube-apiserver-$KUBE_VERSION/kube-apiserver
KUBE_CONTROLLER_MANAGER=$CACHE_DIR/kube-controller-manager-$KUBE_VERSION/kube-controller-manager
ETCD=$CACHE_DIR/etcd-$ETCD_VERSION/etcd
STATE_DIR=${MCE_CP_DIR:-${TMPDIR:-/tmp}/multicloud-ecs-cp}
KUBECONFIG_PATH=$STATE_DIR/kubeconfig

log() { printf '[control-plane] %s\n' "$*" >&2; }
die() { printf '[control-plane] error: %s\n' "$*" >&2; exit 1; }

# Prints the last lines of a process log, so a failure explains itself.
tail_log() {
  local name=$1 file=$2
  if [[ -s $file ]]; then
    printf '[control-plane] --- last lines of %s (%s) ---\n' "$name" "$file" >&2
    tail -n 25 "$file" >&2
    printf '[control-plane] ---\n' >&2
  fi
}

build_one() {
  local name=$1 out=$2 module_dir=$3 pkg=$4 ldflags=$5
  if [[ -x $out ]]; then
    log "$name: cached at $out"
    return
  fi
  command -v go >/dev/null || die "go is required to build $name"
  log "$name: building $pkg (cold build: several minutes, ~3-4 GB memory)..."
  mkdir -p "$(dirname "$out")"
  local start=$SECONDS
  # -v prints every package as it compiles: progress, not silence.
  # /usr/bin/time -v records the build's wall time and peak memory next to the binary.
  local timer=()
  [[ -x /usr/bin/time ]] && timer=(/usr/bin/time -v -o "$out.build-stats")
  if ! (cd "$module_dir" && CGO_ENABLED=0 "${timer[@]}" go build -v -trimpath -ldflags "$ldflags" -o "$out.tmp" "$pkg" 2>&1 |
    awk -v n="$name" '{ c++; if (c % 100 == 0) printf "[control-plane] %s: %d packages compiled\n", n, c > "/dev/stderr"; if ($0 !~ /^[a-zA-Z0-9_.\/-]+$/) print > "/dev/stderr" }'); then
    die "$name build failed (module $module_dir)"
  fi
  mv "$out.tmp" "$out"
  log "$name: built in $((SECONDS - start)) s -> $out"
  [[ -f $out.build-stats ]] && grep -E 'Elapsed|Maximum resident' "$out.build-stats" | sed "s/^\s*/[control-plane] $name: /" >&2
  return 0
}

cmd_build() {
  local minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
  local ldf="-s -w" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldf="$ldf -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  build_one etcd "$ETCD" "$ROOT/hack/etcd" go.etcd.io/etcd/server/v3 "-s -w"
  build_one kube-apiserver "$KUBE_APISERVER" "$ROOT/hack/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver "$ldf"
  build_one kube-controller-manager "$KUBE_CONTROLLER_MANAGER" "$ROOT/hack/kube-controller-manager" \
    k8s.io/kubernetes/cmd/kube-controller-manager "$ldf"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

pid_alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

running() { pid_alive "$STATE_DIR/etcd.pid" && pid_alive "$STATE_DIR/kube-apiserver.pid"; }

# CA, serving cert, admin client cert (system:masters), service-account key pair.
gen_pki() {
  local d=$1
  mkdir -p "$d"
  (
    cd "$d"
    openssl ecparam -name prime256v1 -genkey -noout -out ca.key 2>/dev/null
    openssl req -x509 -new -key ca.key -subj /CN=multicloud-ecs-test-ca -days 30 -out ca.crt 2>/dev/null
    openssl ecparam -name prime256v1 -genkey -noout -out serving.key 2>/dev/null
    openssl req -new -key serving.key -subj /CN=kube-apiserver -out serving.csr 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >serving.ext
    openssl x509 -req -in serving.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
      -extfile serving.ext -out serving.crt 2>/dev/null
    new_client_cert admin system:masters
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  )
}

# new_client_cert NAME [GROUP]: a client certificate signed by the CA in the current directory.
new_client_cert() {
  local name=$1 group=${2:-} subj="/CN=$1"
  [[ -n $group ]] && subj="/O=$group/CN=$name"
  openssl ecparam -name prime256v1 -genkey -noout -out "$name.key" 2>/dev/null
  openssl req -new -key "$name.key" -subj "$subj" -out "$name.csr" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' >client.ext
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
    -extfile client.ext -out "$name.crt" 2>/dev/null
}

write_kubeconfig() {
  local out=$1 server=$2 pki=$3 user=$4
  local b64='base64 -w0'
  cat >"$out" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: multicloud-ecs-test
  cluster:
    server: $server
    certificate-authority-data: $($b64 <"$pki/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $($b64 <"$pki/$user.crt")
    client-key-data: $($b64 <"$pki/$user.key")
contexts:
- name: multicloud-ecs-test
  context:
    cluster: multicloud-ecs-test
    user: $user
current-context: multicloud-ecs-test
EOF
  chmod 600 "$out"
}

wait_http() {
  local name=$1 pidfile=$2 logfile=$3 timeout=$4; shift 4
  local deadline=$((SECONDS + timeout))
  until curl -fsS "$@" >/dev/null 2>&1; do
    if ! pid_alive "$pidfile"; then
      tail_log "$name" "$logfile"
      die "$name exited during start-up (log: $logfile)"
    fi
    if ((SECONDS > deadline)); then
      tail_log "$name" "$logfile"
      die "$name not ready after ${timeout}s (log: $logfile)"
    fi
    sleep 0.2
  done
}

# Only the controllers a CRD-only cluster needs: ownerReference garbage collection, namespace
# deletion (it deletes every namespaced object, custom resources included, and waits for their
# finalizers) and the service-account ones (a namespace gets its `default` ServiceAccount).
start_controller_manager() {
  local server=$1 pki=$STATE_DIR/pki kcm_port kcm_kubeconfig=$STATE_DIR/kubeconfig-controller-manager
  # The garbage collector and the namespace controller delete objects of every kind, custom
  # resources included: a system:masters identity named like the real one.
  [[ -f $pki/system:kube-controller-manager.crt ]] ||
    (cd "$pki" && new_client_cert system:kube-controller-manager system:masters)
  kcm_port=$(free_port)
  write_kubeconfig "$kcm_kubeconfig" "$server" "$pki" system:kube-controller-manager
  "$KUBE_CONTROLLER_MANAGER" --kubeconfig="$kcm_kubeconfig" \
    --authentication-kubeconfig="$kcm_kubeconfig" --authorization-kubeconfig="$kcm_kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$kcm_port" --cert-dir="$STATE_DIR/kcm-certs" \
    --controllers=garbagecollector,namespace,serviceaccount,serviceaccount-token \
    --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
    --leader-elect=false --concurrent-gc-syncs=10 --v=1 \
    >"$STATE_DIR/kube-controller-manager.log" 2>&1 9>&- &
  echo $! >"$STATE_DIR/kube-controller-manager.pid"
  wait_http kube-controller-manager "$STATE_DIR/kube-controller-manager.pid" \
    "$STATE_DIR/kube-controller-manager.log" 60 -k "https://127.0.0.1:$kcm_port/healthz"
}

cmd_up() {
  if running && ! pid_alive "$STATE_DIR/kube-controller-manager.pid"; then
    # A copy started before kube-controller-manager was part of it (or whose copy died).
    start_controller_manager "$(cat "$STATE_DIR/server")"
  fi
  if running; then
    log "already running (server $(cat "$STATE_DIR/server")); kubeconfig: $KUBECONFIG_PATH"
    return
  fi
  [[ -x $ETCD && -x $KUBE_APISERVER && -x $KUBE_CONTROLLER_MANAGER ]] || die "binaries missing; build them with: $ROOT/scripts/control-plane.sh build"
  # A half-started or crashed previous copy: clean it up first.
  [[ -d $STATE_DIR ]] && cmd_down >/dev/null 2>&1 || true
  mkdir -p "$STATE_DIR"
  # A failed start stops what it started and keeps the logs for reading.
  trap 'stop_processes' EXIT
  local start=$SECONDS
  gen_pki "$STATE_DIR/pki"
  local etcd_port peer_port api_port
  etcd_port=$(free_port); peer_port=$(free_port); api_port=$(free_port)

  "$ETCD" --name=mce --data-dir="$STATE_DIR/etcd-data" \
    --listen-client-urls="http://127.0.0.1:$etcd_port" --advertise-client-urls="http://127.0.0.1:$etcd_port" \
    --listen-peer-urls="http://127.0.0.1:$peer_port" --initial-advertise-peer-urls="http://127.0.0.1:$peer_port" \
    --initial-cluster="mce=http://127.0.0.1:$peer_port" --unsafe-no-fsync=true --log-level=warn \
    >"$STATE_DIR/etcd.log" 2>&1 9>&- &
  echo $! >"$STATE_DIR/etcd.pid"
  wait_http etcd "$STATE_DIR/etcd.pid" "$STATE_DIR/etcd.log" 30 "http://127.0.0.1:$etcd_port/health"

  local pki=$STATE_DIR/pki
  "$KUBE_APISERVER" --etcd-servers="http://127.0.0.1:$etcd_port" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$api_port" \
    --tls-cert-file="$pki/serving.crt" --tls-private-key-file="$pki/serving.key" --client-ca-file="$pki/ca.crt" \
    --service-cluster-ip-range=10.0.0.0/24 --service-account-issuer="https://127.0.0.1:$api_port/" \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --authorization-mode=RBAC --allow-privileged=true --disable-admission-plugins=ServiceAccount \
    --cert-dir="$STATE_DIR/certs" --v=1 \
    >"$STATE_DIR/kube-apiserver.log" 2>&1 9>&- &
  echo $! >"$STATE_DIR/kube-apiserver.pid"
  local server="https://127.0.0.1:$api_port"
  echo "$server" >"$STATE_DIR/server"
  wait_http kube-apiserver "$STATE_DIR/kube-apiserver.pid" "$STATE_DIR/kube-apiserver.log" 120 \
    --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" "$server/readyz"
  write_kubeconfig "$KUBECONFIG_PATH" "$server" "$pki" admin

  start_controller_manager "$server"
  trap - EXIT
  log "ready in $((SECONDS - start)) s: $server"
  log "kubeconfig: $KUBECONFIG_PATH"
}

stop_processes() {
  local name pidfile pid
  for name in kube-controller-manager kube-apiserver etcd; do
    pidfile=$STATE_DIR/$name.pid
    if pid_alive "$pidfile"; then
      pid=$(cat "$pidfile")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      log "stopped $name (pid $pid)"
    fi
  done
}

cmd_down() {
  stop_processes
  rm -rf "$STATE_DIR"
}

cmd_status() {
  if running; then
    echo "running: $(cat "$STATE_DIR/server") (etcd pid $(cat "$STATE_DIR/etcd.pid"), kube-apiserver pid $(cat "$STATE_DIR/kube-apiserver.pid"), kube-controller-manager pid $(cat "$STATE_DIR/kube-controller-manager.pid"))"
    echo "kubeconfig: $KUBECONFIG_PATH"
  else
    echo "not running"
    return 1
  fi
}

# user-kubeconfig NAME [GROUP]: a kubeconfig for a non-admin identity (RBAC tests).
cmd_user_kubeconfig() {
  local name=${1:?usage: user-kubeconfig NAME [GROUP]} group=${2:-}
  running || die "not running; start it with: $ROOT/scripts/control-plane.sh up"
  (cd "$STATE_DIR/pki" && new_client_cert "$name" "$group")
  write_kubeconfig "$STATE_DIR/kubeconfig-$name" "$(cat "$STATE_DIR/server")" "$STATE_DIR/pki" "$name"
  echo "$STATE_DIR/kubeconfig-$name"
}

# Serializes up/down between concurrent callers (several test processes may call `up`).
with_lock() {
  mkdir -p "$(dirname "$STATE_DIR")"
  exec 9>"$STATE_DIR.lock"
  flock 9
  "$@"
}

case ${1:-} in
  build) cmd_build ;;
  up) with_lock cmd_up ;;
  down) with_lock cmd_down ;;
  status) cmd_status ;;
  kubeconfig) echo "$KUBECONFIG_PATH" ;;
  user-kubeconfig) shift; cmd_user_kubeconfig "$@" ;;
  env)
    echo "export KUBECONFIG=$KUBECONFIG_PATH"
    echo "export MCE_KUBE_APISERVER=$KUBE_APISERVER"
    echo "export MCE_ETCD=$ETCD"
    echo "export MCE_KUBE_CONTROLLER_MANAGER=$KUBE_CONTROLLER_MANAGER"
    ;;
  binaries) printf '%s\n%s\n%s\n' "$ETCD" "$KUBE_APISERVER" "$KUBE_CONTROLLER_MANAGER" ;;
  *) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
