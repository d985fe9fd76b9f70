#!/usr/bin/env bash
# The client suites: what `cargo test --workspace` cannot run because it needs more than cargo. .ci/run installs
# the packages first (Debian: protobuf-compiler, libprotobuf-dev, g++, mono-mcs, chromium; npm: clients/typescript's
# lock file); run it by hand the same way after `apt-get install` of those.
#   1. the generated tables and the built browser demo are what is committed (regenerated, then `git diff`);
#   2. the TypeScript client against the real server over TCP (Node's test runner) and the browser demo in
#      headless Chromium (two pages and the Rust chat_client example as a bot; then two pages over https and
#      wss, with a self-signed certificate openssl makes for the run);
#   3. a C++17 client from the generated header and protoc's C++ messages logs in to the real server and chats;
#   4. a C# 7 program (mono-mcs) frames a packet with the generated table and checks it against the Rust encoder's.
set -euo pipefail
cd "$(dirname "$0")/.."
ts=clients/typescript

echo "== clients: npm ci"
(cd "$ts" && npm ci --no-audit --no-fund --loglevel=error)

echo "== clients: the generated tables and the browser demo are current"
sh clients/build-tables.sh
(cd "$ts" && npx tsc -p . && npx esbuild demo/demo.ts --bundle --format=esm --target=es2020 \
    --outfile=../../server/web/demo.js --log-level=warning)
if ! git diff --exit-code -- "$ts/src/gen" clients/csharp clients/cpp server/web; then
    echo "!! the committed client tables or browser demo are stale: run clients/build-tables.sh and the TypeScript build" >&2
    exit 1
fi

echo "== clients: the server, the bot and the reference encoder"
# Target flags select targets in every package named: the server binary is named too, or it would not be rebuilt.
cargo build -q -p server --bin server -p examples --example chat_client --example frame_hex

echo "== clients: TypeScript (Node over TCP, Chromium over WebSocket, and over https + wss)"
(cd "$ts" && timeout 300 node --test --test-timeout=120000 dist/test/client.test.js dist/test/browser.test.js)

work=$(mktemp -d)
server_pid=
trap 'rm -rf "$work"; [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true' EXIT

echo "== clients: C++ (g++, protoc's C++ messages, the generated header) against the real server"
protoc --cpp_out="$work" -I demo-protocol/proto demo-protocol/proto/game.proto
g++ -std=c++17 -O1 -Wall -Wextra -I"$work" -o "$work/chat_client" clients/cpp/test/chat_client.cpp "$work/game.pb.cc" \
    -lprotobuf -pthread
# With --handshake: the C++ client must open with its hello (the generated header's `handshake::write_hello`).
target/debug/server --addr 127.0.0.1:0 --handshake > "$work/server.out" 2>/dev/null &
server_pid=$!
for _ in $(seq 100); do grep -q "^listening on" "$work/server.out" 2>/dev/null && break; sleep 0.1; done
port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$work/server.out")
fingerprint=$(sed -n 's/^protocol .* (fingerprint \([0-9a-f]*\))$/\1/p' "$work/server.out")
"$work/chat_client" 127.0.0.1 "$port" cpp-client

echo "== clients: C# (mono-mcs, C# 7) frames against the Rust encoder's"
mcs -langversion:7 -warnaserror -out:"$work/FrameCheck.exe" clients/csharp/GamePackets.cs clients/csharp/test/FrameCheck.cs
text="hello from unity"
mono "$work/FrameCheck.exe" "$(target/debug/examples/frame_hex "$text")" "$text" "$fingerprint" \
    "$(target/debug/examples/frame_hex --hello "unity client 1.0")"
echo "== clients: all passed"
