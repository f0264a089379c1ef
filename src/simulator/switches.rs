//! Run-wide failure modes a test can switch on and off while a run is going: an MFA-required
//! service (every API call answered `401` with error code `900421`) and a token endpoint outage;
//! and a token endpoint that throttles a numbered stretch of token requests.

use std::sync::atomic::{AtomicU64, Ordering};

/// "Off" for a threshold.
const OFF: u64 = u64::MAX;

/// One failure mode, shared by every connection: on from a numbered request on (for a number of
/// requests, or for good), or off.
pub(crate) struct Switch {
    /// Requests from this one on (0-based count) are refused...
    from: AtomicU64,
    /// ...up to, not including, this one.
    until: AtomicU64,
    seen: AtomicU64,
}

impl Switch {
    /// On from request number `after` (`None`: off).
    pub(crate) fn new(after: Option<u64>) -> Self {
        Switch::window(after, None)
    }

    /// On from request number `after` (`None`: off) for `count` requests (`None`: for good).
    pub(crate) fn window(after: Option<u64>, count: Option<u64>) -> Self {
        let from = after.unwrap_or(OFF);
        let until = count.and_then(|n| from.checked_add(n)).unwrap_or(OFF);
        Switch {
            from: AtomicU64::new(from),
            until: AtomicU64::new(until),
            seen: AtomicU64::new(0),
        }
    }

    /// Counts a request; whether it must be refused.
    pub(crate) fn refuses(&self) -> bool {
        let n = self.seen.fetch_add(1, Ordering::Relaxed);
        n >= self.from.load(Ordering::Relaxed) && n < self.until.load(Ordering::Relaxed)
    }

    /// On from the next request on (`true`), or off (`false`).
    pub(crate) fn set(&self, on: bool) {
        let from = if on {
            self.seen.load(Ordering::Relaxed)
        } else {
            OFF
        };
        self.from.store(from, Ordering::Relaxed);
        self.until.store(OFF, Ordering::Relaxed);
    }
}
