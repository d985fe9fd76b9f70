//! The echo example's server, started in-process: one round trip per header layout.

use std::net::SocketAddr;
use std::time::Duration;

use examples::echo::{self, Echo, EchoLogic, EchoProtocol, EchoResponse};
use packet_runtime::{Client, HeaderKind};

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Guards against hangs; never used as synchronisation.
async fn within<T>(fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), fut).await.expect("no reply within 10 s")
}

#[test]
fn echo_server_answers_one_round_trip() {
    let server = echo::start(any_port()).unwrap();
    let addr = server.local_addr().unwrap();
    client_runtime().block_on(async {
        let mut client = Client::<EchoProtocol>::connect(addr).await.unwrap();
        client.send(&Echo { data: b"hello".to_vec() }).await.unwrap();
        let EchoResponse::EchoReply(reply) = within(client.recv()).await.unwrap();
        assert_eq!(reply.data, b"hello");
    });
    server.shutdown();
    let report = server.join();
    assert_eq!(report.sessions_closed, 1);
    assert_eq!(report.handler_panics, 0);
}

/// The echo server's `--handshake`: a client that opens with the hello is served; one that does not is closed
/// before its packet reaches the logic.
#[test]
fn echo_server_with_a_required_handshake() {
    let server =
        echo::builder(any_port(), HeaderKind::Compact, 16 * 1024).require_handshake(true).start(EchoLogic).unwrap();
    let addr = server.local_addr().unwrap();
    client_runtime().block_on(async {
        let mut client = Client::<EchoProtocol>::connect(addr).await.unwrap();
        let hello = within(client.handshake("echo test")).await.unwrap();
        assert_eq!(hello.fingerprint, <EchoProtocol as packet_runtime::Protocol>::FINGERPRINT);
        client.send(&Echo { data: b"after the hello".to_vec() }).await.unwrap();
        let EchoResponse::EchoReply(reply) = within(client.recv()).await.unwrap();
        assert_eq!(reply.data, b"after the hello");

        let mut rude = Client::<EchoProtocol>::connect(addr).await.unwrap();
        rude.send(&Echo { data: b"no hello".to_vec() }).await.unwrap();
        assert!(within(rude.recv()).await.is_err(), "closed without an answer");
    });
    server.shutdown();
    assert_eq!(server.join().sessions_closed, 1, "only the session with a hello reached the logic");
}

#[test]
fn wide_header_carries_a_200_kib_payload() {
    let max_frame = 1024 * 1024;
    let server = echo::builder(any_port(), HeaderKind::Wide, max_frame).workers(1).start(EchoLogic).unwrap();
    let addr = server.local_addr().unwrap();
    let data: Vec<u8> = (0..200 * 1024).map(|i| (i % 251) as u8).collect();
    client_runtime().block_on(async {
        let mut client = Client::<EchoProtocol>::connect(addr)
            .await
            .unwrap()
            .with_header(HeaderKind::Wide)
            .with_max_frame(max_frame);
        client.send(&Echo { data: data.clone() }).await.unwrap();
        let EchoResponse::EchoReply(reply) = within(client.recv()).await.unwrap();
        assert_eq!(reply.data, data);
    });
    server.shutdown();
    server.join();
}
