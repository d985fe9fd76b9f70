//! End-to-end tests of the demo game server over loopback: the real `Game` and `GameIo`, started through
//! `ServerOptions::start` like `main.rs` does, driven by the typed client. One binary (modules below) to save link
//! time.
//!
//! Every wait is on an event (a packet, a close) under a 30 s guard; nothing sleeps to synchronise.
//!
//! - `support`: the shared fixtures (`../common`: starting the game; `test-support`: clients, logging in, the
//!   `expect!` macro, the logic-thread barrier).
//! - `login`: login rules and the kick before login.
//! - `rooms`: S_ENTER_ROOM, S_SPAWN/S_DESPAWN bookkeeping, movement.
//! - `chat`: room chat, including 200 clients at once.
//! - `io`: ping and echo answered on the IO threads.
//! - `bad_frames`: every kind of bad frame is kicked with its fault named; others are unaffected.
//! - `binary`: the real `server` executable, SIGTERM, exit status and summary.
//! - `cli`: flags the runtime would not run as given are refused with status 2.

mod auth;
mod bad_frames;
mod binary;
mod chat;
mod cli;
#[path = "../common/mod.rs"]
mod common;
mod handshake;
mod io;
mod login;
mod rooms;
mod support;
