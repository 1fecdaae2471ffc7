//! IPv6 LPM: per-lookup cost on a 200k-prefix synthetic table (single lookups
//! and `lookup_batch`), and the time to insert the whole table.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use dataplane::fib::lpm6::{self, synthetic_bgp6_table, Lpm6Config, Lpm6Writer};
use rand::{Rng, SeedableRng};

const PREFIXES: usize = 200_000;
const BATCH: usize = 4096;
const CONFIG: Lpm6Config = Lpm6Config { groups: 1 << 18 };

fn build(table: &[(std::net::Ipv6Addr, u8, u32)]) -> (Lpm6Writer, lpm6::Lpm6Reader) {
    let (mut w, r) = lpm6::new(CONFIG);
    for &(p, len, v) in table {
        w.insert(p, len, v)
            .expect("the synthetic table fits the pool");
    }
    (w, r)
}

/// 90% of the addresses fall inside a random announced prefix, 10% anywhere
/// in 2000::/3.
fn addresses(table: &[(std::net::Ipv6Addr, u8, u32)], n: usize) -> Vec<u128> {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(42);
    (0..n)
        .map(|_| {
            let host: u128 = rng.gen();
            if rng.gen_bool(0.9) {
                let (p, len, _) = table[rng.gen_range(0..table.len())];
                u128::from(p) | host.checked_shr(u32::from(len)).unwrap_or(0)
            } else {
                (1u128 << 125) | (host >> 3)
            }
        })
        .collect()
}

fn lookups(c: &mut Criterion) {
    let table = synthetic_bgp6_table(PREFIXES, 1);
    let (w, r) = build(&table);
    let addrs = addresses(&table, BATCH);
    let hits = addrs.iter().filter(|&&a| r.lookup(a).is_some()).count();
    println!(
        "lpm6: {} prefixes, {} groups in use, memory_bytes {} ({:.0} MiB), {}/{} sample addresses routed",
        w.len(),
        w.groups_in_use(),
        r.memory_bytes(),
        r.memory_bytes() as f64 / (1 << 20) as f64,
        hits,
        BATCH
    );
    let mut g = c.benchmark_group("lpm6_lookup_200k");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("lookup", |b| {
        b.iter(|| {
            let mut acc = 0u32;
            for &a in &addrs {
                acc = acc.wrapping_add(r.lookup(black_box(a)).unwrap_or(0));
            }
            acc
        })
    });
    let mut out = vec![0u32; BATCH];
    g.bench_function("lookup_batch", |b| {
        b.iter(|| {
            r.lookup_batch(black_box(&addrs), &mut out);
            out[BATCH - 1]
        })
    });
    g.finish();
}

fn inserts(c: &mut Criterion) {
    let table = synthetic_bgp6_table(PREFIXES, 1);
    let mut g = c.benchmark_group("lpm6_build_200k");
    g.sample_size(10);
    g.throughput(Throughput::Elements(PREFIXES as u64));
    g.bench_function("insert_all", |b| {
        b.iter_batched(
            || lpm6::new(CONFIG),
            |(mut w, r)| {
                for &(p, len, v) in &table {
                    w.insert(p, len, v).expect("fits");
                }
                (w, r)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, lookups, inserts);
criterion_main!(benches);
