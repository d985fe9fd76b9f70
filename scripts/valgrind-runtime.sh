#!/usr/bin/env bash
# Runs the network runtime's test suites under valgrind memcheck: packet-runtime's unit tests and its integration
# tests, and the `tests` crate's `runtime` integration binary (servers, sessions, shutdown over loopback, Unix sockets
# and in-memory pipes). Fails on any memory error or any definitely-lost byte.
#
# Skipped: packet-runtime's `zero_alloc` binary. It counts heap allocations through its own global allocator over
# millions of packets, which is very slow under valgrind, and it proves an allocation count, not memory safety; the
# pool and PacketPtr code it runs is covered by the `pool` and `packet_ptr` binaries here (and scripts/valgrind-pool.sh).
#
# Usage: scripts/valgrind-runtime.sh   (CARGO_TARGET_DIR defaults to /work/target-valgrind; logs in $LOG_DIR,
#        default $CARGO_TARGET_DIR/valgrind-runtime)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target-valgrind}"
# With backtraces on, the tests that panic on purpose make std load its symbolizer, whose caches (~40 MB) show up as
# "still reachable" and hide whatever else is; they are never an error, only noise.
export RUST_BACKTRACE=0
LOG_DIR="${LOG_DIR:-$CARGO_TARGET_DIR/valgrind-runtime}"
mkdir -p "$LOG_DIR"

# Test executables from cargo's JSON messages: every test-profile artifact with an executable.
executables() {
    cargo test "$@" --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if msg.get("reason") == "compiler-artifact" and msg.get("executable") and msg["profile"]["test"]:
        print(msg["target"]["name"], msg["executable"])
'
}

bins=()
while read -r name exe; do
    if [[ "$name" == zero_alloc ]]; then
        echo "skip $name (allocation counting; slow under valgrind; see the header of this script)"
        continue
    fi
    bins+=("$name=$exe")
done < <(executables -p packet-runtime --lib --tests; executables -p tests --test runtime)

status=0
for entry in "${bins[@]}"; do
    name=${entry%%=*}
    exe=${entry#*=}
    log="$LOG_DIR/$name.log"
    echo "== valgrind $name ($exe)"
    start=$(date +%s)
    if valgrind --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite --error-exitcode=1 \
        --log-file="$log" "$exe" --test-threads=1 >"$LOG_DIR/$name.out" 2>&1; then
        result=ok
    else
        result=FAILED
        status=1
    fi
    errors=$(grep -o 'ERROR SUMMARY: [0-9,]* errors' "$log" | tail -1)
    lost=$(grep -o 'definitely lost: [0-9,]* bytes in [0-9,]* blocks' "$log" | tail -1 || true)
    tests=$(grep -o 'test result: .*' "$LOG_DIR/$name.out" | tail -1 || true)
    echo "   $result in $(($(date +%s) - start)) s: $errors; ${lost:-definitely lost: 0 bytes (no leak summary: nothing lost)}; $tests"
done
exit $status
