#!/usr/bin/env bash
# The binary cache on examples/chronik (amd64 + arm64), in one run:
#  1. no-op: `kiln build` with nothing changed vs the same cargo commands with nothing changed;
#  2. a fresh checkout with a warm kiln cache vs a cold cargo build of the same binaries.
# Usage: bench/cache.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
cargo build --release -q -p kiln
kiln=$PWD/target/release/kiln
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export KILN_CACHE_DIR="$work/cache"
targets=(--target x86_64-unknown-linux-musl --target aarch64-unknown-linux-musl)
cargo_build() { # $1 = workspace
    export CARGO_PROFILE_RELEASE_STRIP=symbols
    CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld \
        cargo build -q --manifest-path "$1/Cargo.toml" --profile release -p chronik-cli --bin chronik-cli "${targets[@]}"
    cargo zigbuild -q --manifest-path "$1/Cargo.toml" --profile release -p chronik-server --bin chronik-server "${targets[@]}"
}
now() { date +%s.%N; }
t() { local s e; s=$(now); "$@" >/dev/null 2>&1; e=$(now); echo "$e - $s" | bc; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
fresh_copy() { rm -rf "$1"; cp -r examples/chronik "$1"; rm -rf "$1/target" "$1/artifacts"; }

fresh_copy "$work/a"
"$kiln" -q build --manifest-path "$work/a/Cargo.toml"     # fills the kiln cache
cargo_build "$work/a" >/dev/null 2>&1                      # and cargo's target dir
k=(); c=()
for _ in $(seq "$rounds"); do
    k+=("$(t "$kiln" -q build --manifest-path "$work/a/Cargo.toml")")
    c+=("$(t cargo_build "$work/a")")
done
km=$(printf '%s\n' "${k[@]}" | median); cm=$(printf '%s\n' "${c[@]}" | median)
echo "no-op build, median of $rounds"
printf '  kiln build:  %6.3fs\n  plain cargo: %6.3fs\n  kiln/cargo:  %s\n' "$km" "$cm" "$(echo "scale=3; $km / $cm" | bc)"

k=(); c=()
for _ in $(seq "$rounds"); do
    fresh_copy "$work/b"
    k+=("$(t "$kiln" -q build --manifest-path "$work/b/Cargo.toml")")
    fresh_copy "$work/b"
    c+=("$(t cargo_build "$work/b")")
done
km=$(printf '%s\n' "${k[@]}" | median); cm=$(printf '%s\n' "${c[@]}" | median)
echo "fresh checkout: kiln with a warm cache vs a cold cargo build, median of $rounds"
printf '  kiln build (restore): %6.3fs\n  cold cargo build:     %6.3fs\n  speedup:              %sx\n' "$km" "$cm" "$(echo "scale=1; $cm / $km" | bc)"
