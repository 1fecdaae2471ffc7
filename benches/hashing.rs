//! Cost per flow of every `HashFunction` through `FlowHasher::hash` (field
//! serialisation included) on IPv4 and IPv6 5-tuples, and of
//! `FieldSelection::input` alone; batches of 1024 keys, reported per key.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hashing::{FieldSelection, FlowHasher, FlowKey, HashFields, HashFunction};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

const BATCH: usize = 1024;

fn flows(v6: bool) -> Vec<FlowKey> {
    let mut rng = Pcg64::seed_from_u64(if v6 { 6 } else { 4 });
    (0..BATCH)
        .map(|_| {
            let (src, dst) = if v6 {
                (
                    IpAddr::V6(Ipv6Addr::from(rng.gen::<u128>())),
                    IpAddr::V6(Ipv6Addr::from(rng.gen::<u128>())),
                )
            } else {
                (
                    IpAddr::V4(Ipv4Addr::from(rng.gen::<u32>())),
                    IpAddr::V4(Ipv4Addr::from(rng.gen::<u32>())),
                )
            };
            FlowKey::tcp(src, rng.gen(), dst, rng.gen())
        })
        .collect()
}

fn flow_hash(c: &mut Criterion) {
    let selection = FieldSelection::new(HashFields::L4);
    for (family, keys) in [("v4", flows(false)), ("v6", flows(true))] {
        let mut group = c.benchmark_group(format!("flow_hash_{family}"));
        group.throughput(Throughput::Elements(BATCH as u64));
        for function in HashFunction::ALL {
            let hasher = FlowHasher::new(function, selection, 0x5eed);
            group.bench_with_input(
                BenchmarkId::from_parameter(function.name()),
                &keys,
                |b, keys| {
                    b.iter(|| {
                        keys.iter()
                            .fold(0u32, |acc, k| acc ^ hasher.hash(black_box(k)))
                    })
                },
            );
        }
        group.finish();
    }
}

fn field_selection_input(c: &mut Criterion) {
    let selection = FieldSelection::new(HashFields::L4);
    let mut group = c.benchmark_group("field_selection_input");
    group.throughput(Throughput::Elements(BATCH as u64));
    for (family, keys) in [("v4", flows(false)), ("v6", flows(true))] {
        group.bench_with_input(BenchmarkId::from_parameter(family), &keys, |b, keys| {
            b.iter(|| {
                for k in keys {
                    black_box(selection.input(black_box(k)));
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, flow_hash, field_selection_input);
criterion_main!(benches);
