//! Signals turned into stop requests.

use super::*;

/// Installs every listener (or none: if one cannot be installed, all keep their default) and
/// requests a stop at each event of any of them; the first request drains, the second is urgent.
macro_rules! forward {
    ($stop:ident, $($listener:ident = $install:expr),+ $(,)?) => {{
        let ($(Ok(mut $listener),)+) = ($($install,)+) else {
            return;
        };
        loop {
            tokio::select! {
                $(_ = $listener.recv() => {})+
            }
            $stop.request();
        }
    }};
}

/// SIGINT/SIGTERM, and SIGHUP (a closed terminal) and SIGQUIT: left to their default, the last
/// two would kill the process without the summary, the journal check or exit 130.
#[cfg(unix)]
pub(super) async fn forward_signals(stop: Stop) {
    use tokio::signal::unix::{signal, SignalKind};
    forward!(
        stop,
        int = signal(SignalKind::interrupt()),
        term = signal(SignalKind::terminate()),
        hup = signal(SignalKind::hangup()),
        quit = signal(SignalKind::quit()),
    )
}

/// Windows's console events, as Unix's signals above: Ctrl-C and Ctrl-Break, the console window
/// closed, and log-off and shutdown (delivered to a console program that has no window of its
/// own, as this one). Left to their default, each ends the process at once, without the
/// summary, the journal check or exit 130. After a close, log-off or shutdown Windows ends the
/// process anyway a few seconds later (tokio holds the event until then); the journal, written
/// before each call, is what `--resume` then reads, as after the Task Scheduler's "End" or
/// `taskkill /F`, which end the process outright like SIGKILL.
#[cfg(windows)]
pub(super) async fn forward_signals(stop: Stop) {
    use tokio::signal::windows::{ctrl_break, ctrl_c, ctrl_close, ctrl_logoff, ctrl_shutdown};
    forward!(
        stop,
        c = ctrl_c(),
        brk = ctrl_break(),
        close = ctrl_close(),
        logoff = ctrl_logoff(),
        shutdown = ctrl_shutdown(),
    )
}

/// Elsewhere, Ctrl-C only.
#[cfg(not(any(unix, windows)))]
pub(super) async fn forward_signals(stop: Stop) {
    while tokio::signal::ctrl_c().await.is_ok() {
        stop.request();
    }
}
