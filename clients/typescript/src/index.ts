export { PacketClient, webSocket } from "./client.js";
export type { ClientOptions, Connect, Connection, PacketEntry, PacketTable, Protocol, Received, Reconnect } from "./client.js";
export { CONTROL_ID, encodeHello, HandshakeError, parseHello } from "./handshake.js";
export type { Hello } from "./handshake.js";
export { encodeFrame, FrameError, FrameReader } from "./frame.js";
export type { Frame } from "./frame.js";
