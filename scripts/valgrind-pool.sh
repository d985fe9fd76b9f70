#!/usr/bin/env bash
# Runs the pool and PacketPtr tests under valgrind memcheck: fails on any memory error or definitely-lost byte.
# Usage: scripts/valgrind-pool.sh   (CARGO_TARGET_DIR defaults to /work/target-pool)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target-pool}"
for test in pool packet_ptr; do
    bin=$(cargo test -p packet-runtime --test "$test" --no-run --message-format=json 2>/dev/null \
        | grep -o '"executable":"[^"]*"' | cut -d'"' -f4 | tail -1)
    echo "== valgrind $bin"
    valgrind --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=1 --quiet \
        "$bin" --test-threads=1
done
