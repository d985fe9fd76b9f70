//! TLS on a gateway: `--tls-cert` and `--tls-key` on a gateway put TLS on the connections it holds (TCP, and wss
//! with `--web`); a gateway without them beside it still serves clear text, and both reach the same shard.

use demo_protocol::ServerPacket;
use demo_protocol::proto::{CChat, CLogin};
use futures_util::{SinkExt, StreamExt};
use packet_runtime::transport::tls as rt_tls;
use test_support::demo::{enter, log_in, login, server_packets};
use test_support::tls::{SERVER_NAME, TestCa, connect};
use test_support::{encode, expect, runtime, within};
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::Message;

use super::support::{Nats, Node, cluster_name};

#[test]
fn a_tls_gateway_serves_tls_and_wss_clients_of_the_same_game() {
    let ca = TestCa::new("gateway");
    let files = ca.server_files("gateway");
    let nats = Nats::start();
    let name = cluster_name("tls");
    let _shard = Node::start(&nats, &name, "shard", &[]);
    let (cert, key) = (files.cert.display().to_string(), files.key.display().to_string());
    let secure =
        Node::start(&nats, &name, "gateway", &["--tls-cert", &cert, "--tls-key", &key, "--web", "127.0.0.1:0"]);
    let plain = Node::start(&nats, &name, "gateway", &[]);
    let config = ca.client_config();
    runtime().block_on(async {
        let mut tls_client = connect::<demo_protocol::GameProtocol>(secure.gateway(), &config).await;
        let tls_id = log_in(&mut tls_client, "secure").await;
        enter(&mut tls_client, 4).await;
        let (mut tcp_client, tcp_id) = login(plain.gateway(), "plain").await;
        enter(&mut tcp_client, 4).await;
        expect!(&mut tls_client, SSpawn);
        tls_client.send(&CChat { msg: "over tls".into() }).await.unwrap();
        let chat = expect!(&mut tcp_client, SChat);
        assert_eq!((chat.player_id, chat.msg.as_str()), (tls_id, "over tls"));
        tcp_client.send(&CChat { msg: "in clear".into() }).await.unwrap();
        assert_eq!(expect!(&mut tls_client, SChat).player_id, tls_id);
        assert_eq!(expect!(&mut tls_client, SChat).player_id, tcp_id);

        // wss on the same gateway.
        let web = secure.web.expect("the gateway printed its web address");
        let tcp = tokio::net::TcpStream::connect(web).await.unwrap();
        let stream =
            within("the TLS handshake", rt_tls::connect(tcp, SERVER_NAME, config.clone())).await.expect("handshakes");
        let url = format!("wss://{SERVER_NAME}:{}/ws", web.port());
        let (mut ws, _) = within("the upgrade", tokio_tungstenite::client_async(url, stream)).await.expect("upgrades");
        ws.send(Message::Binary(encode(&CLogin { name: "browser".into(), ..Default::default() }).into()))
            .await
            .unwrap();
        let logged = loop {
            if let Message::Binary(data) = within("a message", ws.next()).await.unwrap().unwrap() {
                break server_packets(&data);
            }
        };
        assert!(matches!(&logged[..], [ServerPacket::SLogin(l)] if l.success), "{logged:?}");

        // Clear text on the TLS gateway is no session.
        let mut raw = tokio::net::TcpStream::connect(secure.gateway()).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut raw, &encode(&CLogin { name: "clear".into(), ..Default::default() }))
            .await
            .unwrap();
        let mut rest = Vec::new();
        let _ = within("the gateway to close", raw.read_to_end(&mut rest)).await;
        // At most a TLS alert record (content type 21), never a game frame.
        assert!(rest.is_empty() || rest[0] == 21, "no game packet answers clear text: {rest:?}");
    });
}
