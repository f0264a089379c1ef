//! The run's timeline beside its results file (`results.csv.timeline`), for `report`'s
//! throughput over time: results rows carry no time of their own (the columns are a contract),
//! and the rows are written in the order they finish. One line `unix_ms,rows` at the start of a
//! run (rows 0), then at most one a second: the time and count of the last flush of each second
//! in which rows were written, `rows` counting that run's rows so far; a `--resume` appends its
//! own run. A timeline that cannot be written costs the run a warning, never a row.

use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A timeline this long is not ours (a day of one line a second is 2 MB): read no further.
const MAX_BYTES: u64 = 16 << 20;

/// `<output>.timeline`, beside the lock and the journal.
pub fn timeline_path(output: &str) -> PathBuf {
    crate::results::lock::side_path(Path::new(output), ".timeline")
}

/// A run's timeline being written.
pub struct Timeline {
    file: File,
    path: PathBuf,
    /// The last flush: (unix ms, rows), and the rows already on file.
    last: (u128, u64),
    written: u64,
}

impl Timeline {
    /// Starts this run's part of the timeline beside `output`; a new run (not `resume`) starts
    /// the file over. `None`, with a warning, when it cannot be written.
    pub fn start(output: &str, resume: bool) -> Option<Timeline> {
        let path = timeline_path(output);
        // Not append mode: on Windows it lacks the right to empty the file (`empty`).
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true);
        let opened = crate::domain::atomic::open_side_file(&path, &mut options, !resume).and_then(
            |mut file| {
                // A run killed mid-line left a torn one: the new run starts on its own line.
                if file.seek(SeekFrom::End(0))? > 0 {
                    let mut last = [0u8];
                    file.seek(SeekFrom::End(-1))?;
                    file.read_exact(&mut last)?;
                    if last[0] != b'\n' {
                        file.write_all(b"\n")?;
                    }
                }
                Ok(file)
            },
        );
        let mut timeline = match opened {
            Ok(file) => Timeline {
                file,
                path,
                last: (now_ms(), 0),
                written: 0,
            },
            Err(error) => return warn(&path, &error),
        };
        timeline.write(timeline.last).ok().map(|()| timeline)
    }

    /// Notes that `rows` rows of this run are written. When a new second has begun, the last
    /// flush of the one before goes on file (its rows finished in that second, however long a
    /// pause follows).
    pub fn record(mut self, rows: u64) -> Option<Timeline> {
        let now = now_ms();
        let previous = self.last;
        self.last = (now, rows);
        if now / 1000 == previous.0 / 1000 || previous.1 == self.written {
            return Some(self);
        }
        self.write(previous).ok().map(|()| self)
    }

    fn write(&mut self, (ms, rows): (u128, u64)) -> io::Result<()> {
        self.written = rows;
        // One write per line: a kill leaves whole lines or one torn last line.
        let written = self.file.write_all(format!("{ms},{rows}\n").as_bytes());
        written.inspect_err(|error| {
            warn::<()>(&self.path, error);
        })
    }
}

impl Drop for Timeline {
    /// The run's last rows, whatever second they finished in.
    fn drop(&mut self) {
        if self.last.1 > self.written {
            let _ = self.write(self.last);
        }
    }
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
}

fn warn<T>(path: &Path, error: &io::Error) -> Option<T> {
    tracing::warn!(path = %path.display(), error = %error, "the run's timeline is not written (the report will not show the throughput over time); the results are not affected");
    None
}

/// Rows finished per span of running time, drawn by `report`.
#[derive(Debug, PartialEq)]
pub struct Throughput {
    /// The length of each span: whole seconds, so that a span's rows read as a rate.
    pub span: Duration,
    /// Rows finished in each span.
    pub counts: Vec<u64>,
    /// The running time the spans cover.
    pub running: Duration,
}

/// The timeline beside `results` as at most `bars` spans of running time, the runs laid end to
/// end (the time between a run and its `--resume` is not running time). `Err` says why there is
/// no chart: no timeline, one that is not a regular file, or no rows on it. Lines that do not
/// read as `ms,rows`, or that count fewer rows than the line before (a torn last line), are left
/// out.
pub fn throughput(results: &Path, bars: u32) -> Result<Throughput, &'static str> {
    let path = timeline_path(&results.to_string_lossy());
    // Not a FIFO or a device someone put there: the report would wait on it.
    if !std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
        return Err("no timeline beside the results file");
    }
    let mut text = String::new();
    let file = File::open(&path).map_err(|_| "the timeline could not be read")?;
    let _ = file.take(MAX_BYTES).read_to_string(&mut text);
    // (running ms at the line, rows finished since the line before)
    let (mut points, mut running, mut last) = (Vec::new(), 0u64, None::<(u64, u64)>);
    for line in text.lines() {
        let Some((ms, rows)) = line.split_once(',') else {
            continue;
        };
        let (Ok(ms), Ok(rows)) = (ms.parse::<u64>(), rows.parse::<u64>()) else {
            continue;
        };
        // A run's count only grows: fewer rows, not 0, is a torn line (a number cut short).
        if last.is_some_and(|(_, last_rows)| rows > 0 && rows < last_rows) {
            continue;
        }
        if let Some((last_ms, last_rows)) = last.filter(|_| rows > 0) {
            running = running.saturating_add(ms.saturating_sub(last_ms));
            points.push((running, rows.saturating_sub(last_rows)));
        }
        last = Some((ms, rows));
    }
    if points.iter().all(|&(_, rows)| rows == 0) {
        return Err("no rows on the timeline beside the results file");
    }
    let span = running
        .div_ceil(u64::from(bars.max(1)))
        .div_ceil(1000)
        .max(1)
        .saturating_mul(1000);
    let spans = usize::try_from(running.div_ceil(span).max(1)).map_err(|_| "too long")?;
    let mut counts = vec![0u64; spans];
    for (at, rows) in points {
        // Rows on a line finished before its time: a line at 2.000 s belongs to the first 2 s.
        let bar = usize::try_from(at.saturating_sub(1) / span).unwrap_or(usize::MAX);
        let count = &mut counts[bar.min(spans - 1)];
        *count = count.saturating_add(rows);
    }
    Ok(Throughput {
        span: Duration::from_millis(span),
        counts,
        running: Duration::from_millis(running),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_laid_end_to_end_in_spans_of_whole_seconds() {
        let dir = tempfile::tempdir().expect("dir");
        let results = dir.path().join("results.csv");
        let timeline = timeline_path(&results.to_string_lossy());
        // A run of 10 rows over 4 s, killed mid-line; a resume a day later: 6 rows in 2 s.
        let day = 86_400_000;
        let lines = [(0, 0), (1_000, 4), (2_000, 4), (4_000, 10)]
            .iter()
            .map(|(ms, rows)| format!("{},{rows}\n", 1_700_000_000_000u64 + ms))
            .collect::<String>();
        std::fs::write(&timeline, lines + "1700000004500,1").expect("write");
        let resumed = [(day, 0), (day + 1_000, 5), (day + 2_000, 6)]
            .iter()
            .map(|(ms, rows)| format!("{},{rows}\n", 1_700_000_000_000u64 + ms))
            .collect::<String>();
        let mut file = OpenOptions::new()
            .append(true)
            .open(&timeline)
            .expect("open");
        file.write_all(b"\n")
            .and_then(|()| file.write_all(resumed.as_bytes()))
            .expect("append");
        let drawn = throughput(&results, 3).expect("timeline");
        assert_eq!(drawn.span, Duration::from_secs(2));
        assert_eq!(drawn.counts, vec![4, 6, 6]);
        assert_eq!(drawn.running, Duration::from_secs(6));
        // A file with nothing to draw says so.
        std::fs::write(&timeline, "x\n1700000000000,0\n").expect("write");
        assert!(throughput(&results, 3).is_err());
    }

    #[test]
    fn the_last_flush_of_each_second_goes_on_file_and_the_end_closes_it() {
        let dir = tempfile::tempdir().expect("dir");
        let results = dir
            .path()
            .join("results.csv")
            .to_string_lossy()
            .into_owned();
        let mut timeline = Timeline::start(&results, false).expect("started");
        for rows in 1..=3 {
            timeline = timeline.record(rows).expect("recorded");
        }
        drop(timeline);
        let text = std::fs::read_to_string(timeline_path(&results)).expect("read");
        let rows: Vec<&str> = text.lines().filter_map(|l| l.split(',').nth(1)).collect();
        // The start, then 3 (the end) unless a second boundary fell between the records.
        assert_eq!(rows.first(), Some(&"0"));
        assert_eq!(rows.last(), Some(&"3"));
        // A resume appends its own start after the first run's lines.
        drop(Timeline::start(&results, true).expect("resumed"));
        let again = std::fs::read_to_string(timeline_path(&results)).expect("read");
        assert!(
            again.starts_with(&text) && again[text.len()..].ends_with(",0\n"),
            "{again}"
        );
        // A torn last line (a kill mid-write) stays its own line; the next run starts on a new one.
        let path = timeline_path(&results);
        std::fs::write(&path, format!("{again}17000")).expect("tear");
        drop(Timeline::start(&results, true).expect("resumed after a tear"));
        let torn = std::fs::read_to_string(&path).expect("read");
        let last: Vec<&str> = torn.lines().rev().take(2).collect();
        assert!(last[1] == "17000" && last[0].ends_with(",0"), "{torn}");
    }
}
