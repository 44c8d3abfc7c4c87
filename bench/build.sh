#!/usr/bin/env bash
# Cold `kiln build` of examples/chronik (amd64 + arm64) against the plain cargo
# commands that build the same binaries the same way, run back to back, N rounds.
# Prints the median of each and kiln's overhead. Usage: bench/build.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
cargo build --release -q -p kiln
kiln=$PWD/target/release/kiln
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r examples/chronik "$work/ws"
rm -rf "$work/ws/target" "$work/ws/artifacts"
targets=(--target x86_64-unknown-linux-musl --target aarch64-unknown-linux-musl)
plain() {
    # What kiln runs: one invocation per package, symbols stripped, rust-lld for the
    # pure-Rust package, zig for the one that compiles C.
    export CARGO_PROFILE_RELEASE_STRIP=symbols
    CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld \
        cargo build -q --manifest-path "$work/ws/Cargo.toml" --profile release -p chronik-cli --bin chronik-cli "${targets[@]}"
    cargo zigbuild -q --manifest-path "$work/ws/Cargo.toml" --profile release -p chronik-server --bin chronik-server "${targets[@]}"
}
now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# Warm zig's own caches once so neither side pays for them.
CARGO_TARGET_DIR="$work/warm" plain >/dev/null 2>&1
k=(); c=()
for i in $(seq "$rounds"); do
    rm -rf "$work/t" "$work/ws/artifacts"
    s=$(now); CARGO_TARGET_DIR="$work/t" "$kiln" -q build --manifest-path "$work/ws/Cargo.toml"; e=$(now)
    k+=("$(echo "$e - $s" | bc)")
    rm -rf "$work/t"
    s=$(now); CARGO_TARGET_DIR="$work/t" plain; e=$(now)
    c+=("$(echo "$e - $s" | bc)")
done
km=$(printf '%s\n' "${k[@]}" | median)
cm=$(printf '%s\n' "${c[@]}" | median)
echo "cold build, examples/chronik, amd64+arm64, median of $rounds"
printf '  kiln build:  %6.2fs   (%s)\n' "$km" "${k[*]}"
printf '  plain cargo: %6.2fs   (%s)\n' "$cm" "${c[*]}"
echo "  ratio kiln/cargo: $(echo "scale=3; $km / $cm" | bc)  (overhead $(echo "scale=1; ($km - $cm) * 100 / $cm" | bc)%)"
