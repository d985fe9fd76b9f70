// TCP for Node: the same frames as the WebSocket, on a plain socket.

import { connect as tcpConnect } from "node:net";
import type { Connect, Connection } from "./client.js";

/** A TCP connection to `host:port`. */
export const tcp =
  (host: string, port: number): Connect =>
  () =>
    new Promise((resolve, reject) => {
      const socket = tcpConnect({ host, port, noDelay: true });
      const connection: Connection = {
        send: (bytes) => void socket.write(bytes),
        close: () => socket.end(),
        onData: () => {},
        onClose: () => {},
      };
      let opened = false;
      socket.once("connect", () => {
        opened = true;
        resolve(connection);
      });
      socket.on("data", (chunk: Buffer) => connection.onData(new Uint8Array(chunk)));
      socket.once("error", (error) => {
        if (!opened) reject(error);
      });
      socket.once("close", () => {
        if (opened) connection.onClose("connection closed");
      });
    });
