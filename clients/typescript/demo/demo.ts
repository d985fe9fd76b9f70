// The browser demo of the demo game: log in, enter a room, see the others as dots that move (arrow keys, or a click
// on the field, send C_MOVE), chat. What it shows is in the DOM for tests: one `.player` element per player with
// `data-player-id`, `data-x` and `data-y`; one `li` per chat line in `#chat` with `data-from`.

import { PacketClient, webSocket } from "../src/client.js";
import * as game from "../src/gen/packets.js";

type Players = Map<bigint, { name: string; x: number; y: number }>;

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const field = $<HTMLDivElement>("field");
const status = $<HTMLSpanElement>("status");
const players: Players = new Map();
const names = new Map<bigint, string>();
let me = 0n;
const STEP = 10;
const SIZE = 400;

function draw(): void {
  for (const element of Array.from(field.querySelectorAll(".player"))) {
    if (!players.has(BigInt((element as HTMLElement).dataset.playerId ?? "0"))) element.remove();
  }
  for (const [id, player] of players) {
    let dot = field.querySelector<HTMLDivElement>(`.player[data-player-id="${id}"]`);
    if (!dot) {
      dot = document.createElement("div");
      dot.className = id === me ? "player me" : "player";
      dot.dataset.playerId = String(id);
      dot.title = player.name;
      dot.textContent = player.name.slice(0, 2);
      field.append(dot);
    }
    dot.dataset.x = String(player.x);
    dot.dataset.y = String(player.y);
    dot.style.left = `${player.x}px`;
    dot.style.top = `${player.y}px`;
  }
}

function say(from: bigint, text: string): void {
  const line = document.createElement("li");
  line.dataset.from = String(from);
  line.textContent = `${names.get(from) ?? `#${from}`}: ${text}`;
  $("chat").append(line);
}

// The handshake is always on: every server answers it, and one run with `--handshake` requires it.
const client = new PacketClient(game, webSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`), {
  reconnect: { initialDelayMs: 200, maxDelayMs: 5000 },
  handshake: "browser demo 0.1.0",
});

client.on("S_LOGIN", (login) => {
  if (!login.success) {
    status.textContent = `login refused: ${login.reason}`;
    return;
  }
  me = login.playerId;
  document.body.dataset.playerId = String(me);
  status.textContent = `logged in as #${me}`;
  client.send("C_ENTER_ROOM", { roomId: Number($<HTMLInputElement>("room").value) });
});
client.on("S_ENTER_ROOM", (room) => {
  if (!room.success) return;
  if (!room.alreadyInRoom && !room.more) {
    document.body.dataset.room = String(room.roomId);
  }
  for (const p of room.players) {
    names.set(p.playerId, p.name);
    players.set(p.playerId, { name: p.name, x: p.pos?.x ?? 0, y: p.pos?.y ?? 0 });
  }
  const mine = players.get(me) ?? { name: $<HTMLInputElement>("name").value, x: 0, y: 0 };
  names.set(me, mine.name);
  players.set(me, mine);
  status.textContent = `in room ${room.roomId}`;
  draw();
});
client.on("S_SPAWN", (spawn) => {
  for (const p of spawn.players) {
    names.set(p.playerId, p.name);
    players.set(p.playerId, { name: p.name, x: p.pos?.x ?? 0, y: p.pos?.y ?? 0 });
  }
  draw();
});
client.on("S_DESPAWN", (despawn) => {
  for (const id of despawn.playerIds) players.delete(id);
  draw();
});
client.on("S_MOVE", (move) => {
  const player = players.get(move.playerId);
  if (player && move.pos) {
    player.x = move.pos.x;
    player.y = move.pos.y;
    draw();
  }
});
client.on("S_CHAT", (chat) => say(chat.playerId, chat.msg));
client.on("S_KICK", (kick) => (status.textContent = `kicked: ${kick.reason}`));
client.onClose((reason) => (status.textContent = `disconnected (${reason}); reconnecting`));

function moveTo(x: number, y: number): void {
  const mine = players.get(me);
  if (!mine) return;
  mine.x = Math.max(0, Math.min(SIZE, x));
  mine.y = Math.max(0, Math.min(SIZE, y));
  client.send("C_MOVE", { pos: { x: mine.x, y: mine.y, z: 0, yaw: 0 } });
  draw();
}

// A server that checks login tokens (`--auth-secret-file`) and runs `--dev-tokens` hands one out for any name
// (development only); elsewhere the endpoint is a 404 and the login goes without a token.
async function logIn(): Promise<void> {
  const name = $<HTMLInputElement>("name").value;
  const response = await fetch(`/dev-token?name=${encodeURIComponent(name)}`).catch(() => undefined);
  const token = response?.ok ? await response.text() : "";
  client.send("C_LOGIN", { name, token });
}

$<HTMLFormElement>("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!client.connected) await client.open();
  await logIn();
});
client.onOpen(() => {
  // After a reconnection: log in again as the same player name.
  if (me !== 0n) void logIn();
});
$<HTMLFormElement>("say").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = $<HTMLInputElement>("line");
  if (input.value) client.send("C_CHAT", { msg: input.value });
  input.value = "";
});
document.addEventListener("keydown", (event) => {
  if ((event.target as HTMLElement).tagName === "INPUT") return;
  const mine = players.get(me);
  if (!mine) return;
  const moves: Record<string, [number, number]> = {
    ArrowLeft: [-STEP, 0],
    ArrowRight: [STEP, 0],
    ArrowUp: [0, -STEP],
    ArrowDown: [0, STEP],
  };
  const step = moves[event.key];
  if (step) {
    event.preventDefault();
    moveTo(mine.x + step[0], mine.y + step[1]);
  }
});
field.addEventListener("click", (event) => {
  const box = field.getBoundingClientRect();
  moveTo(Math.round(event.clientX - box.left), Math.round(event.clientY - box.top));
});
