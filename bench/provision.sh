#!/usr/bin/env bash
# OpenSSL provisioning per target: a one-binary workspace using `openssl` (not
# vendored), built cold for amd64 + arm64 with an empty kiln cache, so kiln builds a
# static musl OpenSSL for each target beside cargo. Prints the build's wall time and
# each target's provisioning time (from kiln's metrics).
# With OTHER_KILN (a kiln binary, e.g. a release build of an earlier commit in a git
# worktree), the same build runs with it too, back to back, and the ratios print.
# Usage: bench/provision.sh [OTHER_KILN]
source "$(dirname "$0")/lib.sh"
other=${1:-}

fixture() {
    rm -rf "$1"; mkdir -p "$1/src"
    printf '[package]\nname = "ssl-sha"\nversion = "0.1.0"\nedition = "2021"\n[dependencies]\nopenssl = "0.10"\n' >"$1/Cargo.toml"
    printf 'fn main() { let d = openssl::sha::sha256(b"kiln"); println!("{:02x?}", d); }\n' >"$1/src/main.rs"
}
fixture "$work/lock"
cargo generate-lockfile -q --manifest-path "$work/lock/Cargo.toml"
cargo fetch -q --manifest-path "$work/lock/Cargo.toml"

# `total x86_64_secs aarch64_secs` of a cold build with kiln binary $1.
run() {
    local ws=$work/ws-$2 t
    fixture "$ws"; cp "$work/lock/Cargo.lock" "$ws/"
    t=$(KILN_CACHE_DIR="$work/cache-$2" timed "$1" -q build --manifest-path "$ws/Cargo.toml") || return 1
    echo "$t $(jq -r '[.provisioning[] | select(.restored | not)] | sort_by(.target) | reverse | map(.wall_secs | tostring) | join(" ")' "$ws/target/kiln/metrics/last.json")"
}
# Assigned first: a failed build stops the bench (`read <<<` would hide its status).
out=$(run "$kiln" this)
read -r t a x <<<"$out"
echo "cold build with OpenSSL provisioned for both targets"
printf '  this kiln:   total %6.1fs   provisioning amd64 %6.1fs   arm64 %6.1fs\n' "$t" "$a" "$x"
if [ -n "$other" ]; then
    out=$(run "$other" other)
    read -r ot oa ox <<<"$out"
    printf '  other kiln:  total %6.1fs   provisioning amd64 %6.1fs   arm64 %6.1fs\n' "$ot" "$oa" "$ox"
    r() { echo "scale=2; $1 / $2" | bc; }
    printf '  speedup (other/this): total %sx, amd64 %sx, arm64 %sx\n' "$(r "$ot" "$t")" "$(r "$oa" "$a")" "$(r "$ox" "$x")"
fi
