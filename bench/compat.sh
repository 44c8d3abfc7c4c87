#!/usr/bin/env bash
# One row of docs/compatibility.md, by hand (never in CI: it fetches a project and a
# cold build takes minutes to an hour): `kiln setup && kiln build` of a public server
# workspace at a pinned commit for linux/amd64 and linux/arm64, each binary's
# --version (arm64 under qemu), then a restore from a clone at another path.
# Usage: bench/compat.sh NAME [SOURCE]
#   NAME    a row below; SOURCE a git URL or local clone of it (default: its GitHub URL)
#   COMPAT_GIT_MIRRORS  optional: a directory of mirrors named OWNER+NAME/repo; git
#                       dependencies on https://github.com/OWNER/NAME are fetched from
#                       them (for a machine without access to GitHub)
# Prints the row's figures; the kiln cache is a scratch one (the build is cold).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# name | repository | commit | kiln build arguments (features the project's docs ask
# for) | a command run first when the project can't build as committed for a reason
# outside kiln (the table says which)
rows='
rathole|https://github.com/rapiz1/rathole|0ee0157b4b9584580dde07a351982d87880f2404||cargo update -p time
static-web-server|https://github.com/static-web-server/static-web-server|4ec71cec7e993daccd88272beff03e8246b6e957||
hickory-dns|https://github.com/hickory-dns/hickory-dns|557e87d6de7de985cda7134c7718502475dd280d|-p hickory-dns|
lldap|https://github.com/lldap/lldap|9cc54ab03c5a044bfe574e30a6b6245d45c8e7b9||
sccache|https://github.com/mozilla/sccache|bf757277c5b401ff5c6629de4a165f08024352d9|--features dist-server|
garage|https://github.com/deuxfleurs-org/garage|3f4ab3a4a38e382fc54c15580862af55b0257848||
sonic|https://github.com/valeriansaliou/sonic|44ed77d8843404c6a77e45928fc4aae6e8fcb453||
lemmy|https://github.com/LemmyNet/lemmy|439734dd638a2c06a2f907beab7dcf4646e88f86||cargo add -q -p lemmy_diesel_utils pq-sys@0.7 --features bundled
'
name=${1:?usage: bench/compat.sh NAME [SOURCE]}
line=$(printf '%s\n' "$rows" | awk -F'|' -v n="$name" '$1 == n')
[ -n "$line" ] || { echo "bench/compat.sh: no row named $name" >&2; exit 2; }
IFS='|' read -r _ url commit args prepare <<<"$line"
src=${2:-$url}
cargo build --release -q -p cargo-kiln
kiln=$PWD/target/release/kiln
work=$(mktemp -d)
# Kept when something fails, for a look at the logs and the checkout.
trap 'rc=$?; if [ $rc = 0 ]; then rm -rf "$work"; else echo "bench/compat.sh: kept $work" >&2; fi' EXIT
export KILN_CACHE_DIR="$work/cache"
if [ -n "${COMPAT_GIT_MIRRORS:-}" ]; then
    # Both spellings of each repository's URL, so the longest match is always ours.
    for repo in "$COMPAT_GIT_MIRRORS"/*+*/repo; do
        id=$(basename "$(dirname "$repo")")
        for url in "https://github.com/${id%%+*}/${id#*+}" "https://github.com/${id%%+*}/${id#*+}.git"; do
            git config -f "$work/gitconfig" --add "url.$repo.insteadOf" "$url"
        done
    done
    # Submodules of a mirrored project come from mirrors too (local paths).
    git config -f "$work/gitconfig" protocol.file.allow always
    export GIT_CONFIG_GLOBAL="$work/gitconfig" CARGO_NET_GIT_FETCH_WITH_CLI=true
fi
checkout() {
    git clone -q "$src" "$1"
    git -C "$1" checkout -q "$commit"
    # As the projects' READMEs say to clone (`--recursive`).
    git -C "$1" submodule -q update --init --recursive
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
# A binary runs when `--version` or `--help` succeeds, or, for an interactive tool
# without flags, when it starts and says something before it finds no terminal (exit
# codes 126 and up mean it couldn't execute or died of a signal).
runs() {
    "$@" --version </dev/null >/dev/null 2>&1 && return
    "$@" --help </dev/null >/dev/null 2>&1 && return
    local out rc=0
    out=$("$@" </dev/null 2>&1) || rc=$?
    if [ "$rc" -lt 126 ] && [ -n "$out" ]; then
        echo "note: ${*: -1} has no --version/--help; it started and said: ${out%%$'\n'*}" >&2
        return
    fi
    echo "bench/compat.sh: ${*: -1} doesn't run (exit $rc): $out" >&2
    return 1
}
for bin in artifacts/linux/amd64/*; do
    case "$bin" in *.sha256 | *.version | *.json) continue ;; esac
    runs "$bin"
    runs qemu-aarch64-static "artifacts/linux/arm64/$(basename "$bin")"
done
checkout "$work/b"
cd "$work/b"
# shellcheck disable=SC2086
/usr/bin/time -f '%e' -o "$work/time" "$kiln" build $args
read -r restore <"$work/time"
packages=$(cargo metadata -q --format-version 1 | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["packages"]))')
printf '| %s | %s | %s | builds both arches, runs, restores | %s s | %s | %s s |\n' \
    "$name" "${commit:0:7}" "$packages" "$cold" "$peak" "$restore"
