//! The run's timeline beside its results file (`results.csv.timeline`), for `report`'s
//! throughput over time: results rows carry no time of their own (the columns are a contract),
//! and the rows are written in the order they finish. One line `unix_ms,rows` at the start of a
//! run (rows 0) and then at most one a second while rows are written, `rows` counting that run's
//! rows so far; a `--resume` appends its own run. A line costs a write per second at most, and a
//! timeline that cannot be written costs the run nothing but a warning.

use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A timeline this long is not ours (a day of one line a second is 2 MB): not read.
const MAX_BYTES: u64 = 16 << 20;

/// `<output>.timeline`, beside the lock and the journal.
pub fn timeline_path(output: &str) -> PathBuf {
    let mut name = crate::results::lock::resolve(Path::new(output)).into_os_string();
    name.push(".timeline");
    PathBuf::from(name)
}

/// A run's timeline being written.
pub struct Timeline {
    file: File,
    path: PathBuf,
    /// The second of the last line written.
    second: u64,
    /// Rows noted, and rows on file: the last second's rows are written as the run ends.
    rows: (u64, u64),
}

impl Drop for Timeline {
    fn drop(&mut self) {
        if self.rows.0 > self.rows.1 {
            let _ = self.line(self.rows.0, true);
        }
    }
}

impl Timeline {
    /// Starts this run's part of the timeline beside `output`; a new run (not `resume`) starts
    /// the file over. `None`, with a warning, when it cannot be written.
    pub fn start(output: &str, resume: bool) -> Option<Timeline> {
        let path = timeline_path(output);
        let mut options = OpenOptions::new();
        options.append(true).create(true);
        let opened = crate::domain::atomic::open_side_file(&path, &mut options, !resume);
        let mut timeline = match opened {
            Ok(file) => Timeline {
                file,
                path,
                second: 0,
                rows: (0, 0),
            },
            Err(error) => return warn(&path, &error),
        };
        timeline.line(0, true).ok().map(|()| timeline)
    }

    /// Notes that `rows` rows of this run are written, at most once a second (a line of 0
    /// rows is a run's start).
    pub fn record(mut self, rows: u64) -> Option<Timeline> {
        self.rows.0 = rows;
        if rows == 0 {
            return Some(self);
        }
        self.line(rows, false).ok().map(|()| self)
    }

    fn line(&mut self, rows: u64, always: bool) -> io::Result<()> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        if !always && now.as_secs() == self.second {
            return Ok(());
        }
        self.second = now.as_secs();
        self.rows.1 = rows;
        let written = writeln!(self.file, "{},{rows}", now.as_millis());
        written.inspect_err(|error| {
            warn::<()>(&self.path, error);
        })
    }
}

fn warn<T>(path: &Path, error: &io::Error) -> Option<T> {
    tracing::warn!(path = %path.display(), error = %error, "the run's timeline is not written (the report will not show the throughput over time); the results are not affected");
    None
}

/// Rows finished in each of at most `bars` equal spans of running time: the runs of the
/// timeline beside `results` laid end to end (the time between a run and its `--resume` is not
/// running time). Returns the span and the counts; `None` when there is no readable timeline.
pub fn throughput(results: &Path, bars: u32) -> Option<(Duration, Vec<u64>)> {
    let mut text = String::new();
    let file = File::open(timeline_path(&results.to_string_lossy())).ok()?;
    file.take(MAX_BYTES).read_to_string(&mut text).ok()?;
    // (running ms, rows finished since the previous line)
    let (mut points, mut running, mut last) = (Vec::new(), 0u64, None::<(u64, u64)>);
    for line in text.lines() {
        let (ms, rows) = line.split_once(',')?;
        let (ms, rows): (u64, u64) = (ms.parse().ok()?, rows.parse().ok()?);
        if let Some((last_ms, last_rows)) = last.filter(|_| rows > 0) {
            running = running.saturating_add(ms.saturating_sub(last_ms));
            points.push((running, rows.saturating_sub(last_rows)));
        }
        last = Some((ms, rows));
    }
    // Spans of whole seconds, so that a bar's rows read as a rate.
    let span = running
        .div_ceil(u64::from(bars.max(1)))
        .div_ceil(1000)
        .max(1)
        * 1000;
    let mut counts = vec![0u64; usize::try_from(running.div_ceil(span).max(1)).ok()?];
    let last = counts.len() - 1;
    for (at, rows) in points {
        // A line is written once its rows are: they finished in the second before it.
        let bar = usize::try_from(at.saturating_sub(1) / span).ok()?;
        counts[bar.min(last)] += rows;
    }
    Some((Duration::from_millis(span), counts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_laid_end_to_end_in_spans_of_whole_seconds() {
        let dir = tempfile::tempdir().expect("dir");
        let results = dir.path().join("results.csv");
        // A run of 10 rows over 4 s, then a resume a day later: 6 rows in 2 s.
        let day = 86_400_000;
        let lines = [(0, 0), (1_000, 4), (2_000, 4), (4_000, 10)]
            .iter()
            .chain(&[(day, 0), (day + 1_000, 5), (day + 2_000, 6)])
            .map(|(ms, rows)| format!("{},{rows}\n", 1_700_000_000_000u64 + ms))
            .collect::<String>();
        std::fs::write(timeline_path(&results.to_string_lossy()), lines).expect("write");
        let (span, counts) = throughput(&results, 3).expect("timeline");
        assert_eq!(span, Duration::from_secs(2));
        assert_eq!(counts, vec![4, 6, 6]);
        assert_eq!(counts.iter().sum::<u64>(), 16);
        // A file that is not a timeline draws nothing.
        std::fs::write(timeline_path(&results.to_string_lossy()), "x\n").expect("write");
        assert_eq!(throughput(&results, 3), None);
    }
}
