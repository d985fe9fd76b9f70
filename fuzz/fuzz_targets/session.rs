//! A whole server (demo protocol, in-memory transport) driven by a script of client operations read from the input.
//! See `src/session.rs` for what is checked.
//!
//! One server per process, started on the first input: a server per input would spend most of each run starting
//! and joining threads. The invariants stay checkable per input because the harness waits, after each script, until
//! every connection has been disconnected (logic-thread counters, `connections_open == 0`) and every pool block is
//! back (`outstanding == 0`); nothing a script does outlives it. `PACKET_FUZZ_FRESH_SERVER=1` starts and joins a
//! server per input instead, which also checks the `ShutdownReport` every time (half the executions per second).
//!
//! Script: one tag byte per operation; its high nibble picks the connection, its low nibble the operation, and the
//! operation's arguments follow (lengths are one byte). A connection is opened before the script.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tests::game::ClientPacket;
use tests::proto;

#[path = "../src/session.rs"]
mod session;

use session::{Harness, KICK_ROOM, Op};

/// Reads a script's arguments; missing bytes read as zero.
struct Script<'a>(&'a [u8]);

impl Script<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn bytes(&mut self) -> Vec<u8> {
        let len = self.byte().unwrap_or(0) as usize;
        let (taken, rest) = self.0.split_at(len.min(self.0.len()));
        self.0 = rest;
        taken.to_vec()
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte().unwrap_or(0), self.byte().unwrap_or(0)])
    }

    fn u32(&mut self) -> u32 {
        u32::from(self.u16()) | u32::from(self.u16()) << 16
    }

    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | u64::from(self.u32()) << 32
    }

    fn string(&mut self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }

    fn packet(&mut self) -> ClientPacket {
        match self.byte().unwrap_or(0) % 7 {
            0 => proto::CLogin { name: self.string(), ..Default::default() }.into(),
            1 => proto::CEnterRoom { room_id: self.u32() }.into(),
            2 => proto::CEnterRoom { room_id: KICK_ROOM }.into(),
            3 => {
                let pos = self.byte().unwrap_or(0).is_multiple_of(2).then(|| proto::PosInfo {
                    x: f32::from_bits(self.u32()),
                    y: f32::from_bits(self.u32()),
                    z: f32::from_bits(self.u32()),
                    yaw: f32::from_bits(self.u32()),
                });
                proto::CMove { pos }.into()
            }
            4 => proto::CChat { msg: self.string() }.into(),
            5 => proto::CPing { client_time: self.u64() }.into(),
            _ => proto::CEcho { data: self.bytes() }.into(),
        }
    }

    fn ops(mut self) -> Vec<Op> {
        let mut ops = vec![Op::Connect];
        while let Some(tag) = self.byte() {
            let conn = usize::from(tag >> 4);
            ops.push(match tag & 0x0F {
                0 | 1 => Op::Connect,
                2 | 3 => Op::Write { conn, bytes: self.bytes() },
                4 | 5 => {
                    let raw = self.u16();
                    // Mostly the protocol's own ids (client and server ones, and 1015, unknown).
                    let id = if raw < 0x8000 { 1000 + raw % 16 } else { raw };
                    Op::Frame { conn, id, payload: self.bytes() }
                }
                6..=9 => Op::Packet { conn, packet: self.packet() },
                10 => Op::Read { conn },
                11 => Op::HalfClose { conn },
                12 => Op::Drop { conn },
                13 => Op::Pause { conn },
                _ => Op::Packet { conn, packet: proto::CChat { msg: "x".repeat(900) }.into() },
            });
        }
        ops
    }
}

fuzz_target!(|data: &[u8]| {
    let ops = Script(data).ops();
    if std::env::var_os("PACKET_FUZZ_FRESH_SERVER").is_some() {
        let harness = Harness::start();
        harness.run(&ops);
        harness.finish();
    } else {
        static HARNESS: OnceLock<Harness> = OnceLock::new();
        HARNESS.get_or_init(Harness::start).run(&ops);
    }
});
