#!/usr/bin/env bash
# A real, throw-away Kubernetes API (etcd + kube-apiserver on 127.0.0.1) for tests and
# the demo. No kubelet, scheduler or controller-manager: objects are stored and served,
# RBAC and admission run, nothing reconciles.
#
#   hack/local-cluster.sh binaries      print the dir holding kube-apiserver, etcd, kubectl
#   hack/local-cluster.sh up [DIR]      start a cluster recorded in DIR (default .cluster)
#   hack/local-cluster.sh down [DIR]    stop it and remove its data (idempotent)
#   hack/local-cluster.sh status [DIR]
#
# KUBEBUILDER_ASSETS (envtest's convention) may name a dir with prebuilt kube-apiserver
# and etcd (kubectl optional); otherwise they are built once with Go from hack/kube.
# PREPULL_CLUSTER_OWNER_PID (for `up`): the cluster goes down by itself when that process
# dies (the test harness passes its own pid).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly ROOT
module_version() { awk -v m="$1" '$1 == m && $2 ~ /^v/ { print $2; exit }' "$ROOT/hack/kube/go.mod"; }
# The versions pinned in hack/kube/go.mod name the cache dir: a bump there builds anew.
KUBE_VERSION=$(module_version k8s.io/kubernetes)
ETCD_VERSION=$(module_version go.etcd.io/etcd/server/v3)
readonly KUBE_VERSION ETCD_VERSION
if [[ -z $KUBE_VERSION || -z $ETCD_VERSION ]]; then
  echo "local-cluster: cannot read the kubernetes/etcd versions from hack/kube/go.mod" >&2
  exit 1
fi
readonly CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/prepull-agent/kube-${KUBE_VERSION}-etcd-${ETCD_VERSION}"
readonly READY_TIMEOUT=60

log() { echo "local-cluster: $*" >&2; }
die() { log "$*"; exit 1; }
now_ms() { echo $((${EPOCHREALTIME/./} / 1000)); }

has_server_binaries() { [[ -x $1/kube-apiserver && -x $1/etcd ]]; }

# Builds kube-apiserver, etcd and kubectl into CACHE_DIR (atomically: a half-built dir
# is never seen under the final name).
build_binaries() {
  if ! command -v go >/dev/null; then
    log "Go is not installed. Install Go >= 1.25 (then run 'make binaries'), or set"
    log "KUBEBUILDER_ASSETS to a directory holding kube-apiserver and etcd (and kubectl)."
    exit 3
  fi
  local version_pkg=k8s.io/component-base/version
  local major minor
  IFS=. read -r major minor _ <<<"${KUBE_VERSION#v}"
  local ldflags="-s -w -X $version_pkg.gitVersion=$KUBE_VERSION -X $version_pkg.gitMajor=$major"
  ldflags+=" -X $version_pkg.gitMinor=$minor -X $version_pkg.gitTreeState=clean"
  local tmp
  mkdir -p "$(dirname "$CACHE_DIR")"
  tmp=$(mktemp -d "$CACHE_DIR.tmp.XXXXXX")
  chmod 755 "$tmp"
  log "building kube-apiserver, kubectl $KUBE_VERSION and etcd $ETCD_VERSION into $CACHE_DIR"
  log "(first build: 10-30 minutes on 2 cores; later builds reuse Go's build cache)"
  (
    cd "$ROOT/hack/kube"
    go build -trimpath -ldflags="$ldflags" -o "$tmp/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
    go build -trimpath -ldflags="$ldflags" -o "$tmp/kubectl" k8s.io/kubernetes/cmd/kubectl
    go build -trimpath -ldflags="-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3
  ) >&2 || { rm -rf "$tmp"; die "go build failed"; }
  # Lost a race with a concurrent build: keep the one that landed first.
  mv -T "$tmp" "$CACHE_DIR" 2>/dev/null || rm -rf "$tmp"
}

cmd_binaries() {
  if [[ -n ${KUBEBUILDER_ASSETS:-} ]]; then
    if has_server_binaries "$KUBEBUILDER_ASSETS"; then
      echo "$KUBEBUILDER_ASSETS"
      return
    fi
    log "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS lacks kube-apiserver or etcd; ignoring it"
  fi
  has_server_binaries "$CACHE_DIR" || build_binaries
  echo "$CACHE_DIR"
}

# ---- cluster state (DIR/env holds shell-quoted KEY=value lines) -------------------------

load_env() { # DIR -> sets the variables written by write_env; false when none recorded
  [[ -f $1/env ]] || return 1
  # shellcheck source=/dev/null
  source "$1/env"
}

# A pid counts as ours only if its command line mentions our data dir (pids get reused).
is_ours() {
  [[ -n ${1:-} && -n ${DATA_DIR:-} ]] && grep -qF "$DATA_DIR" "/proc/$1/cmdline" 2>/dev/null
}

is_ready() {
  "$KUBECTL" --kubeconfig="$KUBECONFIG_FILE" --request-timeout=5s get --raw=/readyz >/dev/null 2>&1
}

wait_ready() { # print why and fail if a process exits or READY_TIMEOUT passes
  local deadline=$(($(now_ms) + READY_TIMEOUT * 1000))
  until is_ready; do
    is_ours "$ETCD_PID" || { echo "etcd exited"; return 1; }
    is_ours "$APISERVER_PID" || { echo "kube-apiserver exited"; return 1; }
    (($(now_ms) < deadline)) || { echo "kube-apiserver not ready after ${READY_TIMEOUT}s"; return 1; }
    sleep 0.2
  done
  # Ready, but maybe on another cluster's port: both must still be ours.
  if ! { is_ours "$ETCD_PID" && is_ours "$APISERVER_PID"; }; then
    echo "a process exited"
    return 1
  fi
}

is_alive() { # DIR: a recorded cluster whose processes run and whose API is ready
  load_env "$1" && is_ours "$ETCD_PID" && is_ours "$APISERVER_PID" && is_ready
}

stop_pid() { # PID: TERM, then KILL after 5 s
  is_ours "$1" || return 0
  kill -TERM "$1" 2>/dev/null || return 0
  local i
  for ((i = 0; i < 50; i++)); do
    is_ours "$1" || return 0
    sleep 0.1
  done
  kill -KILL "$1" 2>/dev/null || true
}

cmd_down() {
  local dir=$1
  if load_env "$dir"; then
    # The watcher runs `down` as itself (exec): it must not stop itself.
    [[ ${WATCHER_PID:-} == "$$" ]] || stop_pid "${WATCHER_PID:-}"
    stop_pid "${APISERVER_PID:-}"
    stop_pid "${ETCD_PID:-}"
    # Only ever delete a dir this script made with mktemp.
    [[ $DATA_DIR == */prepull-cluster.* ]] && rm -rf "$DATA_DIR"
    log "stopped the cluster in $dir"
  fi
  rm -f "$dir/env" "$dir/kubeconfig" "$dir/ca.crt"
}

cmd_status() {
  local dir=$1
  if ! load_env "$dir"; then
    echo "no cluster recorded in $dir"
    return 1
  fi
  if is_alive "$dir"; then
    echo "running: $SERVER (etcd pid $ETCD_PID, kube-apiserver pid $APISERVER_PID)"
    echo "KUBECONFIG=$KUBECONFIG_FILE"
  else
    echo "not running (stale state in $dir; 'down' cleans it up)"
    return 1
  fi
}

# ---- up ---------------------------------------------------------------------------------

free_ports() { # N: print N distinct free TCP ports on 127.0.0.1
  python3 - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

make_pki() { # PKI_DIR: CA, apiserver serving cert, admin client cert, SA signing key
  local pki=$1
  (
    cd "$pki"
    key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
    sign() { # NAME SUBJECT EXTENSIONS
      key "$1.key"
      openssl req -new -key "$1.key" -subj "$2" -out "$1.csr"
      printf '%s\n' "$3" >"$1.ext"
      openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
        -extfile "$1.ext" -out "$1.crt" 2>/dev/null
    }
    key ca.key
    openssl req -x509 -new -key ca.key -subj "/CN=prepull-local-ca" -days 30 -out ca.crt \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    sign apiserver "/CN=kube-apiserver" \
      "$(printf '%s\n' 'keyUsage=critical,digitalSignature' \
        'extendedKeyUsage=serverAuth' 'subjectAltName=IP:127.0.0.1,DNS:localhost')"
    sign admin "/O=system:masters/CN=prepull-admin" \
      "$(printf '%s\n' 'keyUsage=critical,digitalSignature' 'extendedKeyUsage=clientAuth')"
    key sa.key
    openssl pkey -in sa.key -pubout -out sa.pub
  )
}

write_kubeconfig() { # FILE SERVER PKI_DIR
  local b64='base64 -w0'
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: prepull-local
  cluster:
    server: $2
    certificate-authority-data: $($b64 "$3/ca.crt")
users:
- name: prepull-admin
  user:
    client-certificate-data: $($b64 "$3/admin.crt")
    client-key-data: $($b64 "$3/admin.key")
contexts:
- name: prepull-local
  context:
    cluster: prepull-local
    user: prepull-admin
current-context: prepull-local
EOF
  chmod 600 "$1"
}

write_env() { # DIR
  local k
  for k in SERVER KUBECONFIG_FILE ETCD_PID APISERVER_PID WATCHER_PID ETCD_PORT \
    ETCD_PEER_PORT APISERVER_PORT DATA_DIR BIN_DIR KUBECTL; do
    printf '%s=%q\n' "$k" "${!k}"
  done >"$1/env"
}

fail_start() { # DIR MESSAGE
  log "$2"
  local f
  for f in "$1/kube-apiserver.log" "$1/etcd.log"; do
    [[ -s $f ]] && { log "--- last lines of $f"; tail -n 25 "$f" >&2; }
  done
  cmd_down "$1" 2>/dev/null
  exit 1
}

launch() { # DIR: new ports, data dir, certificates, kubeconfig; start etcd and kube-apiserver
  local dir=$1
  read -r ETCD_PORT ETCD_PEER_PORT APISERVER_PORT < <(free_ports 3)
  DATA_DIR=$(mktemp -d "${TMPDIR:-/tmp}/prepull-cluster.XXXXXX")
  SERVER=https://127.0.0.1:$APISERVER_PORT
  KUBECONFIG_FILE=$dir/kubeconfig
  local pki=$DATA_DIR/pki etcd_url=http://127.0.0.1:$ETCD_PORT
  local peer_url=http://127.0.0.1:$ETCD_PEER_PORT
  mkdir -p "$pki"
  make_pki "$pki"
  cp "$pki/ca.crt" "$dir/ca.crt"
  write_kubeconfig "$KUBECONFIG_FILE" "$SERVER" "$pki"

  # setsid: the cluster outlives this script and ignores Ctrl-C in its terminal. 9>&-: the
  # daemons must not inherit (and so hold) the lock.
  setsid "$BIN_DIR/etcd" --name=prepull-local --data-dir="$DATA_DIR/etcd" \
    --listen-client-urls="$etcd_url" --advertise-client-urls="$etcd_url" \
    --listen-peer-urls="$peer_url" --initial-advertise-peer-urls="$peer_url" \
    --initial-cluster="prepull-local=$peer_url" --unsafe-no-fsync --log-level=warn \
    </dev/null >"$dir/etcd.log" 2>&1 9>&- &
  ETCD_PID=$!
  # ServiceAccount admission is off: with no controller-manager there is no `default`
  # ServiceAccount, and the plugin would refuse every Pod that does not name one.
  setsid "$BIN_DIR/kube-apiserver" --etcd-servers="$etcd_url" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$APISERVER_PORT" \
    --cert-dir="$pki" --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" --authorization-mode=Node,RBAC \
    --service-account-issuer=https://kubernetes.default.svc --api-audiences=https://kubernetes.default.svc \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --service-cluster-ip-range=10.0.0.0/24 --disable-admission-plugins=ServiceAccount \
    </dev/null >"$dir/kube-apiserver.log" 2>&1 9>&- &
  APISERVER_PID=$!
  WATCHER_PID=
  write_env "$dir"
}

cmd_up() {
  local dir=$1 started why attempt
  started=$(now_ms)
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if load_env "$dir" && is_ours "$ETCD_PID" && is_ours "$APISERVER_PID"; then
    why=$(wait_ready) || die "the cluster in $dir runs but is not ready ($why); try: $0 down $dir"
    echo "cluster already running in $dir: $SERVER"
    echo "KUBECONFIG=$KUBECONFIG_FILE"
    return 0
  fi
  cmd_down "$dir" 2>/dev/null # stale state from a crashed or rebooted cluster

  BIN_DIR=$(cmd_binaries)
  KUBECTL=$BIN_DIR/kubectl
  [[ -x $KUBECTL ]] || KUBECTL=$CACHE_DIR/kubectl
  [[ -x $KUBECTL ]] || die "no kubectl in $BIN_DIR; put kubectl $KUBE_VERSION there or unset KUBEBUILDER_ASSETS"

  for attempt in 1 2 3; do
    launch "$dir"
    why=$(wait_ready) && break
    # A free port can be taken by another process before etcd or kube-apiserver binds it.
    if ((attempt < 3)) && grep -qs "address already in use" "$dir/etcd.log" "$dir/kube-apiserver.log"; then
      log "a port was taken during start-up; retrying with new ports"
      cmd_down "$dir" 2>/dev/null
    else
      fail_start "$dir" "start-up failed: $why"
    fi
  done
  "$KUBECTL" --kubeconfig="$KUBECONFIG_FILE" apply --server-side -f "$ROOT/hack/crds" >/dev/null ||
    fail_start "$dir" "installing the CRDs failed"
  "$KUBECTL" --kubeconfig="$KUBECONFIG_FILE" wait --for=condition=Established --timeout=30s \
    -f "$ROOT/hack/crds" >/dev/null || fail_start "$dir" "the CRDs did not become Established"

  # PREPULL_CLUSTER_OWNER_PID (the test harness sets it): take the cluster down when that
  # process dies, so a test run that is killed before its teardown leaks no cluster.
  if [[ -n ${PREPULL_CLUSTER_OWNER_PID:-} ]]; then
    # shellcheck disable=SC2016 # expanded by the watcher's own shell
    setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 2; done; exec "$2" down "$3"' \
      watcher "$PREPULL_CLUSTER_OWNER_PID" "$ROOT/hack/local-cluster.sh" "$dir" "$DATA_DIR" \
      </dev/null >"$dir/watcher.log" 2>&1 9>&- &
    WATCHER_PID=$!
    write_env "$dir"
  fi

  local ms=$(($(now_ms) - started))
  echo "cluster up in $dir: $SERVER (started in $((ms / 1000)).$(printf '%03d' $((ms % 1000)))s)"
  echo "KUBECONFIG=$KUBECONFIG_FILE"
}

# Serializes up/down on one DIR: a second `up` waits, then finds the first one's cluster.
lock() {
  mkdir -p "$1"
  exec 9>"$1/.lock"
  flock 9
}

main() {
  local cmd=${1:-} dir=${2:-$ROOT/.cluster}
  case $cmd in
  binaries) cmd_binaries ;;
  up)
    lock "$dir"
    cmd_up "$dir"
    ;;
  down)
    if [[ -d $dir ]]; then lock "$dir"; fi
    cmd_down "$dir"
    ;;
  status) cmd_status "$dir" ;;
  *)
    echo "usage: $0 binaries | up [DIR] | down [DIR] | status [DIR]" >&2
    exit 2
    ;;
  esac
}

main "$@"
