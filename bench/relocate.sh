#!/usr/bin/env bash
# Relocatable keys on examples/chronik (amd64 + arm64) with a cargo config kiln must
# override (clang linker, -fuse-ld=lld, target-cpu=native, jobs = 8), in one run:
# checkout A builds and fills the kiln cache; a clone at another path, under another
# directory name, with another HOME, CARGO_HOME and target dir restores from it.
# Compared with a cold build of the same binaries by plain cargo in the clone.
# Usage: bench/relocate.sh [ROUNDS]
source "$(dirname "$0")/lib.sh"
rounds=${1:-3}
export KILN_CACHE_DIR="$work/cache"
hostile() {
    mkdir -p "$1/.cargo"
    cat >"$1/.cargo/config.toml" <<'TOML'
[build]
jobs = 8

[target.x86_64-unknown-linux-musl]
linker = "clang"
rustflags = ["-C", "link-arg=-fuse-ld=lld", "-C", "target-cpu=native"]

[target.aarch64-unknown-linux-musl]
linker = "clang"
rustflags = ["-C", "link-arg=-fuse-ld=lld", "-C", "target-cpu=native"]
TOML
}
fresh_copy "$work/a"; hostile "$work/a"
"$kiln" -q build --manifest-path "$work/a/Cargo.toml"
rustup_home=${RUSTUP_HOME:-$HOME/.rustup}
elsewhere() {
    HOME="$work/home" CARGO_HOME="$work/cargo-home" RUSTUP_HOME="$rustup_home" \
        CARGO_TARGET_DIR="$work/other-target" "$@"
}
# Plain cargo can't link arm64 with that config on an x86_64 host: it builds the clone
# without it, cold, in a target dir of its own.
plain_cold() {
    rm -rf "$work/plain-target"
    CARGO_TARGET_DIR="$work/plain-target" plain_build "$1"
}
k=(); c=()
for _ in $(seq "$rounds"); do
    clone="$work/elsewhere/another-name"
    rm -rf "$work/elsewhere" "$work/other-target"; mkdir -p "$work/elsewhere"
    fresh_copy "$clone"; hostile "$clone"
    k+=("$(timed elsewhere "$kiln" -q build --manifest-path "$clone/Cargo.toml")")
    # The relocated clone must have restored, not built: every unit fresh now.
    if elsewhere "$kiln" plan --manifest-path "$clone/Cargo.toml" 2>&1 | grep -q rebuild; then
        echo "bench: the relocated clone did not restore everything" >&2; exit 1
    fi
    rm -rf "$work/elsewhere/plain"; fresh_copy "$work/elsewhere/plain"
    c+=("$(timed plain_cold "$work/elsewhere/plain")")
done
km=$(printf '%s\n' "${k[@]}" | median); cm=$(printf '%s\n' "${c[@]}" | median)
echo "relocated clone with kiln's overrides in effect, median of $rounds"
printf '  kiln build (restore): %6.3fs\n  cold cargo build:     %6.3fs\n  speedup:              %sx\n' "$km" "$cm" "$(echo "scale=1; $cm / $km" | bc)"
