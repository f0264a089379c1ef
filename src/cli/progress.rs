//! The progress bar on stderr, and the log writer that keeps log lines from tearing it.
//!
//! The workers never touch the bar: a background task reads the run-wide [`Stats`] every
//! 200 ms and updates it, so the bar costs nothing per row however fast rows finish.

use std::io::Write;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::error::CliError;
use crate::domain::model::Outcome;
use crate::domain::stats::Stats;

/// How often the background task copies the counters into the bar.
const REFRESH: Duration = Duration::from_millis(200);
/// How often the spinner moves and the rate/ETA are redrawn between refreshes.
const TICK: Duration = Duration::from_millis(100);

const TEMPLATE_TOTAL: &str =
    "{spinner} {bar:30} {human_pos}/{human_len} rows  {per_sec:1}  ETA {eta}  {msg}";
const TEMPLATE_COUNT: &str = "{spinner} {human_pos} rows  {per_sec:1}  {elapsed}  {msg}";
const TEMPLATE_CUSTOMERS: &str = "{spinner} {human_pos} customers  {per_sec:1}  {elapsed}  {msg}";

/// What a bar counts: results rows (run, reconcile, refresh) or customers (export).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counting {
    /// Rows with a final outcome.
    Rows,
    /// Customers written, with their qualifications.
    Customers,
}

/// The bar being drawn now, for [`LogWriter`]; `None` when there is none.
static ACTIVE: RwLock<Option<ProgressBar>> = RwLock::new(None);

/// A progress bar on stderr that follows a run's [`Stats`]; a no-op when not drawn.
pub struct Progress {
    inner: Option<Active>,
}

struct Active {
    bar: ProgressBar,
    updater: tokio::task::JoinHandle<()>,
}

/// The pacer's state as the bar shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pace {
    /// A 429 pause is in force.
    pub paused: bool,
    /// The request rate in force (`None` = unlimited).
    pub rate: Option<f64>,
}

/// The pacer's state now; called from the updater, never per row.
pub type PausedFn = Arc<dyn Fn() -> Pace + Send + Sync>;

impl Progress {
    /// A bar when `enabled` and stderr is a terminal; otherwise a no-op. `total` is known for file inputs.
    ///
    /// Must be called inside a tokio runtime (the updater is a task); outside one it is a no-op.
    #[cfg(test)]
    pub fn start(
        enabled: bool,
        total: Option<u64>,
        stats: Arc<Stats>,
        paused: PausedFn,
    ) -> Progress {
        Progress::start_counting(enabled, total, stats, paused, Counting::Rows)
    }

    /// [`Progress::start`] for a bar that counts what `counting` says.
    pub fn start_counting(
        enabled: bool,
        total: Option<u64>,
        stats: Arc<Stats>,
        paused: PausedFn,
        counting: Counting,
    ) -> Progress {
        if !enabled {
            return Progress { inner: None };
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Progress { inner: None };
        };
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
        // indicatif hides a stderr target that is not a terminal; then there is nothing to update.
        if bar.is_hidden() {
            return Progress { inner: None };
        }
        let template = match (counting, total) {
            (Counting::Customers, _) => TEMPLATE_CUSTOMERS,
            (Counting::Rows, Some(_)) => TEMPLATE_TOTAL,
            (Counting::Rows, None) => TEMPLATE_COUNT,
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar.set_message(message(&stats, paused(), counting));
        bar.enable_steady_tick(TICK);
        register(Some(bar.clone()));
        let updater = runtime.spawn({
            let bar = bar.clone();
            async move {
                let mut interval = tokio::time::interval(REFRESH);
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    interval.tick().await;
                    update(&bar, &stats, &paused, counting);
                }
            }
        });
        Progress {
            inner: Some(Active { bar, updater }),
        }
    }

    /// Clears the bar, so the summary printed next starts on a clean line.
    pub fn finish(self) {
        drop(self);
    }

    /// Whether a bar is being drawn (the tests check when one is not).
    #[cfg(test)]
    fn is_active(&self) -> bool {
        self.inner.is_some()
    }
}

impl Drop for Progress {
    // Also on early returns (`?`), so an error message never lands on a half-drawn bar.
    fn drop(&mut self) {
        if let Some(active) = self.inner.take() {
            active.updater.abort();
            // Unregister first so that no log line suspends a bar that is going away.
            register(None);
            active.bar.finish_and_clear();
        }
    }
}

/// Makes `bar` the one [`LogWriter`] suspends (`None`: write straight to stderr).
fn register(bar: Option<ProgressBar>) {
    if let Ok(mut slot) = ACTIVE.write() {
        *slot = bar;
    }
}

fn update(bar: &ProgressBar, stats: &Stats, paused: &PausedFn, counting: Counting) {
    bar.set_position(match counting {
        Counting::Rows => rows_done(stats),
        Counting::Customers => stats.customers(),
    });
    bar.set_message(message(stats, paused(), counting));
}

/// Rows with a final outcome so far.
fn rows_done(stats: &Stats) -> u64 {
    Outcome::ALL.iter().map(|o| stats.outcome(*o)).sum()
}

/// The live part of the bar: counts by outcome, the request rate in force, and a marker while a
/// 429 pause is in force.
fn message(stats: &Stats, pace: Pace, counting: Counting) -> String {
    let mut text = match counting {
        // An export's customers: how many requests it took (pages and reads).
        Counting::Customers => format!("requests {}", stats.requests()),
        Counting::Rows => format!(
            "created {}  exists {}  failed {}  invalid {}",
            stats.outcome(Outcome::Created),
            stats.outcome(Outcome::Exists),
            stats.outcome(Outcome::Failed),
            stats.outcome(Outcome::Invalid),
        ),
    };
    // Shown only when they occur: most runs have neither, and the line must fit a terminal.
    for outcome in [Outcome::Duplicate, Outcome::Planned] {
        let count = stats.outcome(outcome);
        if count > 0 && counting == Counting::Rows {
            text.push_str(&format!("  {outcome} {count}"));
        }
    }
    if let Some(rate) = pace.rate {
        text.push_str(&format!("  rate {rate:.1}/s"));
    }
    if pace.paused {
        text.push_str("  PAUSED (429)");
    }
    text
}

/// The number of data records in the input, for the bar's total: a pass over the already
/// opened input, in whatever format it is.
///
/// `None` for standard input (which can be read only once) or when the input cannot be read;
/// the bar then shows a count without a total.
pub fn count_input(source: &mut crate::input::source::InputSource) -> Option<u64> {
    source.count()
}

/// [`count_input`] on tokio's blocking pool (a whole pass over the file must not hold up the
/// runtime's one thread); the source is handed back.
pub async fn count_input_off_runtime(
    mut source: crate::input::source::InputSource,
    path: &str,
) -> Result<(crate::input::source::InputSource, Option<u64>), CliError> {
    crate::input::source::off_runtime(path, move || {
        let total = count_input(&mut source);
        Ok((source, total))
    })
    .await
}

/// A tracing-subscriber MakeWriter for stderr that suspends the bar around each log line so lines never tear it.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogLine;

    fn make_writer(&'a self) -> LogLine {
        LogLine { buf: Vec::new() }
    }
}

/// One log event on its way to stderr, written whole when dropped.
///
/// Buffered so that an event written in several pieces still reaches the terminal in one go,
/// between one clearing of the bar and its redraw.
#[derive(Debug)]
pub struct LogLine {
    buf: Vec<u8>,
}

impl Write for LogLine {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let buf = std::mem::take(&mut self.buf);
        // Not `stderr().lock()` here: the bar's ticker thread locks its state and then stderr, so
        // holding stderr while waiting for the state in `suspend` would deadlock with it.
        emit(&buf, &mut std::io::stderr())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        // A log line that cannot reach stderr has nowhere else to go.
        let _ = self.flush();
    }
}

/// Writes `data` to `out`, with the active bar (if any) cleared meanwhile.
///
/// `out` must not hold a lock the bar takes when drawing (such as a locked stderr).
fn emit(data: &[u8], out: &mut dyn Write) -> std::io::Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    let bar = ACTIVE.read().ok().and_then(|slot| slot.clone());
    match bar {
        Some(bar) => bar.suspend(|| out.write_all(data).and_then(|()| out.flush())),
        None => out.write_all(data).and_then(|()| out.flush()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_lists_counts_and_pause() {
        let stats = Stats::default();
        assert_eq!(
            message(&stats, Pace::default(), Counting::Rows),
            "created 0  exists 0  failed 0  invalid 0"
        );
        for _ in 0..3 {
            stats.record_outcome(Outcome::Created);
        }
        stats.record_outcome(Outcome::Exists);
        stats.record_outcome(Outcome::Failed);
        stats.record_outcome(Outcome::Invalid);
        stats.record_outcome(Outcome::Invalid);
        stats.record_outcome(Outcome::Duplicate);
        assert_eq!(
            message(
                &stats,
                Pace {
                    paused: true,
                    rate: Some(2.5)
                },
                Counting::Rows
            ),
            "created 3  exists 1  failed 1  invalid 2  duplicate 1  rate 2.5/s  PAUSED (429)"
        );
        assert_eq!(rows_done(&stats), 8);
    }

    #[tokio::test]
    async fn disabled_progress_does_nothing() {
        let stats = Arc::new(Stats::default());
        let progress = Progress::start(false, Some(10), stats, Arc::new(Pace::default));
        assert!(!progress.is_active());
        progress.finish();
    }

    #[tokio::test]
    async fn no_bar_without_a_terminal() {
        // Test harnesses capture stderr; when it is a terminal this check says nothing.
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            return;
        }
        let stats = Arc::new(Stats::default());
        let progress = Progress::start(true, None, stats, Arc::new(Pace::default));
        assert!(!progress.is_active());
        progress.finish();
    }

    #[test]
    fn no_bar_outside_a_runtime() {
        let stats = Arc::new(Stats::default());
        let progress = Progress::start(true, Some(1), stats, Arc::new(Pace::default));
        assert!(!progress.is_active());
    }

    #[test]
    fn log_lines_are_written_whole() {
        let mut out = Vec::new();
        emit(b"first line\n", &mut out).expect("emit");
        emit(b"", &mut out).expect("emit nothing");
        // A hidden bar in the slot (another test may hold one) must not swallow the line.
        emit(b"second line\n", &mut out).expect("emit");
        assert_eq!(out, b"first line\nsecond line\n");
    }

    /// A terminal that records what is done to it, shared with a log sink writing to the same list.
    #[derive(Debug, Clone, Default)]
    struct Recorder(Arc<std::sync::Mutex<Vec<String>>>);

    impl Recorder {
        fn push(&self, op: String) -> std::io::Result<()> {
            self.0.lock().expect("recorder").push(op);
            Ok(())
        }
    }

    impl indicatif::TermLike for Recorder {
        fn width(&self) -> u16 {
            100
        }
        fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
            self.push(format!("up {n}"))
        }
        fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
            self.push(format!("down {n}"))
        }
        fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
            self.push(format!("right {n}"))
        }
        fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
            self.push(format!("left {n}"))
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.push(format!("draw {s}"))
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.push(format!("draw {s}"))
        }
        fn clear_line(&self) -> std::io::Result<()> {
            self.push("clear".to_string())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Write for Recorder {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.push(format!("log {}", String::from_utf8_lossy(data)))?;
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn log_lines_go_out_while_the_bar_is_cleared() {
        let term = Recorder::default();
        let bar = ProgressBar::with_draw_target(
            Some(10),
            ProgressDrawTarget::term_like(Box::new(term.clone())),
        );
        if let Ok(style) = ProgressStyle::with_template("{pos}/{len} {msg}") {
            bar.set_style(style);
        }
        bar.set_message("BAR");
        bar.set_position(3);
        bar.tick();
        register(Some(bar.clone()));
        emit(b"a log line\n", &mut term.clone()).expect("emit");
        register(None);
        bar.finish_and_clear();
        let ops = term.0.lock().expect("recorder").clone();
        let log = ops
            .iter()
            .position(|op| op == "log a log line\n")
            .unwrap_or_else(|| panic!("{ops:?}"));
        let drawn_before = ops[..log]
            .iter()
            .rposition(|op| op.starts_with("draw 3/10"));
        let cleared_before = ops[..log].iter().rposition(|op| op == "clear");
        assert!(drawn_before.is_some(), "{ops:?}");
        assert!(drawn_before < cleared_before, "{ops:?}");
        assert!(
            ops[log + 1..]
                .iter()
                .any(|op| op.starts_with("draw 3/10 BAR")),
            "bar redrawn after the line: {ops:?}"
        );
    }

    #[test]
    fn log_writer_plugs_into_tracing() {
        use tracing_subscriber::fmt::MakeWriter as _;
        let mut line = LogWriter.make_writer();
        line.write_all(b"").expect("write");
        assert!(line.buf.is_empty());
        line.write_all(b"partial ").expect("write");
        line.write_all(b"line").expect("write");
        assert_eq!(line.buf, b"partial line");
        line.buf.clear();
        drop(line);
    }

    #[test]
    fn count_input_counts_records_of_files_only() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("count.csv");
        std::fs::write(
            &path,
            "customer_id,qualification\n0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7,Education\n11111111-2222-3333-4444-555555555555,GCC\n",
        )
        .expect("write");
        let open = |path: &str| {
            crate::input::source::InputSource::open(
                path,
                &crate::input::source::InputFormat::default(),
            )
            .expect("opens")
        };
        assert_eq!(count_input(&mut open(&path.to_string_lossy())), Some(2));
        assert_eq!(count_input(&mut open("-")), None);
    }
}
