#!/usr/bin/env bash
# The test command: installs what is missing, then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
# A containerd of the tests' own, on a private socket, with offline images: the OCI tests
# (wasm-kubelet's CRI client, sextant's OCI and mixed pods) find it through this variable.
SEXTANT_CRI_SOCKET=$(bash scripts/containerd.sh start)
export SEXTANT_CRI_SOCKET
trap 'bash scripts/containerd.sh stop' EXIT
cargo build --workspace --all-targets
cargo nextest run --workspace --no-fail-fast "$@"
