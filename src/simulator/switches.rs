//! Run-wide failure modes a test can switch on and off while a run is going: an MFA-required
//! service (every API call answered `401` with error code `900421`) and a token endpoint outage.

use std::sync::atomic::{AtomicU64, Ordering};

/// "Off" for a threshold.
const OFF: u64 = u64::MAX;

/// One failure mode, shared by every connection: on from a numbered request on, or off.
pub(crate) struct Switch {
    /// Requests from this one on (0-based count) are refused.
    from: AtomicU64,
    seen: AtomicU64,
}

impl Switch {
    /// On from request number `after` (`None`: off).
    pub(crate) fn new(after: Option<u64>) -> Self {
        Switch {
            from: AtomicU64::new(after.unwrap_or(OFF)),
            seen: AtomicU64::new(0),
        }
    }

    /// Counts a request; whether it must be refused.
    pub(crate) fn refuses(&self) -> bool {
        let n = self.seen.fetch_add(1, Ordering::Relaxed);
        n >= self.from.load(Ordering::Relaxed)
    }

    /// On from the next request on (`true`), or off (`false`).
    pub(crate) fn set(&self, on: bool) {
        let from = if on {
            self.seen.load(Ordering::Relaxed)
        } else {
            OFF
        };
        self.from.store(from, Ordering::Relaxed);
    }
}
