#!/usr/bin/env bash
# The remote cache (issue 7), in one run: examples/chronik's four binaries (amd64 +
# arm64) restored from a registry on loopback into an empty local cache and a fresh
# checkout, vs a cold build of the same checkout. Time (median), bytes moved, ratio.
# Needs Debian's docker-registry. Usage: bench/remote.sh [ROUNDS]
source "$(dirname "$0")/lib.sh"
rounds=${1:-5}
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/registry"
printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' "$work/registry/data" "$port" >"$work/registry/config.yml"
docker-registry serve "$work/registry/config.yml" >/dev/null 2>&1 &
registry=$!
trap 'kill $registry 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
export KILN_REMOTE_CACHE="oci+http://127.0.0.1:$port/kiln-cache"

# Fill the remote from one machine.
fresh_copy "$work/a"
KILN_CACHE_DIR="$work/cache-a" CI=true "$kiln" -q build --manifest-path "$work/a/Cargo.toml"

r=(); c=(); bytes=0
for i in $(seq "$rounds"); do
    fresh_copy "$work/b"
    r+=("$(KILN_CACHE_DIR="$work/cache-r$i" timed "$kiln" -q build --manifest-path "$work/b/Cargo.toml")")
    [ -z "$(ls "$work/b/target" 2>/dev/null | grep -vx kiln)" ] || { echo "cargo ran during a restore" >&2; exit 1; }
    bytes=$(du -sb "$work/b/artifacts" | cut -f1)
    fresh_copy "$work/b"
    c+=("$(KILN_REMOTE_CACHE=off KILN_CACHE_DIR="$work/cache-c$i" timed "$kiln" -q build --manifest-path "$work/b/Cargo.toml")")
done
rm_=$(printf '%s\n' "${r[@]}" | median); cm=$(printf '%s\n' "${c[@]}" | median)
echo "4 binaries (amd64 + arm64) into a fresh checkout with an empty local cache, median of $rounds"
printf '  restore from the registry: %6.3fs  (%s bytes in the store)\n' "$rm_" "$bytes"
printf '  cold build:                %6.3fs\n' "$cm"
printf '  cold/restore:              %sx\n' "$(echo "scale=1; $cm / $rm_" | bc)"
