//! Criterion benchmarks of the flow tracker: time per `observe` on a table of
//! 2^20 flows (8 ways, 32 MiB), batches of 4096 packets reported per element,
//! for a working set of 500k flows hit in random order (every lookup finds its
//! flow) and for a working set of 4M flows, four times the capacity (most
//! lookups miss and evict the least recently seen entry of their set).
//!
//! Run: `cargo bench --bench tracker -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dataplane::tracker::{FlowTracker, TrackerConfig};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

/// Packets per timed iteration.
const BATCH: usize = 4096;

/// Table capacity in flows.
const CAPACITY: usize = 1 << 20;

/// Packets in the precomputed random order (cycled through batch by batch).
const SEQUENCE: usize = 1 << 22;

/// `SEQUENCE` packets drawn uniformly from `working_set` random flows:
/// (fingerprint, member).
fn packets(working_set: usize) -> Vec<(u64, u32)> {
    let mut rng = Pcg64::seed_from_u64(working_set as u64);
    let flows: Vec<u64> = (0..working_set).map(|_| rng.gen()).collect();
    (0..SEQUENCE)
        .map(|_| {
            let fp = flows[rng.gen_range(0..working_set)];
            (fp, (fp >> 32) as u32 % 8)
        })
        .collect()
}

fn observe(c: &mut Criterion) {
    let mut group = c.benchmark_group("tracker-observe");
    group.throughput(Throughput::Elements(BATCH as u64));
    for (name, working_set) in [("hit-500k", 500_000), ("evict-4M", 4 * CAPACITY)] {
        let packets = packets(working_set);
        let mut tracker =
            FlowTracker::new(TrackerConfig::new(CAPACITY, 3_600_000_000_000)).expect("config");
        // Warm the table so the timed loop sees the steady state.
        for (i, &(fp, member)) in packets.iter().enumerate() {
            tracker.observe(fp, 1, member, i as u64);
        }
        let mut now = SEQUENCE as u64;
        let mut cursor = 0usize;
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                let batch = &packets[cursor..cursor + BATCH];
                for &(fp, member) in batch {
                    now += 1;
                    black_box(tracker.observe(black_box(fp), 1, member, now));
                }
                cursor = (cursor + BATCH) % SEQUENCE;
            })
        });
        let s = tracker.stats();
        eprintln!(
            "{name}: tracked {} new {} evictions {} breaks {}",
            s.tracked, s.new_flows, s.evictions, s.breaks
        );
    }
    group.finish();
}

criterion_group!(benches, observe);
criterion_main!(benches);
