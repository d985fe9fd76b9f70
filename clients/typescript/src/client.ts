// A typed client: `send` takes only client-to-server packets of the protocol, handlers are typed per server
// packet, both checked by tsc from the generated table (src/gen/packets.ts).

import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { encodeFrame, FrameReader } from "./frame.js";
import { CONTROL_ID, encodeHello, HandshakeError, mismatch, parseHello, type Hello } from "./handshake.js";

/** One packet of a generated table: its wire id and protobuf-es schema. */
export interface PacketEntry {
  readonly id: number;
  readonly schema: DescMessage;
}

/** The packets of one direction, by name. */
export type PacketTable = { readonly [name: string]: PacketEntry };

/** A protocol as the toolkit's build helper writes it (src/gen/packets.ts). */
export interface Protocol<C extends PacketTable, S extends PacketTable> {
  readonly PROTOCOL: string;
  readonly FINGERPRINT: string;
  readonly HEADER_LENGTH: number;
  readonly clientToServer: C;
  readonly serverToClient: S;
}

/** What carries the bytes: a WebSocket (browsers) or a TCP socket (Node, see `./node.js`). */
export interface Connection {
  send(bytes: Uint8Array): void;
  close(): void;
  /** Set by the client: called with every chunk received. */
  onData: (bytes: Uint8Array) => void;
  /** Set by the client: called once when the connection ends. */
  onClose: (reason: string) => void;
}

/** Opens a connection. */
export type Connect = () => Promise<Connection>;

/** Reconnection with exponential backoff, when the connection ends without `close()`. */
export interface Reconnect {
  /** First wait, in ms (default 100). */
  initialDelayMs?: number;
  /** Longest wait, in ms (default 5000). */
  maxDelayMs?: number;
  /** Attempts before giving up (default: forever). */
  attempts?: number;
}

/** How the client behaves; everything is off by default. */
export interface ClientOptions {
  /** Reconnect with backoff when the connection ends without `close()`. */
  reconnect?: Reconnect;
  /**
   * Open every connection with the version handshake (docs/PROTOCOL.md), with this version string: `open()` (and
   * every reconnection) completes once the server's hello matched. A server of another build is refused with an
   * error naming both fingerprints, and the client does not reconnect to it. Servers answer a hello whether or
   * not they require it (`server --handshake` does).
   */
  handshake?: string;
}

/** The message type of packet `K` of table `S` (what a handler of it receives). */
export type Received<S extends PacketTable, K extends keyof S> = MessageShape<S[K]["schema"]>;

type Handler<S extends PacketTable, K extends keyof S> = (message: Received<S, K>) => void;

/** A connected (or reconnecting) client of a toolkit server. */
export class PacketClient<C extends PacketTable, S extends PacketTable> {
  private connection: Connection | undefined;
  private readonly byId = new Map<number, { name: keyof S & string; schema: DescMessage }>();
  private readonly handlers = new Map<string, Array<(message: unknown) => void>>();
  private closedByUs = false;
  private readonly closeListeners: Array<(reason: string) => void> = [];
  private readonly openListeners: Array<() => void> = [];
  private readonly reconnect?: Reconnect;
  /** Waiting for the server's hello on the connection being opened. */
  private helloWaiter: { resolve: (hello: Hello) => void; reject: (error: Error) => void } | undefined;
  /** Set when the server turned out to run another protocol: no reconnection then. */
  private refused = false;
  /** The server's hello on the current connection, when the handshake is on. */
  serverHello: Hello | undefined;

  constructor(
    private readonly protocol: Protocol<C, S>,
    private readonly connect: Connect,
    private readonly options: ClientOptions = {},
  ) {
    this.reconnect = options.reconnect;
    for (const [name, entry] of Object.entries(protocol.serverToClient)) {
      this.byId.set(entry.id, { name: name as keyof S & string, schema: entry.schema });
    }
  }

  /** Connects; resolves once the connection is open (and, with `handshake`, once the server's hello matched). */
  async open(): Promise<void> {
    this.closedByUs = false;
    this.refused = false;
    await this.attach(await this.connect());
  }

  private async attach(connection: Connection): Promise<void> {
    const reader = new FrameReader(this.protocol.HEADER_LENGTH);
    connection.onData = (bytes) => {
      for (const frame of reader.push(bytes)) this.dispatch(frame.id, frame.payload);
    };
    connection.onClose = (reason) => this.ended(reason);
    this.connection = connection;
    const version = this.options.handshake;
    if (version !== undefined) {
      const ours: Hello = { fingerprint: this.protocol.FINGERPRINT, version };
      const answered = new Promise<Hello>((resolve, reject) => (this.helloWaiter = { resolve, reject }));
      connection.send(encodeFrame(this.protocol.HEADER_LENGTH, CONTROL_ID, encodeHello(1, ours)));
      const theirs = await answered;
      if (theirs.fingerprint !== ours.fingerprint) {
        this.refused = true;
        this.connection = undefined;
        connection.close();
        throw new HandshakeError(mismatch(ours, theirs));
      }
      this.serverHello = theirs;
    }
    for (const listener of this.openListeners) listener();
  }

  private ended(reason: string): void {
    this.connection = undefined;
    this.serverHello = undefined;
    this.helloWaiter?.reject(new HandshakeError(`the connection ended before the server's hello: ${reason}`));
    this.helloWaiter = undefined;
    for (const listener of this.closeListeners) listener(reason);
    if (!this.closedByUs && !this.refused && this.reconnect) void this.retry();
  }

  private async retry(): Promise<void> {
    const { initialDelayMs = 100, maxDelayMs = 5000, attempts = Infinity } = this.reconnect ?? {};
    let delay = initialDelayMs;
    for (let attempt = 1; attempt <= attempts && !this.closedByUs; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, delay));
      try {
        await this.attach(await this.connect());
        return;
      } catch {
        delay = Math.min(delay * 2, maxDelayMs);
      }
    }
  }

  private dispatch(id: number, payload: Uint8Array): void {
    if (id === CONTROL_ID && this.helloWaiter) {
      const waiter = this.helloWaiter;
      this.helloWaiter = undefined;
      try {
        waiter.resolve(parseHello(2, payload));
      } catch (error) {
        waiter.reject(error as Error);
      }
      return;
    }
    const entry = this.byId.get(id);
    if (!entry) throw new Error(`packet id ${id} is not a server-to-client packet of ${this.protocol.PROTOCOL}`);
    const message = fromBinary(entry.schema, payload);
    for (const handler of this.handlers.get(entry.name) ?? []) handler(message);
  }

  /** Sends a client-to-server packet; any other name does not compile. */
  send<K extends keyof C & string>(name: K, message: MessageInitShape<C[K]["schema"]>): void {
    if (!this.connection) throw new Error("not connected");
    const entry = this.protocol.clientToServer[name];
    const payload = toBinary(entry.schema, create(entry.schema, message));
    this.connection.send(encodeFrame(this.protocol.HEADER_LENGTH, entry.id, payload));
  }

  /** Calls `handler` with every `name` packet the server sends; returns a function that removes it. */
  on<K extends keyof S & string>(name: K, handler: Handler<S, K>): () => void {
    const list = this.handlers.get(name) ?? [];
    list.push(handler as (message: unknown) => void);
    this.handlers.set(name, list);
    return () => list.splice(list.indexOf(handler as (message: unknown) => void), 1);
  }

  /** Calls `listener` every time the connection opens (after a reconnection too: log in again there). */
  onOpen(listener: () => void): void {
    this.openListeners.push(listener);
  }

  /** Calls `listener` every time the connection ends, with why. */
  onClose(listener: (reason: string) => void): void {
    this.closeListeners.push(listener);
  }

  /** Whether a connection is open now. */
  get connected(): boolean {
    return this.connection !== undefined;
  }

  /** Closes for good (no reconnection). */
  close(): void {
    this.closedByUs = true;
    this.connection?.close();
  }
}

/** A WebSocket connection (browsers; Node 22 too). Every frame leaves as one binary message. */
export const webSocket =
  (url: string): Connect =>
  () =>
    new Promise((resolve, reject) => {
      const socket = new WebSocket(url);
      socket.binaryType = "arraybuffer";
      let opened = false;
      const connection: Connection = {
        send: (bytes) => socket.send(bytes),
        close: () => socket.close(),
        onData: () => {},
        onClose: () => {},
      };
      socket.onopen = () => {
        opened = true;
        resolve(connection);
      };
      socket.onmessage = (event) => connection.onData(new Uint8Array(event.data as ArrayBuffer));
      socket.onclose = (event) => {
        if (opened) connection.onClose(event.reason || `closed (${event.code})`);
        else reject(new Error(`cannot connect to ${url}`));
      };
    });
