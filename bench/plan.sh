#!/usr/bin/env bash
# Planning cost against workspace size: generates synthetic workspaces of N library
# crates (each depending on up to three earlier ones) and 4 binaries on top, then times
# `kiln plan` for amd64 + arm64: the first run (cold: cargo tree runs) and the median
# of the next runs (memoized graphs, stat-cached files). Nothing is compiled.
# Usage: bench/plan.sh [SIZES...]   (default: 50 200 1000)
source "$(dirname "$0")/lib.sh"
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(50 200 1000)

generate() { # $1 = dir, $2 = number of library crates
    local dir=$1 n=$2
    mkdir -p "$dir"
    printf '[workspace]\nresolver = "2"\nmembers = ["crates/*"]\n' > "$dir/Cargo.toml"
    for i in $(seq 0 $((n - 1))); do
        local c="$dir/crates/lib$i"
        mkdir -p "$c/src"
        {
            printf '[package]\nname = "lib%d"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\n' "$i"
            for d in $((i - 1)) $((i / 2)) $((i / 3)); do
                if [ "$d" -ge 0 ] && [ "$d" -lt "$i" ]; then
                    printf 'lib%d = { path = "../lib%d" }\n' "$d" "$d"
                fi
            done
        } | awk '!seen[$0]++' > "$c/Cargo.toml"
        printf 'pub fn f%d() -> u64 { %d }\n' "$i" "$i" > "$c/src/lib.rs"
    done
    for b in 0 1 2 3; do
        local c="$dir/crates/bin$b"
        mkdir -p "$c/src"
        printf '[package]\nname = "bin%d"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\nlib%d = { path = "../lib%d" }\n' \
            "$b" $((n - 1 - b)) $((n - 1 - b)) > "$c/Cargo.toml"
        printf 'fn main() { println!("{}", lib%d::f%d()); }\n' $((n - 1 - b)) $((n - 1 - b)) > "$c/src/main.rs"
    done
    cargo generate-lockfile -q --manifest-path "$dir/Cargo.toml"
}

echo "kiln plan (4 binaries x amd64+arm64), seconds"
printf '  %6s  %8s  %8s  %8s\n' crates "cold" "warm" "per 1k"
for n in "${sizes[@]}"; do
    ws="$work/ws$n"
    generate "$ws" "$n"
    export KILN_CACHE_DIR="$work/cache$n"
    cold=$(timed "$kiln" plan --manifest-path "$ws/Cargo.toml")
    w=()
    for _ in 1 2 3 4 5; do w+=("$(timed "$kiln" plan --manifest-path "$ws/Cargo.toml")"); done
    warm=$(printf '%s\n' "${w[@]}" | median)
    printf '  %6d  %8.3f  %8.3f  %8.3f\n' "$n" "$cold" "$warm" "$(echo "scale=3; $warm * 1000 / $n" | bc)"
done
