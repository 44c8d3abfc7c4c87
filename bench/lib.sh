# Shared by the bench scripts: builds kiln (release), makes a scratch dir, and
# defines the plain-cargo equivalent of `kiln build` on examples/chronik.
set -euo pipefail
# kiln runs with its defaults (sccache only with shared storage: bench/sccache.sh
# measures it on and off).
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release -q -p cargo-kiln
kiln=$PWD/target/release/kiln
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
targets=(--target x86_64-unknown-linux-musl --target aarch64-unknown-linux-musl)

# What kiln runs for workspace $1: one invocation per package, symbols stripped, zig
# for both (the workspace compiles C, so kiln builds all of it with one backend).
plain_build() {
    export CARGO_PROFILE_RELEASE_STRIP=symbols
    local p
    for p in chronik-cli chronik-server; do
        cargo zigbuild -q --manifest-path "$1/Cargo.toml" --profile release -p "$p" --bin "$p" "${targets[@]}"
    done
}

now() { date +%s.%N; }
# Seconds a command takes, its output discarded; a command that fails stops the
# bench with its output (a ratio from a failed run means nothing).
timed() {
    local s e out
    s=$(now)
    if ! out=$("$@" 2>&1); then
        printf 'bench: `%s` failed:\n%s\n' "$*" "$out" >&2
        return 1
    fi
    e=$(now)
    echo "$e - $s" | bc
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# A copy of examples/chronik's sources at $1.
fresh_copy() { rm -rf "$1"; cp -r examples/chronik "$1"; rm -rf "$1/target" "$1/artifacts"; }
