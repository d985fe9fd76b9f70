//! The demo protocol's steps, for suites that speak to the demo game (or to a test game over the same protocol).

use std::net::SocketAddr;

use demo_protocol::proto::{CEnterRoom, CLogin, PlayerInfo};
use demo_protocol::{GameProtocol, ServerPacket};
use packet_runtime::Client;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

#[doc(hidden)]
pub use demo_protocol as __demo_protocol;

/// A client of the demo protocol (over TCP unless `S` says otherwise: a TLS stream, say).
pub type GameClient<S = TcpStream> = Client<GameProtocol, S>;

/// Receives the next packet (under the 30 s guard) and unwraps the expected `ServerPacket` variant of the demo
/// protocol, or panics naming what came instead: `let reply = expect!(&mut client, SLogin);`.
#[macro_export]
macro_rules! expect {
    ($client:expr, $variant:ident) => {
        match $crate::next($client).await {
            $crate::demo::__demo_protocol::ServerPacket::$variant(packet) => packet,
            other => panic!("expected {}, got {other:?}", stringify!($variant)),
        }
    };
}

/// Connects and logs in; returns the client and its player id.
pub async fn login(addr: SocketAddr, name: &str) -> (GameClient, u64) {
    let mut client: GameClient = crate::connect(addr).await;
    let id = log_in(&mut client, name).await;
    (client, id)
}

/// Logs in on a connected client (over any stream: TLS, say); returns its player id.
pub async fn log_in<S: AsyncRead + AsyncWrite>(client: &mut GameClient<S>, name: &str) -> u64 {
    client.send(&CLogin { name: name.into(), ..Default::default() }).await.expect("sends C_LOGIN");
    let reply = expect!(client, SLogin);
    assert!(reply.success, "login as {name:?} refused");
    reply.player_id
}

/// Enters `room` (one is not in yet); returns the others listed in `S_ENTER_ROOM`, reassembled from its pages.
pub async fn enter<S: AsyncRead + AsyncWrite>(client: &mut GameClient<S>, room: u32) -> Vec<PlayerInfo> {
    client.send(&CEnterRoom { room_id: room }).await.expect("sends C_ENTER_ROOM");
    listing(client, room).await
}

/// Receives a room listing: `S_ENTER_ROOM` pages until one says `more: false`. Checks that every page is for
/// `room`, carries the same `total`, and that the pages add up to it.
pub async fn listing<S: AsyncRead + AsyncWrite>(client: &mut GameClient<S>, room: u32) -> Vec<PlayerInfo> {
    let mut players = Vec::new();
    loop {
        let page = expect!(client, SEnterRoom);
        assert!(page.success && !page.already_in_room, "a listing page expected, got {page:?}");
        assert_eq!(page.room_id, room, "a page of another room's listing");
        players.extend(page.players);
        if !page.more {
            assert_eq!(players.len(), page.total as usize, "the pages add up to the total");
            return players;
        }
    }
}

/// Enters `room` again, being in it already: the answer is the short acknowledgement, no listing.
pub async fn reenter<S: AsyncRead + AsyncWrite>(client: &mut GameClient<S>, room: u32) {
    client.send(&CEnterRoom { room_id: room }).await.expect("sends C_ENTER_ROOM");
    let ack = expect!(client, SEnterRoom);
    assert!(ack.success && ack.already_in_room && ack.players.is_empty() && !ack.more, "{ack:?}");
    assert_eq!(ack.room_id, room);
}

/// A round trip through the logic thread: a second login is refused with `S_LOGIN { success: false }`. Everything
/// the logic thread queued for this client before handling it arrives first, so "the next packet is the refusal"
/// proves that nothing else was sent to the client up to now.
pub async fn assert_nothing_pending<S: AsyncRead + AsyncWrite>(client: &mut GameClient<S>) {
    client.send(&CLogin { name: "barrier".into(), ..Default::default() }).await.expect("sends C_LOGIN");
    match crate::next(client).await {
        ServerPacket::SLogin(reply) => assert!(!reply.success, "the barrier login must be refused"),
        other => panic!("expected nothing before the barrier, got {other:?}"),
    }
}

/// The reason of the one `S_KICK` among `packets`.
pub fn kick_reason(packets: &[ServerPacket]) -> String {
    let kicks: Vec<_> = packets
        .iter()
        .filter_map(|p| match p {
            ServerPacket::SKick(kick) => Some(kick.reason.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(kicks.len(), 1, "exactly one S_KICK expected in {packets:?}");
    kicks.into_iter().next().expect("one kick")
}

/// The server packets of `bytes`, several whole compact frames as one WebSocket message carries them (`--web`).
/// Panics on a frame cut short or a payload that is not a server packet: a message must carry whole frames.
pub fn server_packets(mut bytes: &[u8]) -> Vec<ServerPacket> {
    let mut packets = Vec::new();
    while !bytes.is_empty() {
        assert!(bytes.len() >= 4, "a frame header cut short: {bytes:?}");
        let size = u16::from_le_bytes([bytes[0], bytes[1]]) as usize;
        let id = u16::from_le_bytes([bytes[2], bytes[3]]);
        assert!((4..=bytes.len()).contains(&size), "a frame of {size} bytes in {} left", bytes.len());
        packets.push(ServerPacket::decode(id, &bytes[4..size]).expect("a server packet"));
        bytes = &bytes[size..];
    }
    packets
}
