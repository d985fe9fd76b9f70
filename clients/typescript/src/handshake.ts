// The version handshake of docs/PROTOCOL.md: control frames of packet id 0, not protobuf. The client's first frame
// states its protocol fingerprint and a version string; the server answers with its own; both compare.

/** The packet id of the control frames. */
export const CONTROL_ID = 0;
/** Longest version string, in UTF-8 bytes. */
export const MAX_VERSION = 64;

/** One side's hello. */
export interface Hello {
  /** The sender's protocol fingerprint, 16 lowercase hex digits (as the generated table writes it). */
  readonly fingerprint: string;
  readonly version: string;
}

/** A handshake that failed: another build of the protocol, or a malformed answer. */
export class HandshakeError extends Error {}

/** The payload of a hello of `kind` (1: from the client, 2: from the server). The version is cut to 64 bytes. */
export function encodeHello(kind: 1 | 2, hello: Hello): Uint8Array {
  let version = new TextEncoder().encode(hello.version);
  if (version.length > MAX_VERSION) {
    // Cut at a character boundary: back off continuation bytes (10xxxxxx).
    let end = MAX_VERSION;
    while (end > 0 && (version[end] & 0xc0) === 0x80) end--;
    version = version.slice(0, end);
  }
  const payload = new Uint8Array(9 + version.length);
  payload[0] = kind;
  new DataView(payload.buffer).setBigUint64(1, BigInt(`0x${hello.fingerprint}`), true);
  payload.set(version, 9);
  return payload;
}

/** Reads a hello of `kind` from a control frame's payload. */
export function parseHello(kind: 1 | 2, payload: Uint8Array): Hello {
  if (payload.length < 9 || payload[0] !== kind) {
    throw new HandshakeError(`malformed handshake: expected a hello of kind ${kind} with its 8-byte fingerprint`);
  }
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const fingerprint = view.getBigUint64(1, true).toString(16).padStart(16, "0");
  const version = new TextDecoder("utf-8", { fatal: true }).decode(payload.subarray(9));
  return { fingerprint, version };
}

/** The reason both sides give for a mismatch, naming both fingerprints (the Rust runtime's wording). */
export function mismatch(client: Hello, server: Hello): string {
  return (
    `protocol mismatch: the client's fingerprint is ${client.fingerprint} (${JSON.stringify(client.version)}), ` +
    `the server's is ${server.fingerprint} (${JSON.stringify(server.version)})`
  );
}
