//! The stop request a signal raises and every part of a run watches.

use std::sync::Arc;

use tokio::sync::watch;

/// Asks a running job to stop: once to drain in-flight rows, twice to stop at once.
#[derive(Clone, Default)]
pub struct Stop {
    tx: Arc<watch::Sender<u8>>,
}

impl Stop {
    /// Records one stop request (a signal); the second one is urgent.
    pub fn request(&self) {
        self.tx.send_modify(|n| *n = n.saturating_add(1));
    }

    /// Resolves once a stop has been requested.
    pub async fn wait(&self) {
        let mut rx = self.subscribe();
        let _ = rx.wait_for(|n| *n > 0).await;
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u8> {
        self.tx.subscribe()
    }

    pub(crate) fn requested(&self) -> bool {
        *self.tx.borrow() > 0
    }
}
