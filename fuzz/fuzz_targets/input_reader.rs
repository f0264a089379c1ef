//! Arbitrary bytes as an input file: the reader must never panic, every record it yields must
//! carry the next row number, and the record counter must agree with it (the same records, or
//! the same refusal of a file that is not UTF-8).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pc_qualify::input::{count_records, InputOptions, InputReader, Record};

fuzz_target!(|data: &[u8]| {
    // The delimiter sniffing runs on the header line of every file.
    let _ = pc_qualify::input::source::detect_delimiter(data);
    let Ok(mut reader) = InputReader::new(data, InputOptions::default()) else {
        return;
    };
    let mut n = 0u64;
    let mut failed = false;
    while let Some(record) = reader.next_record() {
        match record {
            Ok(Record::Valid(row)) => {
                n += 1;
                assert_eq!(row.index, n);
            }
            Ok(Record::Rejected(row)) => {
                n += 1;
                assert_eq!(row.row, n);
            }
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    if let Ok(count) = count_records(data) {
        if !failed {
            assert_eq!(count, n);
        }
    }
});
