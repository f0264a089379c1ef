//! Arbitrary bytes as an input file: the reader must never panic, every record it yields must
//! carry the next row number, and the progress bar's count must agree with it (the same records,
//! or no count for a file the reader refuses). The bytes go through a file and `InputSource`, the
//! path the commands take, because the counter is not public on its own.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pc_qualify::input::source::{InputFormat, InputSource};
use pc_qualify::input::{InputOptions, Record};

fuzz_target!(|data: &[u8]| {
    // The delimiter sniffing runs on the header line of every file.
    let _ = pc_qualify::input::source::detect_delimiter(data);
    let path = std::env::temp_dir().join(format!("pcq-fuzz-{}.csv", std::process::id()));
    std::fs::write(&path, data).expect("write the input");
    let path = path.to_string_lossy().into_owned();
    let Ok(mut source) = InputSource::open(&path, &InputFormat::default()) else {
        return;
    };
    let count = source.count();
    let Ok(mut reader) = source.reader(InputOptions::default()) else {
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
    if let (Some(count), false) = (count, failed) {
        assert_eq!(count, n);
    }
});
