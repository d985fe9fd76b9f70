//! Browsers through a gateway: `--web` on a gateway relays WebSocket clients like TCP ones.

use demo_protocol::ServerPacket;
use demo_protocol::proto::{CChat, CEnterRoom, CLogin};
use futures_util::{SinkExt, StreamExt};
use test_support::demo::{enter, login, server_packets};
use test_support::{encode, expect, runtime, within};
use tokio_tungstenite::tungstenite::Message;

use super::support::{Nats, Node, cluster_name};

#[test]
fn a_browser_on_one_gateway_chats_with_a_tcp_client_on_another() {
    let nats = Nats::start();
    let name = cluster_name("web");
    let _shard = Node::start(&nats, &name, "shard", &[]);
    let web_gateway = Node::start(&nats, &name, "gateway", &["--web", "127.0.0.1:0"]);
    let tcp_gateway = Node::start(&nats, &name, "gateway", &[]);
    let web = web_gateway.web.expect("the gateway printed its web address");
    runtime().block_on(async {
        let stream = tokio::net::TcpStream::connect(web).await.unwrap();
        let (mut ws, _) = within("the handshake", tokio_tungstenite::client_async(format!("ws://{web}/ws"), stream))
            .await
            .expect("upgrades");
        let mut received = Vec::new();
        let mut next = async move |ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>| loop {
            if let Some(packet) = received.pop() {
                return packet;
            }
            if let Message::Binary(data) = within("a message", ws.next()).await.unwrap().unwrap() {
                received = server_packets(&data);
                received.reverse();
            }
        };
        ws.send(Message::Binary(encode(&CLogin { name: "browser".into(), ..Default::default() }).into()))
            .await
            .unwrap();
        let ServerPacket::SLogin(logged) = next(&mut ws).await else { panic!("S_LOGIN first") };
        ws.send(Message::Binary(encode(&CEnterRoom { room_id: 11 }).into())).await.unwrap();
        assert!(matches!(next(&mut ws).await, ServerPacket::SEnterRoom(e) if e.success));
        let (mut native, native_id) = login(tcp_gateway.gateway(), "native").await;
        enter(&mut native, 11).await;
        assert!(matches!(next(&mut ws).await, ServerPacket::SSpawn(_)));
        native.send(&CChat { msg: "hi browser".into() }).await.unwrap();
        assert!(
            matches!(next(&mut ws).await, ServerPacket::SChat(c) if c.player_id == native_id && c.msg == "hi browser")
        );
        ws.send(Message::Binary(encode(&CChat { msg: "hi native".into() }).into())).await.unwrap();
        let own = expect!(&mut native, SChat);
        assert_eq!(own.msg, "hi browser");
        let chat = expect!(&mut native, SChat);
        assert_eq!((chat.player_id, chat.msg.as_str()), (logged.player_id, "hi native"));
    });
}
