//! Test messages shared by the integration tests (included with `mod common;`).
#![allow(dead_code, unreachable_pub)]

use packet_runtime::Packet;

/// A small message: one string.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Chat {
    #[prost(string, tag = "1")]
    pub text: String,
}

impl Packet for Chat {
    const ID: u16 = 7;
    const NAME: &'static str = "Chat";
}

/// A message of any size: one bytes field.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Blob {
    #[prost(bytes = "vec", tag = "1")]
    pub data: Vec<u8>,
}

impl Packet for Blob {
    const ID: u16 = 1000;
    const NAME: &'static str = "Blob";
}

/// A ~64-byte message, the size the benchmarks use.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Move {
    #[prost(uint64, tag = "1")]
    pub entity: u64,
    #[prost(float, tag = "2")]
    pub x: f32,
    #[prost(float, tag = "3")]
    pub y: f32,
    #[prost(float, tag = "4")]
    pub z: f32,
    #[prost(float, tag = "5")]
    pub yaw: f32,
    #[prost(float, tag = "6")]
    pub pitch: f32,
    #[prost(uint32, tag = "7")]
    pub tick: u32,
    #[prost(string, tag = "8")]
    pub name: String,
}

impl Packet for Move {
    const ID: u16 = 42;
    const NAME: &'static str = "Move";
}

impl Move {
    pub fn sample() -> Move {
        Move {
            entity: 0x1234_5678_9abc,
            x: 1.5,
            y: -2.25,
            z: 100.0,
            yaw: 0.5,
            pitch: 0.25,
            tick: 123_456,
            name: "player-0001-abcdefghijkl".to_owned(),
        }
    }
}
