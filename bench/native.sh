#!/usr/bin/env bash
# Real-world C dependencies (issue 8): a workspace of three binaries using OpenSSL (not
# vendored), ring and zstd-sys with bindgen, built cold for amd64 + arm64, in one run:
#  1. kiln with an empty cache: includes building a static musl OpenSSL per target;
#  2. kiln on a second cold workspace (empty target dir and binary cache) that reuses the
#     provisioned OpenSSL;
#  3. the hand-made environment: the same `cargo zigbuild` commands with the variables a
#     user sets by hand (OPENSSL_DIR/OPENSSL_STATIC per target, pointing at the OpenSSL
#     from run 1, so OpenSSL's own build is not counted here), cold target dir.
# Run 2 vs 3 is kiln's overhead; run 1 minus run 2 is what provisioning costs once.
# Needs crates.io. Takes ~10 minutes on 2 cores.
source "$(dirname "$0")/lib.sh"

make_fixture() {
    local ws=$1
    rm -rf "$ws"; mkdir -p "$ws"
    printf '[workspace]\nresolver = "2"\nmembers = ["ssl-sha", "ring-sha", "zstd-rt"]\n' >"$ws/Cargo.toml"
    local p
    for p in ssl-sha ring-sha zstd-rt; do mkdir -p "$ws/$p/src"; done
    printf '[package]\nname = "ssl-sha"\nversion = "0.1.0"\nedition = "2021"\n[dependencies]\nopenssl = "0.10"\n' >"$ws/ssl-sha/Cargo.toml"
    printf 'fn main() { let d = openssl::sha::sha256(b"kiln"); println!("{:02x?}", d); }\n' >"$ws/ssl-sha/src/main.rs"
    printf '[package]\nname = "ring-sha"\nversion = "0.1.0"\nedition = "2021"\n[dependencies]\nring = "0.17"\n' >"$ws/ring-sha/Cargo.toml"
    printf 'fn main() { let d = ring::digest::digest(&ring::digest::SHA256, b"kiln"); println!("{:02x?}", d.as_ref()); }\n' >"$ws/ring-sha/src/main.rs"
    printf '[package]\nname = "zstd-rt"\nversion = "0.1.0"\nedition = "2021"\n[dependencies]\nzstd-sys = { version = "2", features = ["bindgen"] }\n' >"$ws/zstd-rt/Cargo.toml"
    printf 'fn main() { println!("{}", unsafe { zstd_sys::ZSTD_versionNumber() }); }\n' >"$ws/zstd-rt/src/main.rs"
}

make_fixture "$work/one"
cargo generate-lockfile -q --manifest-path "$work/one/Cargo.toml"
cargo fetch -q --manifest-path "$work/one/Cargo.toml"
export KILN_CACHE_DIR="$work/cache1"
t1=$(timed "$kiln" -q build --manifest-path "$work/one/Cargo.toml")

make_fixture "$work/two"; cp "$work/one/Cargo.lock" "$work/two/"
mkdir -p "$work/cache2/v1"; cp -r "$work/cache1/v1/native" "$work/cache2/v1/"
export KILN_CACHE_DIR="$work/cache2"
t2=$(timed "$kiln" -q build --manifest-path "$work/two/Cargo.toml")

make_fixture "$work/hand"; cp "$work/one/Cargo.lock" "$work/hand/"
hand() {
    local t dir
    export CARGO_PROFILE_RELEASE_STRIP=symbols
    for t in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
        dir=$(ls -d "$work"/cache1/v1/native/openssl-"$t"-*)
        v=$(echo "${t//-/_}" | tr '[:lower:]' '[:upper:]')
        export "${v}_OPENSSL_DIR"="$dir" "${v}_OPENSSL_STATIC"=1
    done
    for p in ssl-sha ring-sha zstd-rt; do
        cargo zigbuild -q --manifest-path "$work/hand/Cargo.toml" --release -p "$p" "${targets[@]}"
    done
}
s=$(now); hand >"$work/hand.log" 2>&1 || { tail -20 "$work/hand.log" >&2; exit 1; }; e=$(now); t3=$(echo "$e - $s" | bc)
for a in x86_64 aarch64; do
    test -x "$work/hand/target/$a-unknown-linux-musl/release/ssl-sha" || { echo "hand-made build failed" >&2; exit 1; }
done
test -x "$work/two/artifacts/linux/arm64/ssl-sha" || { echo "kiln build failed" >&2; exit 1; }

echo "cold build of openssl + ring + zstd-sys(bindgen), amd64 + arm64"
printf '  kiln, empty cache (provisions OpenSSL):   %7.1fs\n' "$t1"
printf '  kiln, second workspace (OpenSSL reused):  %7.1fs\n' "$t2"
printf '  hand-made env (cargo zigbuild + vars):    %7.1fs\n' "$t3"
printf '  kiln/hand-made (second workspace):        %s\n' "$(echo "scale=3; $t2 / $t3" | bc)"
printf '  one-time OpenSSL provisioning:            %7.1fs\n' "$(echo "$t1 - $t2" | bc)"
