#!/usr/bin/env bash
# Container images from existing artifacts (issue 5), in one run: `kiln image` (both
# arches, OCI layout) vs `podman build --platform linux/amd64,linux/arm64` of the
# Dockerfile `kiln dockerfile` writes for the same image. Wall time (median), peak
# memory (max RSS, GNU time) and the resulting image size per platform.
# Needs podman (see DEVELOPERS.md for its config) and GNU time.
# Usage: bench/image.sh [ROUNDS]
source "$(dirname "$0")/lib.sh"
rounds=${1:-5}
export KILN_CACHE_DIR="$work/cache"
fresh_copy "$work/ws"
"$kiln" -q build --manifest-path "$work/ws/Cargo.toml"
"$kiln" -q dockerfile --manifest-path "$work/ws/Cargo.toml"

# Seconds and max RSS (KiB) of a command: "secs kib".
measure() {
    local s e
    s=$(now)
    /usr/bin/time -f %M -o "$work/rss" "$@" >/dev/null 2>&1
    e=$(now)
    echo "$(echo "$e - $s" | bc) $(cat "$work/rss")"
}

k=(); km=(); p=(); pm=()
for i in $(seq "$rounds"); do
    # Each round starts without kiln's layer cache, so it compresses everything.
    rm -rf "$KILN_CACHE_DIR/v1/layers"
    read -r t m < <(measure "$kiln" -q image --manifest-path "$work/ws/Cargo.toml")
    k+=("$t"); km+=("$m")
    podman manifest rm "localhost/kiln-bench-$i" >/dev/null 2>&1 || true
    read -r t m < <(measure podman build -q --platform linux/amd64,linux/arm64 --manifest "localhost/kiln-bench-$i" "$work/ws")
    p+=("$t"); pm+=("$m")
done
kt=$(printf '%s\n' "${k[@]}" | median); pt=$(printf '%s\n' "${p[@]}" | median)
kmem=$(printf '%s\n' "${km[@]}" | sort -n | tail -1); pmem=$(printf '%s\n' "${pm[@]}" | sort -n | tail -1)

# Image size: compressed layers of the amd64 manifest.
layout="$work/ws/target/kiln/image"
blob() { cat "$layout/blobs/sha256/${1#sha256:}"; }
idx=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' "$layout/index.json")
kiln_size=$(blob "$idx" | python3 -c '
import json,sys,os
idx=json.load(sys.stdin); root=sys.argv[1]
m=[x for x in idx["manifests"] if x["platform"]["architecture"]=="amd64"][0]
man=json.load(open(os.path.join(root,"blobs/sha256",m["digest"][7:])))
print(sum(l["size"] for l in man["layers"]))' "$layout")
podman_size=$(podman image inspect --format '{{.Size}}' "localhost/kiln-bench-$rounds" 2>/dev/null || echo "?")
for i in $(seq "$rounds"); do podman manifest rm "localhost/kiln-bench-$i" >/dev/null 2>&1 || true; done

echo "image from existing artifacts (linux/amd64 + linux/arm64), median of $rounds"
printf '  kiln image:            %6.3fs  peak %6.1f MiB\n' "$kt" "$(echo "scale=1; $kmem / 1024" | bc)"
printf '  podman build:          %6.3fs  peak %6.1f MiB\n' "$pt" "$(echo "scale=1; $pmem / 1024" | bc)"
printf '  kiln/podman time:      %s\n' "$(echo "scale=3; $kt / $pt" | bc)"
printf '  amd64 image: kiln %s bytes compressed; podman %s bytes (uncompressed, local storage)\n' "$kiln_size" "$podman_size"
