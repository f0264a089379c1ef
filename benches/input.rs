//! Criterion micro-benchmark of the input reader: parse, validate and de-duplicate an in-memory
//! CSV of mixed rows, reported in rows/s.
//!
//! Run: `cargo bench -p pc-qualify-benches --profile dev --bench input` (add `-- --quick`).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pc_qualify::input::{InputOptions, InputReader, Record};

const ROWS: u64 = 10_000;

/// A deterministic, mixed input: mostly valid rows of the three qualifications, plus the
/// invalid and duplicate rows real files contain (about 1 in 10 of each kind below).
fn mixed_csv(rows: u64) -> Vec<u8> {
    let mut out = String::with_capacity(rows as usize * 80);
    out.push_str("customer_id,qualification,education_segment,website,validation_code,school\r\n");
    for i in 0..rows {
        let id = format!(
            "{:08x}-{:04x}-4abc-8def-{:012x}",
            i as u32,
            (i >> 32) as u16,
            i
        );
        let line = match i % 20 {
            // Invalid rows: a broken GUID, a qualification that cannot be set, a bad segment,
            // a GCC row without a code.
            3 => format!(
                "{}x,Education,K12,school{i}.example.edu,,School {i}",
                &id[..35]
            ),
            7 => format!("{id},Nonprofit,,,,Org {i}"),
            11 => format!("{id},Education,Kindergarten,school{i}.example.edu,,School {i}"),
            13 => format!("{id},GCC,,,,Agency {i}"),
            // Duplicate of the previous row (16 % 3 == 1: a valid GCC row), spelled differently.
            17 => {
                let prev = i - 1;
                let prev_id = format!(
                    "{:08x}-{:04x}-4abc-8def-{:012x}",
                    prev as u32,
                    (prev >> 32) as u16,
                    prev
                );
                format!("{},gcc,,,482913,Agency {prev}", prev_id.to_uppercase())
            }
            n if n % 3 == 0 => {
                format!("{id},Education,K12,school{i}.k12.example.us,,School {i}")
            }
            n if n % 3 == 1 => format!("{id},GovernmentCommunityCloud,,,482913,Agency {i}"),
            _ => format!("{id},StateOwnedEntity,,,,Entity {i}"),
        };
        out.push_str(&line);
        out.push_str("\r\n");
    }
    out.into_bytes()
}

fn read_all(input: &[u8]) -> (u64, u64) {
    let mut reader = InputReader::new(input, InputOptions::default()).expect("header");
    let (mut valid, mut rejected) = (0u64, 0u64);
    while let Some(record) = reader.next_record() {
        match record.expect("in-memory read") {
            Record::Valid(row) => {
                black_box(&row);
                valid += 1;
            }
            Record::Rejected(row) => {
                black_box(&row);
                rejected += 1;
            }
        }
    }
    (valid, rejected)
}

fn bench_input(c: &mut Criterion) {
    let input = mixed_csv(ROWS);
    // Sanity: every record yields exactly one row, and the mix is what it claims to be.
    let (valid, rejected) = read_all(&input);
    assert_eq!(valid + rejected, ROWS);
    assert_eq!(rejected, ROWS / 20 * 5);

    let mut group = c.benchmark_group("input");
    group.throughput(Throughput::Elements(ROWS));
    group.bench_function("read_validate_10k_mixed", |b| {
        b.iter(|| read_all(black_box(&input)))
    });

    let valid_only = {
        let mut out = String::from("customer_id,qualification\n");
        for i in 0..ROWS {
            out.push_str(&format!(
                "{:08x}-0000-4abc-8def-{:012x},StateOwnedEntity\n",
                i as u32, i
            ));
        }
        out.into_bytes()
    };
    group.bench_function("read_validate_10k_state_owned", |b| {
        b.iter(|| read_all(black_box(&valid_only)))
    });
    group.finish();
}

criterion_group!(benches, bench_input);
criterion_main!(benches);
