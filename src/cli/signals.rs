//! Signals turned into stop requests.

use super::*;

/// Turns SIGINT/SIGTERM (and SIGHUP, a closed terminal, and SIGQUIT) into stop requests (the
/// first drains, the second is urgent): left to their default, the last two would kill the
/// process without the summary, the journal check or exit 130.
#[cfg(unix)]
pub(super) async fn forward_signals(stop: Stop) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term), Ok(mut hup), Ok(mut quit)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
        signal(SignalKind::quit()),
    ) else {
        return;
    };
    loop {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
            _ = hup.recv() => {}
            _ = quit.recv() => {}
        }
        stop.request();
    }
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
    let (Ok(mut c), Ok(mut brk), Ok(mut close), Ok(mut logoff), Ok(mut shutdown)) = (
        ctrl_c(),
        ctrl_break(),
        ctrl_close(),
        ctrl_logoff(),
        ctrl_shutdown(),
    ) else {
        return;
    };
    loop {
        tokio::select! {
            _ = c.recv() => {}
            _ = brk.recv() => {}
            _ = close.recv() => {}
            _ = logoff.recv() => {}
            _ = shutdown.recv() => {}
        }
        stop.request();
    }
}

/// Elsewhere, Ctrl-C only.
#[cfg(not(any(unix, windows)))]
pub(super) async fn forward_signals(stop: Stop) {
    while tokio::signal::ctrl_c().await.is_ok() {
        stop.request();
    }
}
