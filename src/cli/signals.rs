//! Signals turned into stop requests.

use super::*;

/// Turns SIGINT/SIGTERM (and SIGHUP, a closed terminal, and SIGQUIT) into stop requests (the
/// first drains, the second is urgent): left to their default, the last two would kill the
/// process without the summary, the journal check or exit 130.
pub(super) async fn forward_signals(stop: Stop) {
    #[cfg(unix)]
    {
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
    #[cfg(not(unix))]
    loop {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        stop.request();
    }
}
