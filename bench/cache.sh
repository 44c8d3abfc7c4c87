#!/usr/bin/env bash
# The binary cache on examples/chronik (amd64 + arm64), in one run:
#  1. no-op: `kiln build` with nothing changed vs the same cargo commands with nothing changed;
#  2. a fresh checkout with a warm kiln cache vs a cold cargo build of the same binaries.
# Usage: bench/cache.sh [ROUNDS]
source "$(dirname "$0")/lib.sh"
rounds=${1:-5}
export KILN_CACHE_DIR="$work/cache"

fresh_copy "$work/a"
"$kiln" -q build --manifest-path "$work/a/Cargo.toml"     # fills the kiln cache
plain_build "$work/a" >/dev/null 2>&1                      # and cargo's target dir
k=(); c=()
for _ in $(seq "$rounds"); do
    k+=("$(timed "$kiln" -q build --manifest-path "$work/a/Cargo.toml")")
    c+=("$(timed plain_build "$work/a")")
done
km=$(printf '%s\n' "${k[@]}" | median); cm=$(printf '%s\n' "${c[@]}" | median)
echo "no-op build, median of $rounds"
printf '  kiln build:  %6.3fs\n  plain cargo: %6.3fs\n  kiln/cargo:  %s\n' "$km" "$cm" "$(echo "scale=3; $km / $cm" | bc)"

k=(); c=()
for _ in $(seq "$rounds"); do
    fresh_copy "$work/b"
    k+=("$(timed "$kiln" -q build --manifest-path "$work/b/Cargo.toml")")
    fresh_copy "$work/b"
    c+=("$(timed plain_build "$work/b")")
done
km=$(printf '%s\n' "${k[@]}" | median); cm=$(printf '%s\n' "${c[@]}" | median)
echo "fresh checkout: kiln with a warm cache vs a cold cargo build, median of $rounds"
printf '  kiln build (restore): %6.3fs\n  cold cargo build:     %6.3fs\n  speedup:              %sx\n' "$km" "$cm" "$(echo "scale=1; $cm / $km" | bc)"
