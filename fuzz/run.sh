#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time each and exits non-zero if any
# target crashes (a panic: a broken invariant or a parse that panics). Usage:
#   fuzz/run.sh [SECONDS_PER_TARGET]      (default 20)
# Needs the nightly toolchain (skipped, exit 0, with a message when it is missing) and
# cargo-fuzz (installed with --locked when missing). Builds with `--sanitizer none`: the
# library forbids unsafe code, so what the fuzzer looks for is panics, and a build without
# AddressSanitizer is much faster. Corpora grow in fuzz/corpus/<target>, crashes land in
# fuzz/artifacts/<target>; both are ignored by git. See fuzz/README.md for longer campaigns.
set -euo pipefail

seconds="${1:-20}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
    echo "fuzz/run.sh: SECONDS_PER_TARGET must be a positive integer, not '$seconds'" >&2
    exit 2
fi
cd "$(dirname "$0")"

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz/run.sh: SKIPPED: the nightly toolchain is not installed (rustup toolchain install nightly)"
    exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz/run.sh: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

build_started=$(date +%s)
cargo +nightly fuzz build --sanitizer none
echo "fuzz/run.sh: built in $(( $(date +%s) - build_started )) s"

failed=()
for target in $(cargo +nightly fuzz list); do
    mkdir -p "corpus/$target"
    echo "fuzz/run.sh: $target for $seconds s"
    if ! cargo +nightly fuzz run --sanitizer none "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1; then
        failed+=("$target")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz/run.sh: CRASHED: ${failed[*]}; inputs in fuzz/artifacts/<target>/ (replay one with" \
        "cargo +nightly fuzz run --sanitizer none <target> <file>)" >&2
    exit 1
fi
echo "fuzz/run.sh: every target ran $seconds s without a crash"
