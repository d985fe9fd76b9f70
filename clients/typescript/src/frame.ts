// The frame format of docs/PROTOCOL.md: `size | id | payload`, little-endian, size including the header. The
// compact header is `u16 size | u16 id` (4 bytes), the wide one `u32 size | u16 id` (6 bytes).

/** One whole frame. */
export interface Frame {
  readonly id: number;
  readonly payload: Uint8Array;
}

/** A frame whose size field is below the header: the stream cannot be trusted any more. */
export class FrameError extends Error {}

/** The bytes of one frame. */
export function encodeFrame(headerLength: number, id: number, payload: Uint8Array): Uint8Array {
  const size = headerLength + payload.length;
  const max = headerLength === 4 ? 0xffff : 0xffffffff;
  if (size > max) throw new FrameError(`a frame of ${size} bytes does not fit the ${headerLength}-byte header`);
  const frame = new Uint8Array(size);
  const view = new DataView(frame.buffer);
  if (headerLength === 4) view.setUint16(0, size, true);
  else view.setUint32(0, size, true);
  view.setUint16(headerLength - 2, id, true);
  frame.set(payload, headerLength);
  return frame;
}

/** Reassembles frames from chunks (WebSocket messages of whole frames, or a TCP byte stream). */
export class FrameReader {
  private buffer: Uint8Array = new Uint8Array(0);

  constructor(private readonly headerLength: number) {}

  /** Adds received bytes; returns the frames they complete, in order. */
  push(chunk: Uint8Array): Frame[] {
    if (this.buffer.length === 0) {
      this.buffer = chunk;
    } else {
      const joined = new Uint8Array(this.buffer.length + chunk.length);
      joined.set(this.buffer);
      joined.set(chunk, this.buffer.length);
      this.buffer = joined;
    }
    const frames: Frame[] = [];
    let at = 0;
    while (this.buffer.length - at >= this.headerLength) {
      const view = new DataView(this.buffer.buffer, this.buffer.byteOffset + at);
      const size = this.headerLength === 4 ? view.getUint16(0, true) : view.getUint32(0, true);
      if (size < this.headerLength) throw new FrameError(`frame size ${size} is below the header length`);
      if (this.buffer.length - at < size) break;
      const id = view.getUint16(this.headerLength - 2, true);
      frames.push({ id, payload: this.buffer.slice(at + this.headerLength, at + size) });
      at += size;
    }
    this.buffer = this.buffer.slice(at);
    return frames;
  }
}
