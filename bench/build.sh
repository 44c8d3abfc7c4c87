#!/usr/bin/env bash
# Cold `kiln build` of examples/chronik (amd64 + arm64), with an empty kiln cache,
# against the plain cargo commands that build the same binaries the same way, run
# back to back, N rounds. Prints the medians and kiln's overhead.
# Usage: bench/build.sh [ROUNDS]
source "$(dirname "$0")/lib.sh"
rounds=${1:-3}
fresh_copy "$work/ws"
# Warm zig's own caches once so neither side pays for them.
CARGO_TARGET_DIR="$work/warm" plain_build "$work/ws" >/dev/null 2>&1
k=(); c=()
for i in $(seq "$rounds"); do
    rm -rf "$work/t" "$work/ws/artifacts" "$work/cache"
    k+=("$(CARGO_TARGET_DIR="$work/t" KILN_CACHE_DIR="$work/cache" timed "$kiln" -q build --manifest-path "$work/ws/Cargo.toml")")
    rm -rf "$work/t"
    c+=("$(CARGO_TARGET_DIR="$work/t" timed plain_build "$work/ws")")
done
km=$(printf '%s\n' "${k[@]}" | median)
cm=$(printf '%s\n' "${c[@]}" | median)
echo "cold build, examples/chronik, amd64+arm64, median of $rounds"
printf '  kiln build:  %6.2fs   (%s)\n' "$km" "${k[*]}"
printf '  plain cargo: %6.2fs   (%s)\n' "$cm" "${c[*]}"
echo "  ratio kiln/cargo: $(echo "scale=3; $km / $cm" | bc)  (overhead $(echo "scale=1; ($km - $cm) * 100 / $cm" | bc)%)"
