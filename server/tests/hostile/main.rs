//! Hostile input and faults against the demo game server over loopback: the real `Game` and `GameIo`, started
//! in-process through `ServerOptions` on `127.0.0.1:0`, attacked with raw bytes and misbehaving sockets.
//!
//! Every scenario ends the same way (see `support::Scenario::finish`): exactly the offending session closed, with
//! the documented `CloseKind` counted in the server's metrics; an `S_KICK` naming the fault where the frame boundary
//! is known; a fresh client still gets `S_PONG` for its `C_PING`; and once everyone is gone the `ShutdownReport`
//! says 0 pool blocks outstanding.
//!
//! Every wait is on an event (a packet, a close, a counter) under a 30 s guard; sleeps only appear as the scenario
//! itself (staying silent past an idle timeout).
//!
//! - `support`: the common ending, over the shared fixtures (`../common`, `test-support`: servers, clients, raw
//!   frames, the guards).
//! - `bad_frames`: headers, ids and payloads a decoder must refuse, and byte-by-byte dribbling it must accept.
//! - `empty_payloads`: a zero-length payload for every client packet, before and after login.
//! - `limits`: rate limit, slowloris, a client that never reads, max connections.
//! - `sockets`: resets mid-frame and mid-write, a half-closed client.
//! - `faults`: shutdown under 1,000 chatting clients, a panicking handler.

mod bad_frames;
#[path = "../common/mod.rs"]
mod common;
mod empty_payloads;
mod faults;
mod limits;
mod notices;
mod sockets;
mod support;
