#!/usr/bin/env bash
# Every kill point of every command in the reliability suite (CI samples 4 per
# command): kiln build, kiln image --output oci:DIR, kiln release, kiln cache push
# and pull,
# each killed before every rename and fsync of its own files, then checked and
# recovered. Needs root (tmpfs) and strace. Prints each test's time.
#
#   bash bench/faults.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v strace >/dev/null || { echo "faults.sh: needs strace (apt-get install strace)" >&2; exit 4; }
cargo build -q -p cargo-kiln --tests --locked
for t in a_build_killed a_push_killed a_pull_killed an_image_killed a_release_killed; do
    start=$SECONDS
    # A failing sweep fails the script, with cargo's output.
    if ! out=$(KILN_FAULTS_ALL=1 cargo test -q -p cargo-kiln --locked --test it -- "reliability::$t" --nocapture 2>&1); then
        echo "$out" | tail -40 >&2
        echo "faults: $t failed" >&2
        exit 1
    fi
    echo "$out" | grep -E 'kill points|test result'
    echo "faults: $t took $((SECONDS - start)) s"
done
