//! The worker pool every working command shares (run, reconcile, refresh, export): a feeder
//! hands items to a fixed number of workers through a bounded channel until it closes or a stop
//! is asked for, and one writer records what they produce as it comes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinHandle, JoinSet};

use crate::domain::model::ResultRow;
use crate::domain::stats::Stats;
pub(crate) use crate::domain::stop::Stop;
use crate::engine::JobContext;
use crate::results::output::ResultsWriter;
use crate::results::timeline::Timeline;
use crate::results::ResultsError;

/// What a job's feeder sends on: work for the pool, and rows that go straight to the writer.
pub(crate) struct Feeder<T, I> {
    pub(crate) work: async_channel::Sender<T>,
    pub(crate) results: mpsc::Sender<I>,
    pub(crate) stop: Stop,
    aborted: Arc<AtomicBool>,
}

impl<T, I> Feeder<T, I> {
    /// A stop was asked for, or the writer failed: nothing more is fed.
    pub(crate) fn halted(&self) -> bool {
        self.stop.requested() || self.aborted.load(Ordering::Relaxed)
    }
}

/// How long a stopped job waits for its feeder to notice the stop. A feeder that reads a file
/// notices at its next row; one blocked on standard input or a pipe that sends nothing would
/// hold the job (and Ctrl-C, which the tool handles itself) until its input ends.
const FEEDER_GRACE: Duration = Duration::from_secs(1);

/// Runs a job's items on the one engine: `feed` starts the task that fills the channels, the
/// workers turn each item into what the writer records with `process`, and the writer writes
/// to `sink`. Returns the feeder's end and, once every item is written, the sink. The feeder's
/// end is `None` when, after a stop, it was left waiting on its input past [`FEEDER_GRACE`]:
/// whatever it had not handed out is not sent, like every row after a stop.
pub(crate) async fn run_pool<T, S, P, Fut, Out>(
    context: &JobContext,
    mut sink: S,
    feed: impl FnOnce(Feeder<T, S::Item>) -> JoinHandle<Out>,
    process: P,
) -> (Option<Result<Out, JoinError>>, Result<S, ResultsError>)
where
    T: Send + 'static,
    S: RowSink,
    P: Fn(T) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = S::Item> + Send,
{
    let n = context.config.concurrency;
    let (work_tx, work_rx) = async_channel::bounded(n * 2);
    let (result_tx, mut result_rx) = mpsc::channel(n * 4 + 64);
    let aborted = Arc::new(AtomicBool::new(false));
    let feeder = feed(Feeder {
        work: work_tx,
        results: result_tx.clone(),
        stop: context.stop.clone(),
        aborted: aborted.clone(),
    });
    // The one writer writes items as they come and flushes whenever the queue runs dry, so a
    // crash loses at most what is still in flight.
    let stats = context.stats.clone();
    // Told when the feeder is left behind: it still holds a sender, so the writer stops taking
    // new items itself and ends once those already queued are written.
    let left_behind = Arc::new(tokio::sync::Notify::new());
    let closing = left_behind.clone();
    let write = async move {
        let result: std::io::Result<()> = async {
            sink.flush()?;
            loop {
                let first = tokio::select! {
                    first = result_rx.recv() => first,
                    () = closing.notified() => {
                        result_rx.close();
                        result_rx.recv().await
                    }
                };
                let Some(first) = first else { break };
                // `first` and whatever else is queued, then one flush.
                let mut next = Some(first);
                while let Some(item) = next {
                    sink.write(item, &stats)?;
                    next = result_rx.try_recv().ok();
                }
                sink.flush()?;
            }
            Ok(())
        }
        .await;
        if result.is_err() {
            // Nothing more can be recorded: tell the reader to stop feeding rows.
            aborted.store(true, Ordering::Relaxed);
            result_rx.close();
        }
        result.map(|()| sink)
    };
    // A file is written from the runtime itself (a buffered write never blocks for long);
    // standard output may block on a slow reader, so it gets a thread.
    let writer = if context.output == "-" {
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || runtime.block_on(write))
    } else {
        tokio::spawn(write)
    };
    // `n` workers take items until the channel closes or a stop is requested, and hand what
    // `process` makes of each to the writer.
    let mut workers = JoinSet::new();
    for _ in 0..n {
        let (work_rx, result_tx, process) = (work_rx.clone(), result_tx.clone(), process.clone());
        let mut stop_rx = context.stop.subscribe();
        workers.spawn(async move {
            loop {
                let item = tokio::select! {
                    biased;
                    _ = stop_rx.wait_for(|n| *n > 0) => break,
                    item = work_rx.recv() => match item {
                        Ok(item) => item,
                        Err(_) => break,
                    },
                };
                if result_tx.send(process(item).await).await.is_err() {
                    break;
                }
            }
        });
    }
    // Only the workers (and the feeder) hold the channels now: the feeder's sends fail once
    // every worker has stopped, and the writer ends once the last sender is gone.
    drop((work_rx, result_tx, process));
    drain_workers(&mut workers, &context.stop, context.config.shutdown_grace).await;
    let mut feeder = feeder;
    let fed = match context.stop.requested() {
        false => Some(feeder.await),
        true => match tokio::time::timeout(FEEDER_GRACE, &mut feeder).await {
            Ok(fed) => Some(fed),
            Err(_) => {
                tracing::debug!("the input reader is still waiting on its input: left behind");
                left_behind.notify_one();
                None
            }
        },
    };
    // The writer's end: the sink with what it wrote, or why it stopped (a closed stdout pipe is
    // a quiet stop of its own).
    let written = writer
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
    let written = written.map_err(|e| ResultsError::piped_io(&context.output, e));
    (fed, written)
}

/// Waits for the workers; after a stop request gives them the grace period, after a second one none.
async fn drain_workers(workers: &mut JoinSet<()>, stop: &Stop, grace: Duration) {
    let mut stop_rx = stop.subscribe();
    tokio::select! {
        () = join_all(workers) => return,
        _ = stop_rx.wait_for(|n| *n > 0) => {}
    }
    tracing::warn!(
        grace_s = grace.as_secs_f64(),
        "stopping: no new rows are taken; waiting for requests in flight"
    );
    tokio::select! {
        () = join_all(workers) => return,
        _ = tokio::time::sleep(grace) => {
            tracing::warn!("grace period over: abandoning requests still in flight");
        }
        _ = stop_rx.wait_for(|n| *n > 1) => {
            tracing::warn!("second stop signal: abandoning requests still in flight");
        }
    }
    workers.abort_all();
    join_all(workers).await;
}

async fn join_all(workers: &mut JoinSet<()>) {
    while workers.join_next().await.is_some() {}
}

/// What the one writer task writes to: results rows (run, reconcile, refresh) or each
/// customer's rows (export). The writer is the only owner of the output file.
pub(crate) trait RowSink: Send + 'static {
    /// One unit from the workers.
    type Item: Send + 'static;
    /// Writes one item and counts it in `stats`.
    fn write(&mut self, item: Self::Item, stats: &Stats) -> std::io::Result<()>;
    /// Pushes what was written to the file.
    fn flush(&mut self) -> std::io::Result<()>;
}

/// The results file of run, reconcile and refresh, with the rows written to it.
pub(crate) struct ResultsSink<W: std::io::Write> {
    pub(crate) writer: ResultsWriter<W>,
    pub(crate) rows: u64,
    /// Run and reconcile note when their rows were written, for the report.
    pub(crate) timeline: Option<Timeline>,
}

impl<W: std::io::Write + Send + 'static> RowSink for ResultsSink<W> {
    type Item = ResultRow;

    fn write(&mut self, row: ResultRow, stats: &Stats) -> std::io::Result<()> {
        self.writer.write(&row)?;
        if let Some(outcome) = row.outcome {
            stats.record_outcome(outcome);
        }
        stats.record_vetting(row.vetting_status.as_deref());
        self.rows += 1;
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.writer.flush()?;
        self.timeline = self.timeline.take().and_then(|t| t.record(self.rows));
        Ok(())
    }
}

#[cfg(test)]
impl<T, I> Feeder<T, I> {
    /// A feeder on these channels outside a pool (tests).
    pub(crate) fn on(work: async_channel::Sender<T>, results: mpsc::Sender<I>) -> Self {
        Feeder {
            work,
            results,
            stop: Stop::default(),
            aborted: Arc::default(),
        }
    }
}
