#!/usr/bin/env bash
# Short, bounded fuzz run of every target on the stable toolchain.
#
#   fuzz/smoke.sh [SECONDS]        (default 20 for the frame parser, half of it for the node,
#                                   a quarter of it for each of the others: about a minute)
#
# cargo-fuzz passes nightly-only flags (-Zsanitizer=address); on a stable
# toolchain RUSTC_BOOTSTRAP=1 lets rustc accept them. Installs cargo-fuzz
# (from crates.io, into the default cargo home) if it is missing, writes the
# frame seed corpus if it is missing (the other targets' seeds are committed,
# see fuzz/README.md), builds every target once, then fuzzes each from its
# seeds for a bounded time. Exits non-zero on a crash (the input is left in
# fuzz/artifacts/<target>/). Long runs: fuzz/long.sh.
set -euo pipefail

secs="${1:-20}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
cd "$root"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "smoke: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked --quiet
fi

seeds="fuzz/seeds/frame"
if [ -z "$(ls -A "$seeds" 2>/dev/null)" ]; then
    echo "smoke: writing seed corpus to $seeds" >&2
    CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target-wire}" \
        cargo run --quiet -p ipos-wire --example write_fuzz_seeds -- "$seeds"
fi

# New inputs go to the scratch corpus (ignored by git); the seeds stay as they are.
toolchain=()
if rustup which rustc --toolchain stable >/dev/null 2>&1; then
    toolchain=(+stable)
fi
mkdir -p fuzz/corpus
RUSTC_BOOTSTRAP=1 cargo "${toolchain[@]}" fuzz build >fuzz/corpus/build.log 2>&1 || {
    tail -40 fuzz/corpus/build.log >&2
    echo "smoke: the fuzz targets do not build" >&2
    exit 1
}
# The frame parser gets the full time; the node target (two whole nodes and a
# client) half of it; the other targets (TCB, TCP segments, HTTP requests,
# server-state adverts, reassembly, endpoint, HTTP progress records) a quarter
# of it each.
quarter=$(( secs / 4 > 3 ? secs / 4 : 3 ))
half=$(( secs / 2 > 3 ? secs / 2 : 3 ))
for target in frame tcb tcp_segment http_request advert node reassembly endpoint progress; do
    t=$quarter
    [ "$target" = frame ] && t=$secs
    [ "$target" = node ] && t=$half
    mkdir -p "fuzz/corpus/$target"
    dirs=("fuzz/corpus/$target")
    [ -d "fuzz/seeds/$target" ] && dirs+=("fuzz/seeds/$target")
    log="fuzz/corpus/$target.log"
    if ! RUSTC_BOOTSTRAP=1 cargo "${toolchain[@]}" fuzz run "$target" "${dirs[@]}" -- \
        -max_total_time="$t" -print_final_stats=1 >"$log" 2>&1; then
        tail -40 "$log" >&2
        echo "smoke: target $target crashed (input in fuzz/artifacts/$target/)" >&2
        exit 1
    fi
    grep -E "^stat::number_of_executed_units" "$log" || true
    echo "smoke: $target ran ${t}s without a crash"
done
