// The TypeScript client against the real demo server, over TCP (Node); the browser suite covers WebSocket.

import { test } from "node:test";
import assert from "node:assert/strict";
import { PacketClient, type Received } from "../src/client.js";
import { tcp } from "../src/node.js";
import { HandshakeError } from "../src/handshake.js";
import * as game from "../src/gen/packets.js";
import { startServer } from "./server.js";

type GameClient = PacketClient<typeof game.clientToServer, typeof game.serverToClient>;

/** Resolves with the next `name` packet `client` receives. */
function next<K extends keyof typeof game.serverToClient & string>(client: GameClient, name: K) {
  return new Promise<Received<typeof game.serverToClient, K>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${name} within 10 s`)), 10_000);
    const off = client.on(name, (message) => {
      clearTimeout(timer);
      off();
      resolve(message);
    });
  });
}

test("the generated table is the server's protocol: same fingerprint", async () => {
  const server = await startServer();
  try {
    assert.equal(game.FINGERPRINT, server.fingerprint);
  } finally {
    await server.stop();
  }
});

test("two clients log in, meet in a room and chat", async () => {
  const server = await startServer();
  const ann: GameClient = new PacketClient(game, tcp("127.0.0.1", server.port));
  const bob: GameClient = new PacketClient(game, tcp("127.0.0.1", server.port));
  try {
    await ann.open();
    await bob.open();
    const annLogin = next(ann, "S_LOGIN");
    ann.send("C_LOGIN", { name: "ann" });
    const annId = (await annLogin).playerId;
    assert.ok(annId > 0n);
    const bobLogin = next(bob, "S_LOGIN");
    bob.send("C_LOGIN", { name: "bob" });
    assert.equal((await bobLogin).success, true);

    const annIn = next(ann, "S_ENTER_ROOM");
    ann.send("C_ENTER_ROOM", { roomId: 5 });
    assert.equal((await annIn).success, true);
    const spawn = next(ann, "S_SPAWN");
    const bobIn = next(bob, "S_ENTER_ROOM");
    bob.send("C_ENTER_ROOM", { roomId: 5 });
    assert.deepEqual((await bobIn).players.map((p) => p.playerId), [annId]);
    assert.equal((await spawn).players[0].name, "bob");

    const heard = next(bob, "S_CHAT");
    ann.send("C_CHAT", { msg: "hello from TypeScript" });
    const chat = await heard;
    assert.equal(chat.playerId, annId);
    assert.equal(chat.msg, "hello from TypeScript");
  } finally {
    ann.close();
    bob.close();
    await server.stop();
  }
});

test("with reconnect on, a client comes back by itself after the server restarts", async () => {
  const first = await startServer();
  const port = first.port;
  const client: GameClient = new PacketClient(game, tcp("127.0.0.1", port), {
    reconnect: { initialDelayMs: 50, maxDelayMs: 500 },
  });
  let second: Awaited<ReturnType<typeof startServer>> | undefined;
  try {
    let opens = 0;
    const reopened = new Promise<void>((resolve) =>
      client.onOpen(() => {
        opens += 1;
        if (opens === 2) resolve();
      }),
    );
    await client.open();
    // Logged in first: the server holds the session (a connection still in the accept queue when the server
    // stops would be closed without a notice).
    const login = next(client, "S_LOGIN");
    client.send("C_LOGIN", { name: "before" });
    assert.equal((await login).success, true);
    const kicked = next(client, "S_KICK");
    await first.stop();
    assert.equal((await kicked).reason, "server shutting down", "told why before the close");
    second = await startServer(port);
    await reopened;
    const again = next(client, "S_LOGIN");
    client.send("C_LOGIN", { name: "again" });
    assert.equal((await again).success, true);
  } finally {
    client.close();
    await first.stop();
    await second?.stop();
  }
});

test("with --handshake the server admits a client that opens with its hello and kicks one that does not", async () => {
  const server = await startServer(0, ["--handshake"]);
  const polite: GameClient = new PacketClient(game, tcp("127.0.0.1", server.port), { handshake: "ts test 1.0" });
  const rude: GameClient = new PacketClient(game, tcp("127.0.0.1", server.port));
  try {
    await polite.open();
    assert.deepEqual(polite.serverHello, { fingerprint: server.fingerprint, version: "packet-demo-server 0.1.0" });
    const login = next(polite, "S_LOGIN");
    polite.send("C_LOGIN", { name: "polite" });
    assert.equal((await login).success, true);

    await rude.open();
    const kicked = next(rude, "S_KICK");
    rude.send("C_LOGIN", { name: "rude" });
    assert.match((await kicked).reason, /requires the version handshake/);
  } finally {
    polite.close();
    rude.close();
    await server.stop();
  }
});

test("a client of another build is refused before it sends anything, naming both fingerprints", async () => {
  const server = await startServer(0, ["--handshake"]);
  const otherBuild = { ...game, FINGERPRINT: "0123456789abcdef" };
  const client: GameClient = new PacketClient(otherBuild, tcp("127.0.0.1", server.port), {
    handshake: "old build",
    reconnect: { initialDelayMs: 50 },
  });
  try {
    await assert.rejects(client.open(), (error: Error) => {
      assert.ok(error instanceof HandshakeError);
      assert.match(error.message, /protocol mismatch/);
      assert.ok(error.message.includes("0123456789abcdef") && error.message.includes(server.fingerprint), error.message);
      return true;
    });
    // (The server's kick naming both is checked by the Rust suites: server/tests/game/handshake.rs.)
    assert.equal(client.connected, false, "closed, and no reconnection to a server of another build");
  } finally {
    client.close();
    await server.stop();
  }
});
