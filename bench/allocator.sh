#!/usr/bin/env bash
# The allocator of shipped binaries, measured: a broker-like fixture (threads building
# and dropping small strings, maps and payloads, some kept in flight) built four ways
# in the same run:
#   native   host glibc `cargo build --release` (the reference: what a Docker build
#            on debian runs)
#   musl     kiln's default static musl binary (musl's malloc)
#   mimalloc kiln's static musl binary with `allocator = "mimalloc"`
#   glibc    kiln's glibc target (`amd64-gnu`, glibc 2.28, dynamic)
# Prints throughput (median of REPS runs) for 1, 2 and 8 threads and each ratio to
# native. Usage: bench/allocator.sh [REPS]
source "$(dirname "$0")/lib.sh"
reps=${1:-3}
export KILN_CACHE_DIR="$work/cache"
ws="$work/broker"
mkdir -p "$ws/src"
cat >"$ws/Cargo.toml" <<'EOF'
[package]
name = "broker"
version = "0.1.0"
edition = "2021"
publish = false

[workspace]
EOF
cat >"$ws/src/main.rs" <<'EOF'
//! A message broker's request path, as an allocator sees it: per request a few
//! header strings in a map, a topic name and a payload of 16 B..2 KiB; the last 256
//! payloads stay in flight, an older one is freed for each new one.
use std::collections::HashMap;
use std::time::Instant;

const ROUNDS: u64 = 400_000;

fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

fn requests(seed: u64) -> u64 {
    let mut x = seed | 1;
    let mut sum = 0u64;
    let mut in_flight: Vec<Vec<u8>> = Vec::with_capacity(256);
    for r in 0..ROUNDS {
        let mut headers: HashMap<String, String> = HashMap::with_capacity(4);
        for h in 0..4 {
            headers.insert(format!("h{h}-{}", next(&mut x) % 1000), format!("v{}", next(&mut x) % 97));
        }
        let n = next(&mut x);
        let payload = vec![(n & 0xff) as u8; 16 + (n % 2048) as usize];
        let topic = format!("topic-{}", r % 64);
        sum = sum.wrapping_add((payload.len() + topic.len() + headers.len()) as u64);
        if in_flight.len() == 256 {
            in_flight.swap_remove((n % 256) as usize);
        }
        in_flight.push(payload);
    }
    sum
}

fn main() {
    let threads: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1);
    let t0 = Instant::now();
    let handles: Vec<_> = (0..threads).map(|t| std::thread::spawn(move || requests(t + 1))).collect();
    let sum: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let secs = t0.elapsed().as_secs_f64();
    println!("{:.0} {sum}", (threads * ROUNDS) as f64 / secs);
}
EOF
git -C "$ws" init -q && git -C "$ws" add -A && git -C "$ws" -c user.email=b@b -c user.name=b commit -qm fixture
mkdir -p "$work/bin"

# The four builds (each must succeed: a ratio from a failed build means nothing).
cargo build -q --release --manifest-path "$ws/Cargo.toml" --target-dir "$work/native-target"
cp "$work/native-target/release/broker" "$work/bin/native"
"$kiln" -q build --manifest-path "$ws/Cargo.toml" --target amd64
cp "$ws/artifacts/linux/amd64/broker" "$work/bin/musl"
printf '\n[workspace.metadata.kiln]\nallocator = "mimalloc"\n' >>"$ws/Cargo.toml"
"$kiln" -q build --manifest-path "$ws/Cargo.toml" --target amd64
cp "$ws/artifacts/linux/amd64/broker" "$work/bin/mimalloc"
"$kiln" -q build --manifest-path "$ws/Cargo.toml" --target amd64-gnu
cp "$ws/artifacts/linux/amd64/broker" "$work/bin/glibc"
cmp -s "$work/bin/musl" "$work/bin/mimalloc" && { echo "bench: the mimalloc build is the default one" >&2; exit 1; }

# Requests per second: the median of $reps runs.
throughput() {
    local _ out
    for _ in $(seq "$reps"); do
        out=$("$work/bin/$1" "$2") || { echo "bench: $1 $2 failed" >&2; return 1; }
        echo "${out%% *}"
    done | median
}
ratio() { echo "scale=2; $1 / $2" | bc; }

printf '%-8s %8s %14s %8s\n' "build" "threads" "requests/s" "vs native"
for t in 1 2 8; do
    ref=$(throughput native "$t")
    printf '%-8s %8s %14s %8s\n' native "$t" "$ref" "1.00"
    for b in musl mimalloc glibc; do
        v=$(throughput "$b" "$t")
        printf '%-8s %8s %14s %8s\n' "$b" "$t" "$v" "$(ratio "$v" "$ref")"
    done
done
