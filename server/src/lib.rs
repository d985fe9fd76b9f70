//! The demo game server: log in, enter a room, see who is there, move, chat, ping and echo, over the compact frame
//! header. Its protocol (`game.proto`, the prost messages and `GameProtocol`) lives in the `demo-protocol` crate,
//! which the bots, the benchmarks, the examples and the tests share; this crate is the game and the binary only.
//!
//! # Layout
//! - [`game`]: the game itself. [`Game`] is the `Logic` (the logic thread owns players and rooms, no locks);
//!   [`GameIo`] answers ping and echo on the IO threads and kicks on bad frames.
//! - [`options`]: [`ServerOptions`], the settings the binary reads from its flags, and the one place a server is
//!   assembled ([`ServerOptions::builder`], [`ServerOptions::start`]), so tests and tools run exactly what the binary
//!   runs.
//! - [`web`]: the browser demo (plain files embedded in the binary) and the WebSocket settings of `--web`.
//! - [`cli`]: the `server` binary's command line and life (`main.rs` only calls [`cli::main`]).
//! - [`nats_auth`]: the `--nats-creds`, `--nats-user`, `--nats-tls-*` flags: credentials and TLS to NATS.
//! - [`metrics`]: `--metrics-addr`: the Prometheus recorder and the `/metrics`, `/healthz`, `/readyz` endpoint.
//! - [`tls`]: `--tls-cert` and `--tls-key`: SIGHUP reloads the certificate.

#![forbid(unsafe_code)]

pub mod cli;
pub mod game;
pub mod metrics;
pub mod nats_auth;
pub mod options;
pub mod tls;
pub mod web;

pub use game::{Game, GameIo, GameStats, GameStatsSnapshot, NoticeLimits, close_notice};
pub use options::ServerOptions;
