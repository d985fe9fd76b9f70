//! The wide header (`u32 size | u16 id`) for frames over 64 KiB: an echo server accepting frames up to 1 MiB and a
//! client in the same process that sends a 200 KiB payload and gets it back.
//!
//! ```text
//! cargo run -p examples --example wide_header
//! ```
//!
//! Both sides must agree on the header: the server through `ServerBuilder::header`, the client through
//! `Client::with_header`. Each side also caps what it accepts (`max_frame` / `with_max_frame`).

use std::net::SocketAddr;
use std::time::Instant;

use examples::echo::{self, Echo, EchoLogic, EchoProtocol, EchoResponse};
use packet_runtime::prost::Message;
use packet_runtime::{Client, HeaderKind};

const MAX_FRAME: usize = 1024 * 1024;
const PAYLOAD: usize = 200 * 1024;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let any_port: SocketAddr = "127.0.0.1:0".parse()?;
    let server = echo::builder(any_port, HeaderKind::Wide, MAX_FRAME).workers(1).start(EchoLogic)?;
    let addr = server.local_addr().expect("tcp server");
    println!("server: wide header, frames up to {MAX_FRAME} bytes, on {addr}");

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let result = runtime.block_on(async move {
        let mut client =
            Client::<EchoProtocol>::connect(addr).await?.with_header(HeaderKind::Wide).with_max_frame(MAX_FRAME);
        let data: Vec<u8> = (0..PAYLOAD).map(|i| (i % 251) as u8).collect();
        let request = Echo { data: data.clone() };
        let frame_len = HeaderKind::Wide.header_len() + request.encoded_len();
        let started = Instant::now();
        client.send(&request).await?;
        println!("client: sent a {PAYLOAD}-byte payload in a {frame_len}-byte frame");
        let EchoResponse::EchoReply(reply) = client.recv().await?;
        println!("client: got {} bytes back in {:?}", reply.data.len(), started.elapsed());
        if reply.data != data {
            return Err("the echoed payload differs from what was sent".into());
        }
        println!("client: payload identical");
        Ok::<_, Box<dyn std::error::Error>>(())
    });
    drop(runtime);

    server.shutdown();
    let report = server.join();
    println!("server: stopped, {} session(s) closed", report.sessions_closed);
    result
}
