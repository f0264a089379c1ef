//! What every working command (run, reconcile, refresh, export) sets up around its job and
//! tears down after it: the signal handler, the in-process sandbox, the counters and the pacer,
//! and the metrics file at the end — one place, so the commands differ only in their job.

use super::*;

/// A working command's surroundings, from its start to its metrics file.
pub(super) struct Session {
    /// The metrics' `command` label.
    command: &'static str,
    metrics: Option<PathBuf>,
    started: std::time::SystemTime,
    throttle: Arc<Throttle>,
    /// Held until [`Session::end`], which stops it.
    sandbox: Option<Sandbox>,
    signals: tokio::task::JoinHandle<()>,
    /// The progress bar, cleared before anything else is printed.
    progress: Option<Progress>,
    /// Asked to stop by a signal (or a run-wide failure).
    stop: Stop,
    /// The run's counters.
    stats: Arc<Stats>,
}

impl Session {
    /// Starts the signal handler and makes the counters and the pacer for `config`; `sandbox`
    /// is the simulator the credentials came from, if any (held until [`Session::end`]).
    pub(super) fn start(
        command: &'static str,
        service: &ServiceArgs,
        config: &RunConfig,
        sandbox: Option<Sandbox>,
    ) -> Session {
        let stop = Stop::default();
        Session {
            command,
            metrics: service.metrics.clone(),
            started: std::time::SystemTime::now(),
            throttle: Arc::new(Throttle::new(config.rate, config.burst)),
            sandbox,
            signals: tokio::spawn(forward_signals(stop.clone())),
            progress: None,
            stop,
            stats: Arc::new(Stats::default()),
        }
    }

    /// Settings, credentials (or the sandbox) and the session, its bar counting `counting`
    /// unless `quiet`, for a command that always talks to the service (refresh, export).
    pub(super) async fn open(
        command: &'static str,
        service: &ServiceArgs,
        quiet: bool,
        counting: Counting,
    ) -> Result<(Session, RunConfig, Credentials), CliError> {
        let mut config = service.run_config()?;
        let (sandbox, credentials) = credentials(service.sandbox, &mut config).await?;
        let mut session = Session::start(command, service, &config, sandbox);
        session.show_progress(service.shows_progress(quiet), None, counting);
        Ok((session, config, credentials))
    }

    /// Draws the progress bar (when `show`) over this session's counters and pacer.
    pub(super) fn show_progress(&mut self, show: bool, total: Option<u64>, counting: Counting) {
        let throttle = self.throttle.clone();
        let paused: progress::PausedFn = Arc::new(move || progress::Pace {
            paused: throttle.is_paused(),
            rate: throttle.current_rate(),
        });
        self.progress = Some(Progress::start_counting(
            show,
            total,
            self.stats.clone(),
            paused,
            counting,
        ));
    }

    /// The context a job of this session is handed: its output, settings, and the session's
    /// counters, pacer and stop request.
    pub(super) fn context(&self, output: &str, force: bool, config: RunConfig) -> JobContext {
        JobContext {
            output: output.to_string(),
            force,
            config,
            stats: self.stats.clone(),
            throttle: self.throttle.clone(),
            stop: self.stop.clone(),
            fatal: Arc::new(crate::partner_center::fatal::FatalStop::new(
                self.stop.clone(),
            )),
        }
    }

    /// Stops the signal handler and the sandbox once the job has returned; on an error, a
    /// nightly job that could not start still tells the scheduler it failed (metrics file).
    pub(super) async fn end<T>(
        &mut self,
        result: Result<T, impl Into<CliError>>,
    ) -> Result<T, CliError> {
        // The bar goes before anything else is printed, or the summary would tear it.
        if let Some(progress) = self.progress.take() {
            progress.finish();
        }
        self.signals.abort();
        if let Some(handle) = self.sandbox.take() {
            handle.shutdown().await;
        }
        match result {
            Ok(report) => Ok(report),
            Err(err) => {
                self.write_metrics(&Stats::default(), false, 0);
                Err(err.into())
            }
        }
    }

    /// The one end-of-run path of every job, once [`Session::end`] has its report: the JSON
    /// event, the metrics file, the summary, and the exit code from the one mapping.
    pub(super) fn finish<R: JobReport>(
        &self,
        report: &R,
        quiet: bool,
        json: bool,
        summary: &impl Summary<Report = R>,
    ) -> ExitCode {
        let code = crate::cli::error::job_exit_code(report);
        let ending = report.ending();
        let rate = self.throttle.figures();
        if json {
            summary.event(report, rate.as_ref());
        }
        self.write_metrics(&ending.stats, code == ExitCode::Success, ending.pauses);
        if !quiet {
            eprint!("{}", summary.text(report, rate.as_ref()));
        }
        code
    }

    /// Writes the Prometheus textfile, when one was asked for; a failed run keeps the last
    /// success time of the previous file. A write failure is logged as an error but does not
    /// change the run's exit code: the rows were processed, and a stale textfile is what the
    /// scheduler's alert on its age is for.
    fn write_metrics(&self, stats: &Stats, success: bool, pauses: u64) {
        let Some(path) = &self.metrics else { return };
        let facts = metrics::RunFacts {
            command: self.command,
            duration: self.started.elapsed().unwrap_or_default(),
            finished_at: std::time::SystemTime::now(),
            success,
            pauses,
            rate: self.throttle.figures(),
            previous_success: if success {
                None
            } else {
                metrics::previous_success(path)
            },
        };
        if let Err(err) = metrics::write_atomic(path, &metrics::render(stats, &facts)) {
            // Said as for the other outputs when another program holds the file (Windows).
            let error = ResultsError::output_io(path.display().to_string(), err);
            let error = crate::domain::error::chain(&error);
            tracing::error!(path = %path.display(), error = %error, "metrics file not written");
        }
    }
}
