//! Faults: shutdown in the middle of heavy chat, and a handler that panics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use demo_protocol::proto::CChat;
use demo_protocol::{ClientPacket, GameProtocol, ServerPacket};
use packet_runtime::{CloseKind, CloseReason, Context, Logic, Session};
use server::Game;

use crate::support::*;

#[test]
fn shutdown_while_1000_clients_chat_in_rooms_of_50_completes_and_leaks_nothing() {
    const CLIENTS: u32 = 1000;
    const ROOM: u32 = 50;
    let server = start();
    let runtime = runtime();
    let started = Instant::now();
    let (ready_tx, mut ready) = tokio::sync::mpsc::unbounded_channel();
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let (addr, ready_tx) = (server.addr, ready_tx.clone());
        clients.push(runtime.spawn(async move {
            let (mut client, me) = login(addr, &format!("c{i}")).await;
            enter(&mut client, i / ROOM).await;
            let _ = ready_tx.send(());
            let (mut reader, mut writer) = client.into_split();
            // One chat in flight per client: the next goes out when the sender's own copy comes back.
            let own_came_back = Arc::new(tokio::sync::Notify::new());
            let notify = Arc::clone(&own_came_back);
            let chatter = tokio::spawn(async move {
                for n in 0u64.. {
                    if writer.send(&CChat { msg: format!("{i}:{n}") }).await.is_err() {
                        break;
                    }
                    notify.notified().await;
                }
            });
            let mut goodbye = false;
            while let Ok(packet) = reader.recv().await {
                match packet {
                    ServerPacket::SChat(chat) if chat.player_id == me => own_came_back.notify_one(),
                    ServerPacket::SKick(kick) => goodbye |= kick.reason == "server shutting down",
                    _ => {}
                }
            }
            chatter.abort();
            goodbye
        }));
    }
    drop(ready_tx);
    runtime.block_on(async {
        for _ in 0..CLIENTS {
            within("every client in its room", ready.recv()).await.expect("a client failed to set up");
        }
        // Everyone is in and chat flows: logins, room entries and a few chats per client.
        server.until("chat to flow", |m| m.frames_in >= 5 * u64::from(CLIENTS)).await;
    });
    let chatting = started.elapsed();

    server.handle.shutdown();
    let (done_tx, done) = std::sync::mpsc::channel();
    let handle = server.handle;
    std::thread::spawn(move || done_tx.send(handle.join()).unwrap());
    let report = done.recv_timeout(Duration::from_secs(60)).expect("shutdown completes under load");
    let goodbyes = runtime.block_on(async {
        let mut goodbyes = 0;
        for client in clients {
            goodbyes += u32::from(within("client to see the close", client).await.unwrap());
        }
        goodbyes
    });
    eprintln!("1,000 chatting clients: set up and chatting after {chatting:?}, all done after {:?}", started.elapsed());
    assert_eq!(report.sessions_closed, u64::from(CLIENTS), "every on_disconnect ran once");
    assert_eq!(report.metrics.closed(CloseKind::ServerShutdown), u64::from(CLIENTS), "{report:?}");
    assert_eq!(report.pool_outstanding, 0, "{report:?}");
    assert_eq!(report.handler_panics, 0);
    assert!(!report.logic_thread_panicked);
    assert_eq!(goodbyes, CLIENTS, "every client got the goodbye before its connection closed");
}

const MAGIC: &str = "make the handler panic";

/// The real game, except that a chat line of [`MAGIC`] panics in the packet handler.
struct PanicsOnMagic(Game);

impl Logic for PanicsOnMagic {
    type Protocol = GameProtocol;

    fn on_connect(&mut self, ctx: &mut Context<'_, GameProtocol>, session: &Session<GameProtocol>) {
        self.0.on_connect(ctx, session);
    }

    fn on_packet(
        &mut self,
        ctx: &mut Context<'_, GameProtocol>,
        session: &Session<GameProtocol>,
        packet: ClientPacket,
    ) {
        if matches!(&packet, ClientPacket::CChat(chat) if chat.msg == MAGIC) {
            panic!("deliberate panic from a packet handler (hostile test)");
        }
        self.0.on_packet(ctx, session, packet);
    }

    fn on_disconnect(
        &mut self,
        ctx: &mut Context<'_, GameProtocol>,
        session: &Session<GameProtocol>,
        reason: &CloseReason,
    ) {
        self.0.on_disconnect(ctx, session, reason);
    }

    fn on_tick(&mut self, ctx: &mut Context<'_, GameProtocol>) {
        self.0.on_tick(ctx);
    }

    fn on_shutdown(&mut self, ctx: &mut Context<'_, GameProtocol>) {
        self.0.on_shutdown(ctx);
    }
}

#[test]
fn a_handler_panic_closes_that_session_only() {
    let handle = options().builder().start(PanicsOnMagic(Game::new())).expect("starts");
    let server = TestServer { addr: handle.local_addr().unwrap(), handle };
    runtime().block_on(async {
        let (mut panicker, panicker_id) = login(server.addr, "panicker").await;
        let (mut other, other_id) = login(server.addr, "other").await;
        enter(&mut panicker, 1).await;
        enter(&mut other, 1).await;
        expect!(&mut panicker, SSpawn);
        panicker.send(&CChat { msg: MAGIC.into() }).await.unwrap();
        let (got, end) = drain_until_closed(&mut panicker).await;
        // Only the close notice.
        assert!(is_close(&end), "{end:?}");
        assert_eq!(kick_reason(&got), "server error", "{got:?}");
        assert_eq!(got.len(), 1, "{got:?}");
        drop(panicker);
        // The game's state stayed consistent: the panicker left the room through the usual on_disconnect.
        assert_eq!(expect!(&mut other, SDespawn).player_ids, [panicker_id]);
        other.send(&CChat { msg: "carry on".into() }).await.unwrap();
        let chat = expect!(&mut other, SChat);
        assert_eq!((chat.player_id, chat.msg.as_str()), (other_id, "carry on"));
        only_closed(&server, CloseKind::HandlerPanic).await;
    });
    let report = server.stop();
    assert_eq!(report.handler_panics, 1);
}
