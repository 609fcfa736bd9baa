#!/usr/bin/env bash
# Starts Sextant on its embedded default (one all-in-one server on ./sextant-data) and
# deploys the hello example. Ctrl-C (or SIGTERM) stops the server cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
cargo build --release -p sextant -p wasm-kubelet
cargo build --release -p hello --target wasm32-wasip2
examples_dir="$CARGO_TARGET_DIR/wasm32-wasip2/release"

# A containerd of the project's own, so that OCI and mixed pods run too; without it the
# node runs wasm only.
cri=()
if socket=$(bash scripts/containerd.sh start); then
    cri=(--cri-socket "$socket")
else
    echo "containerd did not start; the node runs wasm pods only" >&2
fi

data=./sextant-data
"$CARGO_TARGET_DIR/release/sextant" server --data-dir "$data" "${cri[@]}" "$@" &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server; bash scripts/containerd.sh stop' INT TERM
for _ in $(seq 1 600); do
    [ -s "$data/kubeconfig.yaml" ] && break
    kill -0 $server 2>/dev/null || { echo "sextant server exited; see its log above" >&2; exit 1; }
    sleep 0.1
done
export KUBECONFIG="$(cd "$data" && pwd)/kubeconfig.yaml"
sed "s|SEXTANT_EXAMPLES|$examples_dir|" examples/hello/manifests/job.yaml | kubectl apply -f -
cat <<MSG

Sextant is running. Try:
  export KUBECONFIG=$KUBECONFIG
  kubectl get nodes
  kubectl get jobs,pods
  kubectl logs job/hello
  sed "s|SEXTANT_EXAMPLES|$CARGO_TARGET_DIR/wasm32-wasip2/debug|" examples/mixed/manifests/pod.yaml | kubectl apply -f -
    (after \`cargo build-examples\`: an OCI container and a wasm sidecar in one pod)
Stop it with Ctrl-C.
MSG
wait $server
