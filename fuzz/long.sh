#!/usr/bin/env bash
# Long fuzz run of every cargo-fuzz target (not part of CI):
#
#   fuzz/long.sh [MILLIONS] [TARGET...]     (default 10 million executions, every target)
#
# Runs each target for MILLIONS million executions (libFuzzer -runs=) from its
# seed corpus (fuzz/seeds/<target>) and the scratch corpus (fuzz/corpus/<target>,
# ignored by git, where new inputs go), one after another, then prints one line
# per target: executions, exec/s, new coverage (units added to the corpus, and
# the coverage counters libFuzzer reports at the end), crashes. A crashing input
# is left in fuzz/artifacts/<target>/. Exits non-zero when any target crashed.
#
# Environment: JOBS=N runs N targets at once (default 1; the machine is shared),
# NICE=N runs the fuzzers under `nice -n N` (default 10), SANITIZER=none|address
# (default none: the fuzzed code has no `unsafe`, and AddressSanitizer makes the
# node target ten times slower; debug assertions and overflow checks stay on; see
# fuzz/README.md), LOGDIR (default fuzz/corpus/long-logs). Builds go to
# fuzz/target-long, so that they do not undo fuzz/smoke.sh's. MAX_TIME=S stops a
# target after S seconds even if it has not made its executions (libFuzzer
# -max_total_time; the table says how many it made). MAX_LEN=B caps an input's
# length (libFuzzer -max_len): the node target's seeds are at most 334 bytes,
# and a corpus grown without a cap fills with long inputs that run twenty times
# slower. TRACE_COMPARES=0 builds
# without comparison tracing (`cargo fuzz build --no-trace-compares`): the node
# target spends half its time in it and runs about 1.7x faster without, at
# about the same coverage per minute. Like fuzz/smoke.sh, it builds on stable
# Rust with RUSTC_BOOTSTRAP=1.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
cd "$root"

millions="${1:-10}"
shift || true
all=(frame tcb tcp_segment http_request advert node reassembly endpoint progress)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")
runs=$(( millions * 1000000 ))
jobs="${JOBS:-1}"
nice_n="${NICE:-10}"
sanitizer="${SANITIZER:-none}"
build_flags=()
[ "${TRACE_COMPARES:-1}" = 0 ] && build_flags+=(--no-trace-compares)
target_dir=fuzz/target-long
logdir="${LOGDIR:-fuzz/corpus/long-logs}"
mkdir -p "$logdir"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "long: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked --quiet
fi
toolchain=()
if rustup which rustc --toolchain stable >/dev/null 2>&1; then
    toolchain=(+stable)
fi
if [ -z "$(ls -A fuzz/seeds/frame 2>/dev/null)" ]; then
    CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target-wire}" \
        cargo run --quiet -p ipos-wire --example write_fuzz_seeds -- fuzz/seeds/frame
fi

echo "long: building ${targets[*]} (sanitizer $sanitizer)" >&2
for t in "${targets[@]}"; do
    RUSTC_BOOTSTRAP=1 nice -n "$nice_n" cargo "${toolchain[@]}" fuzz build -s "$sanitizer" "${build_flags[@]}" --target-dir "$target_dir" "$t" \
        >"$logdir/build-$t.log" 2>&1 || { tail -20 "$logdir/build-$t.log" >&2; exit 1; }
done

run_one() {
    local t="$1"
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    local dirs=("fuzz/corpus/$t")
    [ -d "fuzz/seeds/$t" ] && dirs+=("fuzz/seeds/$t")
    local start end rc=0
    local limit=()
    [ -n "${MAX_TIME:-}" ] && limit=(-max_total_time="$MAX_TIME")
    [ -n "${MAX_LEN:-}" ] && limit+=(-max_len="$MAX_LEN")
    start=$(date +%s)
    # `cargo fuzz run` rebuilds nothing here (built above) and runs the binary.
    RUSTC_BOOTSTRAP=1 nice -n "$nice_n" cargo "${toolchain[@]}" fuzz run -s "$sanitizer" "${build_flags[@]}" --target-dir "$target_dir" "$t" \
        "${dirs[@]}" -- -runs="$runs" "${limit[@]}" -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" \
        >"$logdir/$t.log" 2>&1 || rc=$?
    end=$(date +%s)
    echo "$rc $((end - start))" >"$logdir/$t.status"
}

pids=()
for t in "${targets[@]}"; do
    echo "long: $t: $millions M executions (log $logdir/$t.log)" >&2
    run_one "$t" &
    pids+=($!)
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
        wait -n || true
    done
done
wait

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
status=0
printf '%-13s %12s %8s %9s %8s %7s %7s %8s\n' target executions exec/s new_units cov ft seconds crashes
for t in "${targets[@]}"; do
    log="$logdir/$t.log"
    read -r rc secs <"$logdir/$t.status"
    execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}' | tail -1)
    rate=$(grep -E '^stat::average_exec_per_sec' "$log" | awk '{print $2}' | tail -1)
    added=$(grep -E '^stat::new_units_added' "$log" | awk '{print $2}' | tail -1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
    ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
    crashes=0
    if [ "$rc" != 0 ]; then
        crashes=1
        status=1
    fi
    printf '%-13s %12s %8s %9s %8s %7s %7s %8s\n' "$t" "${execs:-?}" "${rate:-?}" "${added:-?}" \
        "${cov:-?}" "${ft:-?}" "$secs" "$crashes"
    if [ "$rc" != 0 ]; then
        grep -E 'panicked at|SUMMARY|Test unit written' -A2 "$log" | head -12 >&2 || true
    fi
done
echo "long: commit $commit, $millions M executions per target, sanitizer $sanitizer, trace compares ${TRACE_COMPARES:-1}, max_len ${MAX_LEN:-default}"
exit "$status"
