//! Dispatch cost of the generated code against the usual hand-rolled alternative.
//!
//! Both contenders decode the same prost payload and call the same handler body for a 64-packet protocol:
//! - `generated_match`: `ClientPacket::decode_and_dispatch`, a `match` on the packet ids (constants) that decodes the
//!   concrete type and calls the typed handler method; no hashing, no indirect call;
//! - `hashmap_boxed_fn`: a `HashMap<u16, Box<dyn Fn(&[u8], &mut Ctx)>>` filled at start-up, one boxed closure per id.
//!
//! Run with `cargo bench -p tests --bench dispatch`.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use packet_runtime::{Packet, define_packets};
use prost::Message;

/// What every handler does with its packet: enough work that it cannot be optimised away, little enough that the
/// dispatch itself shows.
#[derive(Debug, Default)]
struct Ctx {
    sum: u64,
}

struct Handler;

/// Defines the packets, the protocol, the generated handler impl and the hash-map table from one list, so the two
/// contenders cannot drift apart. Handler method names are spelled out: a `macro_rules!` macro cannot derive them.
macro_rules! bench_protocol {
    ($($name:ident $method:ident $id:literal,)*) => {
        $(
            #[derive(Clone, PartialEq, Message, Packet)]
            #[packet(id = $id)]
            pub struct $name {
                #[prost(uint64, tag = "1")]
                pub value: u64,
                #[prost(uint32, tag = "2")]
                pub flags: u32,
            }
        )*

        /// The only server packet: a protocol needs both directions.
        #[derive(Clone, PartialEq, Message, Packet)]
        #[packet(id = 1)]
        pub struct SNothing {}

        define_packets! {
            pub protocol BenchProtocol {
                client_to_server ClientPacket { $($name,)* }
                server_to_client ServerPacket { SNothing }
            }
        }

        impl ClientPacketHandler<Ctx> for Handler {
            $(
                #[inline]
                fn $method(&mut self, ctx: &mut Ctx, packet: $name) {
                    ctx.sum = ctx.sum.wrapping_add(packet.value ^ u64::from(packet.flags));
                }
            )*
        }

        type BoxedHandler = Box<dyn Fn(&[u8], &mut Ctx) -> Result<(), prost::DecodeError>>;

        fn hashmap_table() -> HashMap<u16, BoxedHandler> {
            let mut table: HashMap<u16, BoxedHandler> = HashMap::new();
            $(
                table.insert(
                    <$name as Packet>::ID,
                    Box::new(|payload, ctx| {
                        let packet = $name::decode(payload)?;
                        ctx.sum = ctx.sum.wrapping_add(packet.value ^ u64::from(packet.flags));
                        Ok(())
                    }),
                );
            )*
            table
        }

        /// One frame per packet type: `(id, payload)`.
        fn one_of_each() -> Vec<(u16, Vec<u8>)> {
            let mut n = 0u64;
            vec![$({
                n += 1;
                (<$name as Packet>::ID, $name { value: n * 1_000_003, flags: n as u32 }.encode_to_vec())
            },)*]
        }
    };
}

bench_protocol! {
    P00 on_p00 2000,
    P01 on_p01 2001,
    P02 on_p02 2002,
    P03 on_p03 2003,
    P04 on_p04 2004,
    P05 on_p05 2005,
    P06 on_p06 2006,
    P07 on_p07 2007,
    P08 on_p08 2008,
    P09 on_p09 2009,
    P10 on_p10 2010,
    P11 on_p11 2011,
    P12 on_p12 2012,
    P13 on_p13 2013,
    P14 on_p14 2014,
    P15 on_p15 2015,
    P16 on_p16 2016,
    P17 on_p17 2017,
    P18 on_p18 2018,
    P19 on_p19 2019,
    P20 on_p20 2020,
    P21 on_p21 2021,
    P22 on_p22 2022,
    P23 on_p23 2023,
    P24 on_p24 2024,
    P25 on_p25 2025,
    P26 on_p26 2026,
    P27 on_p27 2027,
    P28 on_p28 2028,
    P29 on_p29 2029,
    P30 on_p30 2030,
    P31 on_p31 2031,
    P32 on_p32 2032,
    P33 on_p33 2033,
    P34 on_p34 2034,
    P35 on_p35 2035,
    P36 on_p36 2036,
    P37 on_p37 2037,
    P38 on_p38 2038,
    P39 on_p39 2039,
    P40 on_p40 2040,
    P41 on_p41 2041,
    P42 on_p42 2042,
    P43 on_p43 2043,
    P44 on_p44 2044,
    P45 on_p45 2045,
    P46 on_p46 2046,
    P47 on_p47 2047,
    P48 on_p48 2048,
    P49 on_p49 2049,
    P50 on_p50 2050,
    P51 on_p51 2051,
    P52 on_p52 2052,
    P53 on_p53 2053,
    P54 on_p54 2054,
    P55 on_p55 2055,
    P56 on_p56 2056,
    P57 on_p57 2057,
    P58 on_p58 2058,
    P59 on_p59 2059,
    P60 on_p60 2060,
    P61 on_p61 2061,
    P62 on_p62 2062,
    P63 on_p63 2063,
}

/// 1024 frames cycling through all 64 ids in a scrambled order, so the branch predictor cannot learn one id.
fn frames() -> Vec<(u16, Vec<u8>)> {
    let kinds = one_of_each();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            kinds[(state % kinds.len() as u64) as usize].clone()
        })
        .collect()
}

fn dispatch(c: &mut Criterion) {
    let frames = frames();
    let table = hashmap_table();

    // Both contenders must compute the same thing, or the comparison means nothing.
    let (mut a, mut b) = (Ctx::default(), Ctx::default());
    for (id, payload) in &frames {
        ClientPacket::decode_and_dispatch(*id, payload, &mut Handler, &mut a).unwrap();
        table[id](payload, &mut b).unwrap();
    }
    assert_eq!(a.sum, b.sum);

    let mut group = c.benchmark_group("dispatch_64_packets");
    group.throughput(Throughput::Elements(frames.len() as u64));
    group.bench_function("generated_match", |bench| {
        bench.iter(|| {
            let mut ctx = Ctx::default();
            for (id, payload) in &frames {
                ClientPacket::decode_and_dispatch(black_box(*id), black_box(payload), &mut Handler, &mut ctx).unwrap();
            }
            ctx.sum
        })
    });
    group.bench_function("hashmap_boxed_fn", |bench| {
        bench.iter(|| {
            let mut ctx = Ctx::default();
            for (id, payload) in &frames {
                let handler = table.get(&black_box(*id)).expect("every bench id is in the table");
                handler(black_box(payload), &mut ctx).unwrap();
            }
            ctx.sum
        })
    });
    group.finish();
}

criterion_group!(benches, dispatch);
criterion_main!(benches);
