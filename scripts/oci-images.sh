#!/usr/bin/env bash
# Builds Sextant's test OCI images offline from Debian's busybox-static, as OCI image
# archives that `ctr images import` (and `skopeo`, `docker load`-compatible tools) accept:
#   sextant.local/busybox:1  — busybox with its applets linked in /bin, `sh` as the command
#   sextant.local/pause:1    — the same layer; its command sleeps until it is sent SIGTERM,
#                               which is all a pod sandbox's pause container has to do.
# Usage: scripts/oci-images.sh OUT_DIR   (writes OUT_DIR/busybox.tar and OUT_DIR/pause.tar)
set -euo pipefail
out=${1:?usage: $0 OUT_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
busybox=/bin/busybox
[[ -x $busybox ]] || busybox=/usr/bin/busybox
# ldd fails on a static executable: that is the one this image needs.
if [[ ! -x $busybox ]] || ldd "$busybox" >/dev/null 2>&1; then
    echo "a statically linked busybox is needed (apt-get install busybox-static; scripts/setup.sh does)" >&2
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
mkdir -p "$root"/{bin,tmp,etc,proc,sys,dev,root,var/log}
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
    [[ $applet == busybox ]] || ln -sf busybox "$root/bin/$applet"
done
echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
echo "root:x:0:" >"$root/etc/group"
chmod 1777 "$root/tmp"

# A reproducible layer: fixed owner and times, sorted names.
layer=$work/layer.tar
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$root" -cf "$layer" .
layer_diff=$(sha256sum "$layer" | cut -d' ' -f1)
gzip -n -9 <"$layer" >"$layer.gz"
layer_digest=$(sha256sum "$layer.gz" | cut -d' ' -f1)
layer_size=$(stat -c %s "$layer.gz")

image() { # name tag cmd-json archive
    local name=$1 tag=$2 cmd=$3 archive=$4
    local dir=$work/$tag-$RANDOM
    mkdir -p "$dir/blobs/sha256"
    cp "$layer.gz" "$dir/blobs/sha256/$layer_digest"
    local config
    config=$(printf '{"architecture":"%s","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":%s,"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
        "$(dpkg --print-architecture)" "$cmd" "$layer_diff")
    local config_digest
    config_digest=$(printf '%s' "$config" | sha256sum | cut -d' ' -f1)
    printf '%s' "$config" >"$dir/blobs/sha256/$config_digest"
    local manifest
    manifest=$(printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%d}]}' \
        "$config_digest" "${#config}" "$layer_digest" "$layer_size")
    local manifest_digest
    manifest_digest=$(printf '%s' "$manifest" | sha256sum | cut -d' ' -f1)
    printf '%s' "$manifest" >"$dir/blobs/sha256/$manifest_digest"
    printf '{"imageLayoutVersion":"1.0.0"}' >"$dir/oci-layout"
    printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"annotations":{"io.containerd.image.name":"%s:%s","org.opencontainers.image.ref.name":"%s"}}]}' \
        "$manifest_digest" "${#manifest}" "$name" "$tag" "$tag" >"$dir/index.json"
    tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$dir" -cf "$archive" .
}

image sextant.local/busybox 1 '["sh"]' "$out/busybox.tar"
image sextant.local/pause 1 '["sh","-c","trap \"exit 0\" TERM INT; while :; do sleep 3600 & wait; done"]' "$out/pause.tar"
echo "$out/busybox.tar $out/pause.tar"
