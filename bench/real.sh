#!/usr/bin/env bash
# The real workload (by hand only, never in CI: over an hour): Chronik Stream's
# chronik-server for both arches, cold, with kiln and with plain cargo-zigbuild set up
# the way a careful user would (the workspace's own .cargo/config.toml and profiles,
# zig as C compiler, the same provisioned OpenSSL), in the same run; then a one-line
# edit in a leaf crate, and a fresh clone restoring from kiln's cache.
# Prints wall, CPU, peak memory and kiln/cargo ratios, and kiln's time breakdown.
# Usage: bench/real.sh [WORKLOAD.tar.gz] [PACKAGE]
source "$(dirname "$0")/lib.sh"
tarball=${1:-../shared/workloads/chronik-stream-058397e.tar.gz}
pkg=${2:-chronik-server}
[ -f "$tarball" ] || { echo "bench: no workload at $tarball" >&2; exit 2; }
export KILN_CACHE_DIR="$work/cache"
triples=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl)

unpack() {
    mkdir -p "$1"
    tar -xzf "$tarball" -C "$1" --strip-components=1
    git -C "$1" init -q
    git -C "$1" add -A
    git -C "$1" -c user.email=b@b -c user.name=b commit -qm workload
}
# `wall cpu peak_kib` of a command (GNU time), failing the bench when it fails:
# callers assign it (`m=$(measure ...)`) so set -e sees the failure.
measure() {
    local out
    out=$(mktemp)
    if ! /usr/bin/time -f '%e %U %S %M' -o "$out" "$@" >"$work/last.log" 2>&1; then
        echo "bench: \`$*\` failed:" >&2
        tail -40 "$work/last.log" >&2
        return 1
    fi
    awk '{printf "%s %.1f %s\n", $1, $2 + $3, $4}' "$out"
}
ratio() { echo "scale=2; $1 / $2" | bc; }

unpack "$work/ws"
"$kiln" -q setup --manifest-path "$work/ws/Cargo.toml"
# The host tools `kiln setup` installed (protoc for tonic-build) on PATH for plain cargo
# too, as a user who installed them by hand would have them.
tools=${KILN_TOOLS_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/kiln/tools}
export PATH="$tools/venv/bin:$PATH"
command -v protoc >/dev/null || { echo "bench: no protoc for plain cargo" >&2; exit 2; }

# kiln, cold: empty cache, new target dir; OpenSSL provisioning included.
m=$(measure "$kiln" build --manifest-path "$work/ws/Cargo.toml" -p "$pkg")
read -r k_wall k_cpu k_peak <<<"$m"
"$kiln" report --manifest-path "$work/ws/Cargo.toml" 2>&1 || true
# KILN_BENCH_KEEP=DIR keeps the cold build's metrics for a closer look.
[ -n "${KILN_BENCH_KEEP:-}" ] && mkdir -p "$KILN_BENCH_KEEP" && cp "$work/ws/target/kiln/metrics/last.json" "$KILN_BENCH_KEEP/kiln-cold.json"
# Provisioning beside cargo overlaps it; only what ran before cargo is on the critical path.
prov=$(jq '[.provisioning[] | select(.beside_cargo | not) | .wall_secs] | add // 0' "$work/ws/target/kiln/metrics/last.json")
prov_beside=$(jq '[.provisioning[] | select(.beside_cargo) | .wall_secs] | add // 0' "$work/ws/target/kiln/metrics/last.json")
prov_each=$(jq -r '[.provisioning[] | "\(.target) \(.wall_secs * 10 | round / 10)s"] | join(", ")' "$work/ws/target/kiln/metrics/last.json")

# Plain cargo-zigbuild, cold, one target at a time, pointed at the OpenSSL kiln built.
env_for() {
    local t=$1 up prefix
    up=$(echo "$t" | tr 'a-z-' 'A-Z_')
    prefix=$(ls -d "$KILN_CACHE_DIR"/v1/native/openssl-"$t"-* | head -1)
    echo "${up}_OPENSSL_DIR=$prefix ${up}_OPENSSL_STATIC=1"
}
unpack "$work/plain"
c_wall=0; c_cpu=0; c_peak=0
for t in "${triples[@]}"; do
    # shellcheck disable=SC2046
    m=$(measure env $(env_for "$t") CARGO_PROFILE_RELEASE_STRIP=symbols \
        cargo zigbuild --manifest-path "$work/plain/Cargo.toml" --release -p "$pkg" --bin "$pkg" --target "$t")
    read -r w c p <<<"$m"
    c_wall=$(echo "$c_wall + $w" | bc); c_cpu=$(echo "$c_cpu + $c" | bc)
    [ "$p" -gt "$c_peak" ] && c_peak=$p
done

# A one-line edit in a leaf crate of the package's graph: a workspace member it
# depends on that depends on no other member (LEAF=crate-name picks another).
leaf_name=${LEAF:-$(cd "$work/ws" && cargo metadata --format-version 1 --no-deps 2>/dev/null | jq -r --arg p "$pkg" '
    [.packages[] | {name, deps: [.dependencies[] | select(.path != null) | .name]}] as $m
    | [$m[] | select(.deps | length == 0) | .name] as $leaves
    | ($m[] | select(.name == $p) | .deps) as $direct
    | [$leaves[] | select(. as $l | $direct | index($l))] | first // empty')}
[ -n "$leaf_name" ] || { echo "bench: no leaf crate found for $pkg; set LEAF" >&2; exit 2; }
leaf=$(cd "$work/ws" && git ls-files "crates/$leaf_name/src/lib.rs" | head -1)
echo "one-line edit in $leaf_name"
echo "// edited" >>"$work/ws/$leaf"; echo "// edited" >>"$work/plain/$leaf"
m=$(measure "$kiln" build --manifest-path "$work/ws/Cargo.toml" -p "$pkg")
read -r ke_wall _ _ <<<"$m"
ce_wall=0
for t in "${triples[@]}"; do
    # shellcheck disable=SC2046
    m=$(measure env $(env_for "$t") CARGO_PROFILE_RELEASE_STRIP=symbols \
        cargo zigbuild --manifest-path "$work/plain/Cargo.toml" --release -p "$pkg" --bin "$pkg" --target "$t")
    read -r w _ _ <<<"$m"
    ce_wall=$(echo "$ce_wall + $w" | bc)
done

# A fresh clone elsewhere restores from kiln's cache.
git clone -q "$work/ws" "$work/clone"
m=$(measure env CARGO_TARGET_DIR="$work/clone-target" "$kiln" build --manifest-path "$work/clone/Cargo.toml" -p "$pkg")
read -r r_wall _ _ <<<"$m"

printf '%-34s %10s %10s %12s\n' "" "wall s" "CPU s" "peak MiB"
printf '%-34s %10s %10s %12s\n' "kiln cold (both arches)" "$k_wall" "$k_cpu" "$((k_peak / 1024))"
printf '%-34s %10s %10s %12s\n' "  of which provisioning before cargo" "$prov" "" ""
printf '%-34s %10s %10s %12s\n' "  provisioning beside cargo" "$prov_beside" "" ""
echo "  provisioning per target: $prov_each"
printf '%-34s %10s %10s %12s\n' "cargo-zigbuild cold (both arches)" "$c_wall" "$c_cpu" "$((c_peak / 1024))"
echo "cold ratio kiln/cargo: $(ratio "$k_wall" "$c_wall") including provisioning, $(ratio "$(echo "$k_wall - $prov" | bc)" "$c_wall") excluding it"
echo "one-line edit: kiln ${ke_wall}s, cargo ${ce_wall}s, ratio $(ratio "$ke_wall" "$ce_wall")"
echo "fresh clone restore: kiln ${r_wall}s, vs cargo cold ${c_wall}s: $(ratio "$c_wall" "$r_wall")x"
