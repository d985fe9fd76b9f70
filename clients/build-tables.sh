#!/usr/bin/env sh
# Regenerates every client's packet table from demo-protocol/proto/game.proto: protobuf-es's messages and the
# toolkit's table for TypeScript, the table and frame codec for C# and C++. Needs protoc (Debian's
# protobuf-compiler) and `npm ci` in clients/typescript. .ci/run (through clients/run-tests.sh) runs it and fails
# when the committed copies differ.
set -eu
cd "$(dirname "$0")/.."
proto=demo-protocol/proto
ts=clients/typescript
protoc --plugin=protoc-gen-es="$ts/node_modules/.bin/protoc-gen-es" --es_out="$ts/src/gen" \
    --es_opt=target=ts,import_extension=js -I "$proto" "$proto/game.proto"
cargo run -q -p packet-build --bin packet-tables -- "$proto/game.proto" --include "$proto" --protocol GameProtocol \
    --ts "$ts/src/gen/packets.ts" --cs clients/csharp/GamePackets.cs --cpp clients/cpp/game_packets.hpp
