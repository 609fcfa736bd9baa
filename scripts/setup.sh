#!/usr/bin/env bash
# Installs everything Sextant needs on a fresh Debian 12 machine with rustup:
# Rust targets for wasm workloads and the Debian packages the tests drive.
# Safe to run again: every step checks before it installs.
set -euo pipefail

need_targets=(wasm32-wasip1 wasm32-wasip2)
installed_targets=$(rustup target list --installed)
for t in "${need_targets[@]}"; do
    if ! grep -qx "$t" <<<"$installed_targets"; then
        rustup target add "$t"
    fi
done

# Debian packages:
# - docker-registry: a registry on loopback, where tests push wasm:// artifacts;
# - containerd, runc: the CRI runtime for OCI containers (scripts/containerd.sh starts one);
# - busybox-static: the one binary the offline test images are built from
#   (scripts/oci-images.sh), since no image can be pulled from the internet here;
# - protobuf-compiler: `protoc`, which the CRI client stubs (k8s-cri) are generated with.
need_debs=(docker-registry containerd runc busybox-static protobuf-compiler)
missing=()
for p in "${need_debs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}"
fi

# kubectl comes with this kind of machine (the tests drive the real one). Debian's own
# package is far too old (1.20) to stand in for it.
if ! command -v kubectl >/dev/null; then
    echo "kubectl (v1.30 or newer) is required on PATH; this machine image normally ships it" >&2
    exit 1
fi

if ! command -v cargo-nextest >/dev/null; then
    cargo install --locked cargo-nextest
fi
