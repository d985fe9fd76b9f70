//! The network runtime over real sockets: every behaviour of the server framework, driven by the typed client.
//!
//! One test binary (modules below) to keep link time down. Ports are bound to 0; tests wait on events (a reply, a
//! close, a report), never on sleeps; timeouts only guard against hangs.

mod support;

mod auth;
mod backpressure;
mod bad_input;
mod handshake;
mod limits;
mod sessions;
mod shutdown;
mod transports;
mod wire;
