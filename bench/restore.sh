#!/usr/bin/env bash
# Restore time vs package count: a clone at another path, with a warm kiln cache,
# installs its binaries without compiling. Compared in the same run with the fastest
# thing cargo can do on the same workspace: on the example a no-op build of an
# already built tree (what a CI job without kiln would hope for at best); on a real
# workload `cargo metadata` (the floor of any cargo-based tool: a cargo no-op there
# needs its own cold build first, 20+ minutes).
#  1. examples/chronik (both arches);
#  2. with WORKLOAD (a .tar.gz of a real workspace, e.g. ../shared/workloads/
#     chronik-stream-*.tar.gz) and PACKAGE: that package for linux/amd64. The first
#     build is cold and takes minutes (20+ on 2 cores); run it by hand, never in CI.
# Usage: bench/restore.sh [ROUNDS] [WORKLOAD PACKAGE]
source "$(dirname "$0")/lib.sh"
rounds=${1:-5}
export KILN_CACHE_DIR="$work/cache"

# $1 label, $2 package count, $3 restore seconds, $4 what it is compared with, $5 its seconds.
report() {
    local label=$1 n=$2 km=$3 what=$4 cm=$5
    printf '%-28s %5s packages  restore %6.3fs  %s %6.3fs  ratio %s\n' \
        "$label" "$n" "$km" "$what" "$cm" "$(echo "scale=2; $km / $cm" | bc)"
}
packages() { cargo metadata -q --format-version 1 --manifest-path "$1/Cargo.toml" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["packages"]))'; }

fresh_copy "$work/a"
"$kiln" -q build --manifest-path "$work/a/Cargo.toml"
plain_build "$work/a" >/dev/null 2>&1
k=(); c=()
for _ in $(seq "$rounds"); do
    fresh_copy "$work/b"
    k+=("$(timed "$kiln" -q build --manifest-path "$work/b/Cargo.toml")")
    c+=("$(timed plain_build "$work/a")")
done
report examples/chronik "$(packages "$work/a")" \
    "$(printf '%s\n' "${k[@]}" | median)" "cargo no-op" "$(printf '%s\n' "${c[@]}" | median)"

if [ $# -ge 3 ]; then
    workload=$2 package=$3
    unpack() { rm -rf "$1"; mkdir -p "$1"; tar -xzf "$workload" -C "$1" --strip-components 1; git -C "$1" init -q; git -C "$1" add -A; git -C "$1" -c user.email=b@b -c user.name=b commit -qm w; }
    unpack "$work/w1"
    "$kiln" setup --manifest-path "$work/w1/Cargo.toml" >/dev/null
    echo "cold build of $package (linux/amd64), once: minutes" >&2
    "$kiln" -q build --manifest-path "$work/w1/Cargo.toml" -p "$package" --target amd64
    plain() { cargo metadata -q --format-version 1 --manifest-path "$work/w2/Cargo.toml" >/dev/null; }
    k=(); c=()
    for _ in $(seq "$rounds"); do
        unpack "$work/w2"
        k+=("$(timed "$kiln" -q build --manifest-path "$work/w2/Cargo.toml" -p "$package" --target amd64)")
        c+=("$(timed plain)")
    done
    report "$(basename "$workload" .tar.gz)" "$(packages "$work/w1")" \
        "$(printf '%s\n' "${k[@]}" | median)" "cargo metadata" "$(printf '%s\n' "${c[@]}" | median)"
fi
