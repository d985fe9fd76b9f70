// Compile-time checks: `tsc` fails this file if any `@ts-expect-error` line compiles (an unused directive is an
// error), so a protocol whose `send` accepted a server packet, or whose handlers were untyped, breaks the build.

import { PacketClient } from "../src/client.js";
import * as game from "../src/gen/packets.js";

export function refusals(client: PacketClient<typeof game.clientToServer, typeof game.serverToClient>): void {
  client.send("C_CHAT", { msg: "fine" });
  // @ts-expect-error a server-to-client packet cannot be sent
  client.send("S_CHAT", { playerId: 1n, msg: "no" });
  // @ts-expect-error a field the packet does not have
  client.send("C_CHAT", { text: "no" });
  client.on("S_CHAT", (chat) => {
    const text: string = chat.msg;
    // @ts-expect-error handlers are typed per packet: S_CHAT has no `reason`
    void chat.reason;
    void text;
  });
  // @ts-expect-error clients do not receive client-to-server packets
  client.on("C_LOGIN", () => {});
}
