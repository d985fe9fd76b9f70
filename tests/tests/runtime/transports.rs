//! The same server over other streams: a Unix socket and in-memory pipes. The logic side does not change.

use packet_runtime::Client;
use packet_runtime::transport::memory;
use tests::game::{GameProtocol, ServerPacket};
use tests::proto;

use crate::support::*;

async fn login_and_echo<S: tokio::io::AsyncRead + tokio::io::AsyncWrite>(client: &mut Client<GameProtocol, S>) {
    client.send(&proto::CLogin { name: "unix-or-memory".into(), ..Default::default() }).await.unwrap();
    assert!(matches!(within("login", client.recv()).await.unwrap(), ServerPacket::SLogin(l) if l.success));
    client.send(&proto::CEcho { data: vec![1, 2, 3] }).await.unwrap();
    assert!(matches!(within("echo", client.recv()).await.unwrap(), ServerPacket::SEcho(e) if e.data == [1, 2, 3]));
    client.send(&proto::CPing { client_time: 5 }).await.unwrap();
    assert!(matches!(within("pong", client.recv()).await.unwrap(), ServerPacket::SPong(p) if p.server_time == 1));
}

#[test]
fn the_same_server_runs_over_a_unix_socket() {
    let dir = std::env::temp_dir().join(format!("packet-runtime-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("game.sock");
    let _ = std::fs::remove_file(&path);
    let game = TestGame::default();
    let bind_path = path.clone();
    let handle = builder().start_on(move || tokio::net::UnixListener::bind(bind_path), game).unwrap();
    client_runtime().block_on(async {
        let stream = tokio::net::UnixStream::connect(&path).await.unwrap();
        let mut client = Client::<GameProtocol, _>::new(stream);
        login_and_echo(&mut client).await;
    });
    handle.shutdown();
    let report = handle.join();
    assert_eq!((report.sessions_closed, report.pool_outstanding), (1, 0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_same_server_runs_over_in_memory_pipes() {
    let (listener, connector) = memory::listener(64 * 1024);
    let game = TestGame::default();
    let handle = builder().start_on(move || Ok(listener), game).unwrap();
    client_runtime().block_on(async {
        let mut clients = Vec::new();
        for _ in 0..3 {
            let mut client = Client::<GameProtocol, _>::new(connector.connect().unwrap());
            login_and_echo(&mut client).await;
            clients.push(client);
        }
    });
    handle.shutdown();
    let report = handle.join();
    assert_eq!((report.sessions_closed, report.pool_outstanding), (3, 0));
}
