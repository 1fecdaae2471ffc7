//! Criterion benchmarks of every nexthop selector: time per lookup (batches of
//! 4096 precomputed hashes, reported per element) and time to build a
//! selector (`AnySelector::new`), for groups of 2 to 64 equal members with
//! default parameters (resilient: 128 buckets; Maglev: M = 65537).
//!
//! Run: `cargo bench --bench selectors` (about three minutes on two cores;
//! `-- --warm-up-time 1 --measurement-time 2` for steadier numbers, or a
//! filter such as `-- lookup-maglev`).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hashing::select::{mix64, Algorithm, AnySelector, Member, Selector, SelectorParams};

/// Hashes per timed iteration of the lookup benchmarks.
const BATCH: usize = 4096;

/// Group sizes benchmarked.
const MEMBER_COUNTS: [u32; 6] = [2, 4, 8, 16, 32, 64];

fn members(n: u32) -> Vec<Member> {
    (0..n).map(|i| Member::new(100 + i)).collect()
}

/// Uniform 32-bit flow hashes, the same every run.
fn hashes() -> Vec<u32> {
    (0..BATCH as u64).map(|i| mix64(i) as u32).collect()
}

fn lookup(c: &mut Criterion) {
    let hashes = hashes();
    let params = SelectorParams::default();
    for algorithm in Algorithm::ALL {
        let mut group = c.benchmark_group(format!("lookup-{algorithm}"));
        group.throughput(Throughput::Elements(BATCH as u64));
        for n in MEMBER_COUNTS {
            let selector = AnySelector::new(algorithm, &params, &members(n), 0)
                .unwrap_or_else(|e| panic!("{algorithm} with {n} members: {e}"));
            group.bench_with_input(BenchmarkId::from_parameter(n), &selector, |b, s| {
                b.iter(|| {
                    let mut acc = 0u32;
                    for &h in black_box(&hashes[..]) {
                        acc = acc.wrapping_add(s.select(h).unwrap_or(0));
                    }
                    acc
                })
            });
        }
        group.finish();
    }
}

fn build(c: &mut Criterion) {
    let params = SelectorParams::default();
    for algorithm in Algorithm::ALL {
        let mut group = c.benchmark_group(format!("build-{algorithm}"));
        for n in MEMBER_COUNTS {
            let m = members(n);
            group.bench_with_input(BenchmarkId::from_parameter(n), &m, |b, m| {
                b.iter_with_large_drop(|| {
                    AnySelector::new(algorithm, &params, black_box(m), 0)
                        .unwrap_or_else(|e| panic!("{algorithm} with {n} members: {e}"))
                })
            });
        }
        group.finish();
    }
}

/// Short runs so the 108 benchmarks finish in a few minutes; command-line
/// options (`--warm-up-time`, `--measurement-time`, `--sample-size`) override.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20)
}

criterion_group! {
    name = selectors;
    config = config();
    targets = lookup, build
}
criterion_main!(selectors);
