//! Criterion benchmarks of packet parsing: `parse_flow` (Ethernet to flow
//! key, with one length check per header) on the frames a router meets most,
//! 1024 distinct frames per timed iteration, reported per frame.
//!
//! Run: `cargo bench --bench parse -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dataplane::emulator::build_frame;
use dataplane::packet::{parse_flow, ParseOptions};
use hashing::FlowKey;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

/// Frames per timed iteration.
const FRAMES: usize = 1024;

const SRC_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const DST_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];

fn keys(v6: bool, proto: u8) -> Vec<FlowKey> {
    let mut rng = Pcg64::seed_from_u64(u64::from(proto) + u64::from(v6));
    (0..FRAMES)
        .map(|_| {
            let (src, dst): (IpAddr, IpAddr) = if v6 {
                (
                    Ipv6Addr::from(rng.gen::<u128>()).into(),
                    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10).into(),
                )
            } else {
                (
                    Ipv4Addr::from(rng.gen::<u32>()).into(),
                    Ipv4Addr::new(203, 0, 113, 10).into(),
                )
            };
            FlowKey {
                proto,
                flow_label: if v6 { rng.gen::<u32>() & 0xfffff } else { 0 },
                ..FlowKey::tcp(src, rng.gen_range(1024..65535), dst, 443)
            }
        })
        .collect()
}

/// Inserts an 802.1Q tag (VLAN 100) after the MAC addresses.
fn tagged(mut frame: Vec<u8>) -> Vec<u8> {
    frame.splice(12..12, [0x81, 0x00, 0x00, 100]);
    frame
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse-flow");
    group.throughput(Throughput::Elements(FRAMES as u64));
    let opts = ParseOptions::default();
    let sets: Vec<(&str, Vec<Vec<u8>>)> = vec![
        (
            "ipv4-tcp",
            keys(false, 6)
                .iter()
                .map(|k| build_frame(k, SRC_MAC, DST_MAC, 64))
                .collect(),
        ),
        (
            "ipv4-udp",
            keys(false, 17)
                .iter()
                .map(|k| build_frame(k, SRC_MAC, DST_MAC, 64))
                .collect(),
        ),
        (
            "ipv6-tcp",
            keys(true, 6)
                .iter()
                .map(|k| build_frame(k, SRC_MAC, DST_MAC, 64))
                .collect(),
        ),
        (
            "vlan-ipv4-tcp",
            keys(false, 6)
                .iter()
                .map(|k| tagged(build_frame(k, SRC_MAC, DST_MAC, 64)))
                .collect(),
        ),
    ];
    for (name, frames) in &sets {
        // Every frame parses (the bench times the successful path).
        assert!(
            frames.iter().all(|f| parse_flow(f, &opts).is_ok()),
            "{name}"
        );
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                for f in frames {
                    black_box(parse_flow(black_box(f), &opts).ok());
                }
            })
        });
    }
    // Hostile input: truncated frames are refused with a reason.
    let truncated: Vec<Vec<u8>> = sets[0].1.iter().map(|f| f[..30].to_vec()).collect();
    assert!(truncated.iter().all(|f| parse_flow(f, &opts).is_err()));
    group.bench_function(BenchmarkId::from_parameter("truncated-ipv4"), |b| {
        b.iter(|| {
            for f in &truncated {
                black_box(parse_flow(black_box(f), &opts).err());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
