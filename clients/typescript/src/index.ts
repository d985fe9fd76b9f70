export { PacketClient, webSocket } from "./client.js";
export type { Connect, Connection, PacketEntry, PacketTable, Protocol, Received, Reconnect } from "./client.js";
export { encodeFrame, FrameError, FrameReader } from "./frame.js";
export type { Frame } from "./frame.js";
