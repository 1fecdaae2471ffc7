//! Cost per flow of every `HashFunction` through `FlowHasher::hash` (field
//! serialisation included) on IPv4 and IPv6 5-tuples, of `FieldSelection::input`
//! alone and of each function on already serialised bytes; batches of 1024
//! keys, reported per key. Two kept comparisons justify choices: ecmpd's
//! table CRC against the `crc` crate it replaced, and XXH3 (the default)
//! against ahash.

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

/// The serialised 5-tuples of `keys`.
fn inputs(keys: &[FlowKey]) -> Vec<hashing::HashInput> {
    let selection = FieldSelection::new(HashFields::L4);
    keys.iter().map(|k| selection.input(k)).collect()
}

fn raw_hash(c: &mut Criterion) {
    for (family, keys) in [("v4", flows(false)), ("v6", flows(true))] {
        let inputs = inputs(&keys);
        let mut group = c.benchmark_group(format!("raw_hash_{family}"));
        group.throughput(Throughput::Elements(BATCH as u64));
        for function in HashFunction::ALL {
            let hasher = FlowHasher::new(function, FieldSelection::new(HashFields::L4), 0x5eed);
            group.bench_with_input(
                BenchmarkId::from_parameter(function.name()),
                &inputs,
                |b, inputs| {
                    b.iter(|| {
                        inputs
                            .iter()
                            .fold(0u32, |acc, i| acc ^ hasher.raw(black_box(i.as_bytes())))
                    })
                },
            );
        }
        group.finish();
    }
}

/// ecmpd's CRCs against the `crc` crate's table implementation.
fn crc_vs_crate(c: &mut Criterion) {
    use hashing::hash::crc;
    let crc32 = ::crc::Crc::<u32>::new(&::crc::CRC_32_ISO_HDLC);
    let crc16 = ::crc::Crc::<u16>::new(&::crc::CRC_16_IBM_3740);
    for (family, keys) in [("v4", flows(false)), ("v6", flows(true))] {
        let inputs = inputs(&keys);
        let mut group = c.benchmark_group(format!("crc_vs_crate_{family}"));
        group.throughput(Throughput::Elements(BATCH as u64));
        let init32 = crc::crc32_init(0);
        group.bench_with_input("crc32/ecmpd", &inputs, |b, inputs| {
            b.iter(|| {
                inputs.iter().fold(0u32, |acc, i| {
                    acc ^ crc::crc32(init32, black_box(i.as_bytes()))
                })
            })
        });
        group.bench_with_input("crc32/crc-crate", &inputs, |b, inputs| {
            b.iter(|| {
                inputs
                    .iter()
                    .fold(0u32, |acc, i| acc ^ crc32.checksum(black_box(i.as_bytes())))
            })
        });
        let init16 = crc::crc16_init(HashFunction::Crc16Ccitt, 0);
        group.bench_with_input("crc16-ccitt/ecmpd", &inputs, |b, inputs| {
            b.iter(|| {
                inputs.iter().fold(0u16, |acc, i| {
                    acc ^ crc::crc16(HashFunction::Crc16Ccitt, init16, black_box(i.as_bytes()))
                })
            })
        });
        group.bench_with_input("crc16-ccitt/crc-crate", &inputs, |b, inputs| {
            b.iter(|| {
                inputs
                    .iter()
                    .fold(0u16, |acc, i| acc ^ crc16.checksum(black_box(i.as_bytes())))
            })
        });
        group.finish();
    }
}

/// The default hash against ahash, the alternative DESIGN names.
fn xxh3_vs_ahash(c: &mut Criterion) {
    let state = ahash::RandomState::with_seeds(1, 2, 3, 4);
    for (family, keys) in [("v4", flows(false)), ("v6", flows(true))] {
        let inputs = inputs(&keys);
        let mut group = c.benchmark_group(format!("xxh3_vs_ahash_{family}"));
        group.throughput(Throughput::Elements(BATCH as u64));
        group.bench_with_input("xxh3", &inputs, |b, inputs| {
            b.iter(|| {
                inputs.iter().fold(0u64, |acc, i| {
                    acc ^ xxhash_rust::xxh3::xxh3_64_with_seed(black_box(i.as_bytes()), 0x5eed)
                })
            })
        });
        group.bench_with_input("ahash", &inputs, |b, inputs| {
            b.iter(|| {
                inputs
                    .iter()
                    .fold(0u64, |acc, i| acc ^ state.hash_one(black_box(i.as_bytes())))
            })
        });
        group.finish();
    }
}

criterion_group!(
    benches,
    flow_hash,
    field_selection_input,
    raw_hash,
    crc_vs_crate,
    xxh3_vs_ahash
);
criterion_main!(benches);
