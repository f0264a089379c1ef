//! Run-wide failure modes a test can switch on and off while a run is going: an MFA-required
//! service (every API call answered `401` with error code `900421`) and a token endpoint outage.

use std::sync::atomic::{AtomicU64, Ordering};

/// "Off" for a threshold.
const OFF: u64 = u64::MAX;

/// The switches, shared by every connection.
pub(crate) struct Switches {
    /// API requests from this one on (0-based count) are refused for want of MFA.
    mfa_from: AtomicU64,
    api_seen: AtomicU64,
    /// Token requests from this one on are answered 503.
    token_fail_from: AtomicU64,
    token_seen: AtomicU64,
}

impl Switches {
    pub(crate) fn new(mfa_after: Option<u64>, token_outage_after: Option<u64>) -> Self {
        Switches {
            mfa_from: AtomicU64::new(mfa_after.unwrap_or(OFF)),
            api_seen: AtomicU64::new(0),
            token_fail_from: AtomicU64::new(token_outage_after.unwrap_or(OFF)),
            token_seen: AtomicU64::new(0),
        }
    }

    /// Counts an API request; whether it must be refused with 900421.
    pub(crate) fn mfa_refuses(&self) -> bool {
        let n = self.api_seen.fetch_add(1, Ordering::Relaxed);
        n >= self.mfa_from.load(Ordering::Relaxed)
    }

    /// Counts a token request; whether the token endpoint is down for it.
    pub(crate) fn token_down(&self) -> bool {
        let n = self.token_seen.fetch_add(1, Ordering::Relaxed);
        n >= self.token_fail_from.load(Ordering::Relaxed)
    }

    /// MFA required from the next API request on (`true`), or no longer (`false`).
    pub(crate) fn set_mfa_required(&self, on: bool) {
        let from = if on {
            self.api_seen.load(Ordering::Relaxed)
        } else {
            OFF
        };
        self.mfa_from.store(from, Ordering::Relaxed);
    }

    /// The token endpoint down from the next request on (`true`), or back (`false`).
    pub(crate) fn set_token_outage(&self, on: bool) {
        let from = if on {
            self.token_seen.load(Ordering::Relaxed)
        } else {
            OFF
        };
        self.token_fail_from.store(from, Ordering::Relaxed);
    }
}
