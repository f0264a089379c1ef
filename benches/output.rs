//! Criterion micro-benchmark of the results writer: 10,000 result rows written as CSV to
//! `std::io::sink()`, reported in rows/s.
//!
//! Run: `cargo bench -p pc-qualify-benches --profile dev --bench output` (add `-- --quick`).

use std::hint::black_box;
use std::io::{self, BufWriter};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pc_qualify::domain::model::{Outcome, ResultRow};
use pc_qualify::results::output::ResultsWriter;
use uuid::Uuid;

const ROWS: u64 = 10_000;

/// Rows shaped like a real run's: mostly created (with vetting fields and both ids), some
/// exists, failed (with a service error) and invalid (with a local error and a cell to defuse).
fn rows(n: u64) -> Vec<ResultRow> {
    (0..n)
        .map(|i| {
            let customer_id = format!("{:08x}-0000-4abc-8def-{:012x}", i as u32, i);
            let ids = (
                Some(Uuid::from_u128(u128::from(i) << 64 | 1)),
                Some(Uuid::from_u128(u128::from(i) << 64 | 2)),
            );
            match i % 10 {
                0 => ResultRow {
                    row: i + 1,
                    customer_id,
                    qualification: "Education".into(),
                    outcome: Some(Outcome::Exists),
                    http_status: Some(409),
                    vetting_status: Some("Approved".into()),
                    vetting_create_date: Some("2025-02-20T08:45:30Z".into()),
                    attempts: 1,
                    correlation_id: ids.0,
                    request_id: ids.1,
                    elapsed_ms: 23,
                    ..ResultRow::default()
                },
                1 => ResultRow {
                    row: i + 1,
                    customer_id,
                    qualification: "StateOwnedEntity".into(),
                    outcome: Some(Outcome::Failed),
                    http_status: Some(403),
                    attempts: 1,
                    correlation_id: ids.0,
                    request_id: ids.1,
                    error_code: Some("20002".into()),
                    error_message: Some("No relationship between caller and account.".into()),
                    elapsed_ms: 21,
                    ..ResultRow::default()
                },
                2 => ResultRow {
                    row: i + 1,
                    customer_id: format!("=HYPERLINK(\"{i}\")"),
                    qualification: "Education".into(),
                    outcome: Some(Outcome::Invalid),
                    error_code: Some("invalid_customer_id".into()),
                    error_message: Some(format!("customer_id: not a GUID: =HYPERLINK(\"{i}\")")),
                    ..ResultRow::default()
                },
                _ => ResultRow {
                    row: i + 1,
                    customer_id,
                    qualification: "GovernmentCommunityCloud".into(),
                    outcome: Some(Outcome::Created),
                    http_status: Some(201),
                    vetting_status: Some("Approved".into()),
                    vetting_create_date: Some("2025-02-20T08:45:30Z".into()),
                    attempts: 1,
                    correlation_id: ids.0,
                    request_id: ids.1,
                    elapsed_ms: 20,
                    ..ResultRow::default()
                },
            }
        })
        .collect()
}

fn bench_output(c: &mut Criterion) {
    let rows = rows(ROWS);
    let mut group = c.benchmark_group("output");
    group.throughput(Throughput::Elements(ROWS));
    // Straight into `io::sink()`: the writer's own cost (the csv crate keeps a 256-byte buffer).
    group.bench_function("write_10k_sink", |b| {
        b.iter(|| {
            let mut writer = ResultsWriter::with_header(io::sink()).expect("header");
            for row in &rows {
                writer.write(black_box(row)).expect("write");
            }
            writer.flush().expect("flush");
        })
    });
    // As a slow run writes: the 64 KiB `BufWriter` the results file gets, flushed after every
    // row (the pipeline flushes whenever its queue runs dry, which at low rates is every row).
    group.bench_function("write_10k_flush_each_row", |b| {
        b.iter(|| {
            let sink = BufWriter::with_capacity(64 * 1024, io::sink());
            let mut writer = ResultsWriter::with_header(sink).expect("header");
            for row in &rows {
                writer.write(black_box(row)).expect("write");
                writer.flush().expect("flush");
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench_output);
criterion_main!(benches);
