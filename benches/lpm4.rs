//! IPv4 DIR-24-8 longest-prefix match on a 900k-prefix synthetic BGP-like
//! table: ns per lookup of random addresses (batches of 4096, one at a time
//! and through `lookup_batch`, cache-hot and cache-cold), and the time to
//! insert all 900k routes.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use dataplane::fib::lpm4::{self, synthetic_bgp_table, Lpm4Config, Lpm4Reader};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

const ROUTES: usize = 900_000;
const BATCH: usize = 4096;
const SEED: u64 = 24;
const POOL: usize = 1 << 22;

fn lookup_each(reader: &Lpm4Reader, addrs: &[u32]) -> u32 {
    let mut acc = 0u32;
    for &a in addrs {
        acc = acc.wrapping_add(reader.lookup(a).unwrap_or(0));
    }
    acc
}

fn lookups(c: &mut Criterion) {
    let routes = synthetic_bgp_table(ROUTES, SEED);
    let (mut writer, reader) = lpm4::new(Lpm4Config::default());
    for &(p, l, v) in &routes {
        writer
            .insert(p, l, v)
            .expect("synthetic table fits the default pool");
    }
    eprintln!(
        "lpm4: {} routes, {} tbl8 groups in use, lookup storage {} bytes ({:.1} MiB), writer bookkeeping {:.1} MiB",
        writer.len(),
        writer.tbl8_groups_in_use(),
        reader.memory_bytes(),
        reader.memory_bytes() as f64 / (1 << 20) as f64,
        writer.writer_memory_bytes() as f64 / (1 << 20) as f64,
    );
    // "hot": the same 4096 addresses every iteration, so the tbl24 lines
    // they touch stay in cache (the usual micro-benchmark figure). "cold":
    // each iteration takes the next 4096 of 4M random addresses, so most
    // lookups miss the caches and the TLB, as in a router with many flows.
    let mut rng = Pcg64::seed_from_u64(SEED + 1);
    let pool: Vec<u32> = (0..POOL).map(|_| rng.gen()).collect();
    let hot = &pool[..BATCH];
    let mut out = vec![0u32; BATCH];
    let mut next = 0usize;
    let mut window = move || {
        next = (next + BATCH) % POOL;
        next
    };

    let mut g = c.benchmark_group("lpm4_lookup_900k");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("lookup_hot", |b| {
        b.iter(|| lookup_each(&reader, black_box(hot)))
    });
    g.bench_function("lookup_batch_hot", |b| {
        b.iter(|| {
            reader.lookup_batch(black_box(hot), &mut out);
            black_box(&out);
        })
    });
    g.bench_function("lookup_cold", |b| {
        b.iter(|| {
            let start = window();
            lookup_each(&reader, black_box(&pool[start..start + BATCH]))
        })
    });
    g.bench_function("lookup_batch_cold", |b| {
        b.iter(|| {
            let start = window();
            reader.lookup_batch(black_box(&pool[start..start + BATCH]), &mut out);
            black_box(&out);
        })
    });
    g.finish();
}

fn inserts(c: &mut Criterion) {
    let routes = synthetic_bgp_table(ROUTES, SEED);
    let mut g = c.benchmark_group("lpm4_insert");
    g.sample_size(10);
    g.throughput(Throughput::Elements(ROUTES as u64));
    g.bench_function("insert_900k", |b| {
        b.iter_batched(
            || lpm4::new(Lpm4Config::default()),
            |(mut writer, reader)| {
                for &(p, l, v) in &routes {
                    let _ = writer.insert(p, l, v);
                }
                (writer, reader)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, lookups, inserts);
criterion_main!(benches);
