#!/usr/bin/env bash
# What sccache costs and gives on examples/chronik (amd64 + arm64), in one run, each
# build cold for kiln (new target dir, empty kiln cache):
#  - kiln's default (`auto`: sccache only with shared storage, so here without it);
#  - sccache on with an empty sccache cache (a first build, or a new machine);
#  - sccache on with a warm sccache cache (every compile a hit);
#  - plain cargo-zigbuild, the same commands kiln runs.
# Prints the medians and the ratios to kiln's default.
# Usage: bench/sccache.sh [ROUNDS]
source "$(dirname "$0")/lib.sh"
rounds=${1:-3}
command -v sccache >/dev/null || { echo "bench: sccache is not installed" >&2; exit 2; }
fresh_copy "$work/ws"
# Warm zig's own caches once so no side pays for them.
CARGO_TARGET_DIR="$work/warm" plain_build "$work/ws" >/dev/null 2>&1

kiln_cold() { # $1: KILN_SCCACHE, $2: SCCACHE_DIR
    rm -rf "$work/t" "$work/ws/artifacts" "$work/cache"
    CARGO_TARGET_DIR="$work/t" KILN_CACHE_DIR="$work/cache" KILN_SCCACHE=$1 SCCACHE_DIR=$2 \
        timed "$kiln" -q build --manifest-path "$work/ws/Cargo.toml"
}
d=(); e=(); w=(); c=()
for i in $(seq "$rounds"); do
    d+=("$(kiln_cold auto "$work/sccache-unused")")
    rm -rf "$work/sccache-$i"
    e+=("$(kiln_cold on "$work/sccache-$i")")
    w+=("$(kiln_cold on "$work/sccache-$i")")
    rm -rf "$work/t"
    c+=("$(CARGO_TARGET_DIR="$work/t" timed plain_build "$work/ws")")
done
med() { printf '%s\n' "$@" | median; }
dm=$(med "${d[@]}"); em=$(med "${e[@]}"); wm=$(med "${w[@]}"); cm=$(med "${c[@]}")
r() { echo "scale=2; $1 / $dm" | bc; }
echo "cold kiln build, examples/chronik, amd64+arm64, median of $rounds (ratio to kiln's default)"
printf '  kiln default (auto: no shared storage, off): %6.2fs\n' "$dm"
printf '  kiln, sccache on, empty sccache cache:       %6.2fs  %sx\n' "$em" "$(r "$em")"
printf '  kiln, sccache on, warm sccache cache:        %6.2fs  %sx\n' "$wm" "$(r "$wm")"
printf '  plain cargo-zigbuild:                        %6.2fs  %sx\n' "$cm" "$(r "$cm")"
