//! Criterion benchmark: decoding and encoding the stored records of one channel — its
//! channel log and its monitor log as the harness stored them (`tests/data/v2_*_channel.jsonl`,
//! `v3_*_monitor.jsonl`: a snapshot and a payment's records each) — in the JSON that format
//! versions 2 and 3 wrote and in today's binary form (the same records re-encoded).
//!
//! A start decodes a snapshot and a short tail per channel and monitor; every payment turn
//! encodes a few records per channel. Never asserts timings; numbers go to BENCHMARKS.md.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use fulmen_channel::machine::Record;
use fulmen_channel::monitor::MonitorRecord;

const CHANNEL_LOG: &str = include_str!("../tests/data/v2_alice_channel.jsonl");
const MONITOR_LOG: &str = include_str!("../tests/data/v3_alice_monitor.jsonl");

fn bench_record_codec(c: &mut Criterion) {
    let json_channel: Vec<&[u8]> = CHANNEL_LOG.lines().map(str::as_bytes).collect();
    let json_monitor: Vec<&[u8]> = MONITOR_LOG.lines().map(str::as_bytes).collect();
    let records: Vec<Record> = json_channel
        .iter()
        .map(|l| Record::decode(l).expect("a fixture record"))
        .collect();
    let monitor: Vec<MonitorRecord> = json_monitor
        .iter()
        .map(|l| MonitorRecord::decode(l).expect("a fixture record"))
        .collect();
    let bin_channel: Vec<Vec<u8>> = records.iter().map(Record::encode).collect();
    let bin_monitor: Vec<Vec<u8>> = monitor.iter().map(MonitorRecord::encode).collect();
    let size = |v: &[&[u8]]| v.iter().map(|b| b.len()).sum::<usize>();
    let bsize = |v: &[Vec<u8>]| v.iter().map(Vec::len).sum::<usize>();
    println!(
        "channel log: {} records, {} bytes JSON, {} bytes binary; \
         monitor log: {} records, {} bytes JSON, {} bytes binary",
        records.len(),
        size(&json_channel),
        bsize(&bin_channel),
        monitor.len(),
        size(&json_monitor),
        bsize(&bin_monitor)
    );

    let mut g = c.benchmark_group("record_codec");
    g.sample_size(30);
    g.bench_function("decode channel log (JSON v2)", |b| {
        b.iter(|| {
            for l in &json_channel {
                black_box(Record::decode(black_box(l)).is_ok());
            }
        })
    });
    g.bench_function("decode channel log (binary v3)", |b| {
        b.iter(|| {
            for l in &bin_channel {
                black_box(Record::decode(black_box(l)).is_ok());
            }
        })
    });
    g.bench_function("decode monitor log (JSON v3)", |b| {
        b.iter(|| {
            for l in &json_monitor {
                black_box(MonitorRecord::decode(black_box(l)).is_ok());
            }
        })
    });
    g.bench_function("decode monitor log (binary v4)", |b| {
        b.iter(|| {
            for l in &bin_monitor {
                black_box(MonitorRecord::decode(black_box(l)).is_ok());
            }
        })
    });
    g.bench_function("encode channel log (binary v3)", |b| {
        b.iter(|| {
            for r in &records {
                black_box(r.encode());
            }
        })
    });
    g.bench_function("encode monitor log (binary v4)", |b| {
        b.iter(|| {
            for r in &monitor {
                black_box(r.encode());
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench_record_codec);
criterion_main!(benches);
