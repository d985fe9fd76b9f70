//! Ping and echo are answered on the IO threads by `GameIo`.

use std::time::{SystemTime, UNIX_EPOCH};

use demo_protocol::proto::{CEcho, CPing};
use packet_runtime::ForwardAll;
use server::Game;

use crate::support::*;

fn unix_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

#[test]
fn ping_and_echo_are_answered_on_the_io_threads() {
    let server = start();
    runtime().block_on(async {
        let (mut client, _) = login(server.addr, "pinger").await;
        let before = unix_millis();
        client.send(&CPing { client_time: 123_456 }).await.unwrap();
        let pong = expect!(&mut client, SPong);
        let after = unix_millis();
        assert_eq!(pong.client_time, 123_456);
        // A server_time at all marks the IO hook (the logic-thread fallback answers 0); it is the wall clock in ms.
        assert!((before..=after).contains(&pong.server_time), "{before} <= {} <= {after}", pong.server_time);

        let data: Vec<u8> = (0..=255).cycle().take(10_000).collect();
        client.send(&CEcho { data: data.clone() }).await.unwrap();
        assert_eq!(expect!(&mut client, SEcho).data, data);
        client.send(&CEcho { data: vec![] }).await.unwrap();
        assert!(expect!(&mut client, SEcho).data.is_empty());
    });
    server.stop();
}

#[test]
fn without_the_io_hook_the_logic_thread_answers_with_server_time_zero() {
    let handle = options().builder().io_handler(ForwardAll).start(Game::new()).expect("starts");
    let addr = handle.local_addr().unwrap();
    runtime().block_on(async {
        let mut client = connect(addr).await;
        client.send(&CPing { client_time: 7 }).await.unwrap();
        let pong = expect!(&mut client, SPong);
        assert_eq!((pong.client_time, pong.server_time), (7, 0));
        client.send(&CEcho { data: vec![9] }).await.unwrap();
        assert_eq!(expect!(&mut client, SEcho).data, [9]);
    });
    handle.shutdown();
    handle.join();
}
