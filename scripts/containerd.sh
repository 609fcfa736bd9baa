#!/usr/bin/env bash
# Starts a containerd of Sextant's own for tests and local use, on a private socket, with
# its CRI plugin pointed at a pause image built offline (scripts/oci-images.sh), and the
# test images imported. Idempotent: a containerd already answering on the socket is reused.
#   scripts/containerd.sh start   # prints the socket path on stdout
#   scripts/containerd.sh stop
# Environment: SEXTANT_CONTAINERD_DIR (default ~/.cache/sextant/containerd).
set -euo pipefail
cd "$(dirname "$0")/.."
base=${SEXTANT_CONTAINERD_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sextant/containerd}
# The socket and state live on a short path: unix socket paths are limited to 108 bytes.
state=/run/sextant-containerd
socket=$state/containerd.sock
ctr=(ctr --address "$socket" --namespace k8s.io)

case ${1:-start} in
stop)
    if [[ -f $state/pid ]]; then
        pid=$(cat "$state/pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        rm -f "$state/pid"
    fi
    exit 0
    ;;
start) ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac

command -v containerd >/dev/null && command -v runc >/dev/null || {
    echo "containerd and runc are needed: run scripts/setup.sh (apt-get install containerd runc)" >&2
    exit 1
}
mkdir -p "$base/root" "$base/images" "$state"

if ! "${ctr[@]}" version >/dev/null 2>&1; then
    cat >"$base/config.toml" <<TOML
version = 2
root = "$base/root"
state = "$state/state"
[grpc]
  address = "$socket"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "sextant.local/pause:1"
  # Some kernels (this project's CI VMs among them) refuse a negative oom_score_adj, which
  # containerd gives every sandbox (-998) unless capped at its own (0).
  restrict_oom_score_adj = true
  # Exec and attach streams: on loopback only, on a port the kernel picks.
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
TOML
    containerd --config "$base/config.toml" >"$base/containerd.log" 2>&1 &
    echo $! >"$state/pid"
    for _ in $(seq 100); do
        "${ctr[@]}" version >/dev/null 2>&1 && break
        sleep 0.1
    done
    "${ctr[@]}" version >/dev/null 2>&1 || {
        echo "containerd did not start; its log is $base/containerd.log:" >&2
        tail -20 "$base/containerd.log" >&2
        exit 1
    }
fi

# Images: built once per busybox version, imported when containerd lacks them.
bash scripts/oci-images.sh "$base/images" >/dev/null
have=$("${ctr[@]}" images ls -q)
for image in busybox pause; do
    grep -qx "sextant.local/$image:1" <<<"$have" || "${ctr[@]}" images import "$base/images/$image.tar" >/dev/null
done
echo "$socket"
