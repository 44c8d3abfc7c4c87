#!/usr/bin/env bash
# One row of docs/compatibility.md, by hand (never in CI: it fetches a project and a
# cold build takes minutes to an hour): `kiln setup && kiln build` of a public server
# workspace at a pinned commit for linux/amd64 and linux/arm64, each binary's
# --version (arm64 under qemu), then a restore from a clone at another path.
# Usage: bench/compat.sh NAME [SOURCE]
#   NAME    a row below; SOURCE a git URL or local clone of it (default: its GitHub URL)
# Prints the row's figures; the kiln cache is a scratch one (the build is cold).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# name | repository | commit | kiln build arguments (features the project's docs ask
# for) | a command run first when the project can't build as committed for a reason
# outside kiln (the table says which)
rows='
rathole|https://github.com/rapiz1/rathole|0ee0157b4b9584580dde07a351982d87880f2404||cargo update -p time
static-web-server|https://github.com/static-web-server/static-web-server|4ec71cec7e993daccd88272beff03e8246b6e957||
'
name=${1:?usage: bench/compat.sh NAME [SOURCE]}
line=$(printf '%s\n' "$rows" | awk -F'|' -v n="$name" '$1 == n')
[ -n "$line" ] || { echo "bench/compat.sh: no row named $name" >&2; exit 2; }
IFS='|' read -r _ url commit args prepare <<<"$line"
src=${2:-$url}
cargo build --release -q -p cargo-kiln
kiln=$PWD/target/release/kiln
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export KILN_CACHE_DIR="$work/cache"
checkout() {
    git clone -q "$src" "$1"
    git -C "$1" checkout -q "$commit"
    if [ -n "$prepare" ]; then (cd "$1" && $prepare); fi
}
checkout "$work/a"
cd "$work/a"
"$kiln" setup
# shellcheck disable=SC2086 # the row's arguments are words
/usr/bin/time -f '%e' -o "$work/time" "$kiln" build $args 2> >(tee "$work/cold.log" >&2)
read -r cold <"$work/time"
# The whole process tree's peak, as kiln measured it.
peak=$(sed -n 's/.*Memory peak \([0-9.]* [KMG]iB\).*/\1/p' "$work/cold.log" | tail -1)
for bin in artifacts/linux/amd64/*; do
    case "$bin" in *.sha256 | *.version | *.json) continue ;; esac
    "$bin" --version >/dev/null 2>&1 || "$bin" --help >/dev/null
    arm=artifacts/linux/arm64/$(basename "$bin")
    qemu-aarch64-static "$arm" --version >/dev/null 2>&1 || qemu-aarch64-static "$arm" --help >/dev/null
done
checkout "$work/b"
cd "$work/b"
# shellcheck disable=SC2086
/usr/bin/time -f '%e' -o "$work/time" "$kiln" build $args
read -r restore <"$work/time"
packages=$(cargo metadata -q --format-version 1 | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["packages"]))')
printf '| %s | %s | %s | builds both arches, runs, restores | %s s | %s | %s s |\n' \
    "$name" "${commit:0:7}" "$packages" "$cold" "$peak" "$restore"
