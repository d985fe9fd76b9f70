//! The demo game's protocol (generated from `demo-protocol/proto/game.proto` by prost-build, packets added through
//! `type_attribute`): every packet survives encode -> decode -> dispatch, and the tables describe the protocol.

use packet_runtime::{Direction, Packet, PacketInfo, PacketSet, Protocol};
use prost::Message;
use tests::game::{ClientPacket, ClientPacketHandler, GameProtocol, ServerPacket, ServerPacketHandler};
use tests::proto::*;

/// Records which handler method ran and with what packet.
#[derive(Debug, Default)]
struct Recorder {
    client: Vec<(&'static str, ClientPacket)>,
    server: Vec<(&'static str, ServerPacket)>,
}

/// The context handlers receive: counts calls, proving `ctx` is threaded through.
#[derive(Debug, Default)]
struct Session {
    calls: u32,
}

impl ClientPacketHandler<Session> for Recorder {
    fn on_c_login(&mut self, ctx: &mut Session, packet: CLogin) {
        ctx.calls += 1;
        self.client.push(("on_c_login", packet.into()));
    }
    fn on_c_enter_room(&mut self, ctx: &mut Session, packet: CEnterRoom) {
        ctx.calls += 1;
        self.client.push(("on_c_enter_room", packet.into()));
    }
    fn on_c_move(&mut self, ctx: &mut Session, packet: CMove) {
        ctx.calls += 1;
        self.client.push(("on_c_move", packet.into()));
    }
    fn on_c_chat(&mut self, ctx: &mut Session, packet: CChat) {
        ctx.calls += 1;
        self.client.push(("on_c_chat", packet.into()));
    }
    fn on_c_ping(&mut self, ctx: &mut Session, packet: CPing) {
        ctx.calls += 1;
        self.client.push(("on_c_ping", packet.into()));
    }
    fn on_c_echo(&mut self, ctx: &mut Session, packet: CEcho) {
        ctx.calls += 1;
        self.client.push(("on_c_echo", packet.into()));
    }
}

impl ServerPacketHandler for Recorder {
    fn on_s_login(&mut self, _: &mut (), packet: SLogin) {
        self.server.push(("on_s_login", packet.into()));
    }
    fn on_s_enter_room(&mut self, _: &mut (), packet: SEnterRoom) {
        self.server.push(("on_s_enter_room", packet.into()));
    }
    fn on_s_spawn(&mut self, _: &mut (), packet: SSpawn) {
        self.server.push(("on_s_spawn", packet.into()));
    }
    fn on_s_despawn(&mut self, _: &mut (), packet: SDespawn) {
        self.server.push(("on_s_despawn", packet.into()));
    }
    fn on_s_move(&mut self, _: &mut (), packet: SMove) {
        self.server.push(("on_s_move", packet.into()));
    }
    fn on_s_chat(&mut self, _: &mut (), packet: SChat) {
        self.server.push(("on_s_chat", packet.into()));
    }
    fn on_s_pong(&mut self, _: &mut (), packet: SPong) {
        self.server.push(("on_s_pong", packet.into()));
    }
    fn on_s_echo(&mut self, _: &mut (), packet: SEcho) {
        self.server.push(("on_s_echo", packet.into()));
    }
    fn on_s_kick(&mut self, _: &mut (), packet: SKick) {
        self.server.push(("on_s_kick", packet.into()));
    }
}

fn pos(x: f32) -> PosInfo {
    PosInfo { x, y: -x, z: 0.5, yaw: 90.0 }
}

fn player(id: u64) -> PlayerInfo {
    PlayerInfo { player_id: id, name: format!("player{id}"), pos: Some(pos(id as f32)) }
}

/// Every client packet with non-default content, and the handler method it must reach.
fn client_packets() -> Vec<(ClientPacket, &'static str)> {
    vec![
        (CLogin { name: "alice".into(), ..Default::default() }.into(), "on_c_login"),
        (CEnterRoom { room_id: 7 }.into(), "on_c_enter_room"),
        (CMove { pos: Some(pos(1.5)) }.into(), "on_c_move"),
        (CChat { msg: "hello, 세계".into() }.into(), "on_c_chat"),
        (CPing { client_time: u64::MAX }.into(), "on_c_ping"),
        (CEcho { data: vec![0, 1, 2, 255] }.into(), "on_c_echo"),
    ]
}

fn server_packets() -> Vec<(ServerPacket, &'static str)> {
    vec![
        (SLogin { success: true, player_id: 42, ..SLogin::default() }.into(), "on_s_login"),
        (
            SEnterRoom { success: true, players: vec![player(1), player(2)], ..SEnterRoom::default() }.into(),
            "on_s_enter_room",
        ),
        (SSpawn { players: vec![player(3)] }.into(), "on_s_spawn"),
        (SDespawn { player_ids: vec![1, 2, 3] }.into(), "on_s_despawn"),
        (SMove { player_id: 9, pos: Some(pos(-3.0)) }.into(), "on_s_move"),
        (SChat { player_id: 9, msg: "hi".into() }.into(), "on_s_chat"),
        (SPong { client_time: 1, server_time: 2 }.into(), "on_s_pong"),
        (SEcho { data: b"echo".to_vec() }.into(), "on_s_echo"),
        (SKick { reason: "afk".into() }.into(), "on_s_kick"),
    ]
}

fn payload<S: PacketSet>(packet: &S) -> Vec<u8> {
    let mut buf = Vec::with_capacity(packet.encoded_len());
    packet.encode_payload(&mut buf);
    assert_eq!(buf.len(), packet.encoded_len());
    buf
}

#[test]
fn every_client_packet_round_trips_through_decode_and_dispatch() {
    let mut recorder = Recorder::default();
    let mut session = Session::default();
    for (packet, method) in client_packets() {
        let bytes = payload(&packet);
        let decoded = ClientPacket::decode(packet.id(), &bytes).unwrap();
        assert_eq!(decoded, packet);

        decoded.dispatch(&mut recorder, &mut session);
        assert_eq!(recorder.client.pop(), Some((method, packet.clone())));

        ClientPacket::decode_and_dispatch(packet.id(), &bytes, &mut recorder, &mut session).unwrap();
        assert_eq!(recorder.client.pop(), Some((method, packet)));
    }
    assert_eq!(session.calls, 12);
    assert!(recorder.server.is_empty());
}

#[test]
fn every_server_packet_round_trips_through_decode_and_dispatch() {
    let mut recorder = Recorder::default();
    for (packet, method) in server_packets() {
        let bytes = payload(&packet);
        let decoded = <ServerPacket as PacketSet>::decode(packet.id(), &bytes).unwrap();
        assert_eq!(decoded, packet);

        decoded.dispatch(&mut recorder, &mut ());
        assert_eq!(recorder.server.pop(), Some((method, packet.clone())));

        ServerPacket::decode_and_dispatch(packet.id(), &bytes, &mut recorder, &mut ()).unwrap();
        assert_eq!(recorder.server.pop(), Some((method, packet)));
    }
    assert!(recorder.client.is_empty());
}

#[test]
fn payload_is_the_plain_protobuf_encoding() {
    let login = CLogin { name: "bob".into(), ..Default::default() };
    assert_eq!(payload(&ClientPacket::from(login.clone())), login.encode_to_vec());
    assert_eq!(CLogin::decode(&*login.encode_to_vec()).unwrap(), login);
}

#[test]
fn ids_and_names_come_from_the_derive() {
    assert_eq!((CLogin::ID, CLogin::NAME), (1000, "C_LOGIN"));
    assert_eq!((SKick::ID, SKick::NAME), (1014, "S_KICK"));
    let packet = ClientPacket::from(CMove::default());
    assert_eq!((packet.id(), packet.name()), (1006, "C_MOVE"));
    let packet = ServerPacket::from(SEnterRoom::default());
    assert_eq!((PacketSet::id(&packet), PacketSet::name(&packet)), (1003, "S_ENTER_ROOM"));
}

#[test]
fn tables_list_every_packet_in_declaration_order() {
    let c2s = |id, name| PacketInfo { id, name, direction: Direction::ClientToServer };
    let s2c = |id, name| PacketInfo { id, name, direction: Direction::ServerToClient };
    let client = [
        c2s(1000, "C_LOGIN"),
        c2s(1002, "C_ENTER_ROOM"),
        c2s(1006, "C_MOVE"),
        c2s(1008, "C_CHAT"),
        c2s(1010, "C_PING"),
        c2s(1012, "C_ECHO"),
    ];
    let server = [
        s2c(1001, "S_LOGIN"),
        s2c(1003, "S_ENTER_ROOM"),
        s2c(1004, "S_SPAWN"),
        s2c(1005, "S_DESPAWN"),
        s2c(1007, "S_MOVE"),
        s2c(1009, "S_CHAT"),
        s2c(1011, "S_PONG"),
        s2c(1013, "S_ECHO"),
        s2c(1014, "S_KICK"),
    ];
    assert_eq!(ClientPacket::PACKETS, client);
    assert_eq!(ServerPacket::PACKETS, server);
    assert_eq!(GameProtocol::PACKETS, [&client[..], &server[..]].concat());
    assert_eq!(GameProtocol::NAME, "GameProtocol");
    assert_eq!(ClientPacket::DIRECTION, Direction::ClientToServer);
    assert_eq!(ServerPacket::DIRECTION, Direction::ServerToClient);
    assert_eq!(GameProtocol::FINGERPRINT, packet_runtime::__private::fingerprint(GameProtocol::PACKETS));
}

#[test]
fn contains_answers_for_its_own_direction_only() {
    for info in GameProtocol::PACKETS {
        let client = info.direction == Direction::ClientToServer;
        assert_eq!(ClientPacket::contains(info.id), client, "{info:?}");
        assert_eq!(ServerPacket::contains(info.id), !client, "{info:?}");
    }
    assert!(!ClientPacket::contains(0) && !ServerPacket::contains(u16::MAX));
}

#[test]
fn a_packet_of_the_other_direction_is_an_unknown_id() {
    let bytes = SLogin { success: true, player_id: 1, ..SLogin::default() }.encode_to_vec();
    let err = ClientPacket::decode(SLogin::ID, &bytes).unwrap_err();
    assert_eq!(err, packet_runtime::DecodeError::UnknownId { id: 1001, direction: Direction::ClientToServer });
}
