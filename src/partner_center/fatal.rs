//! Run-wide stops: failures no single row can cure (a sign-in that needs MFA, a token endpoint
//! that is down, a service that answers nothing but errors). The first cause is recorded, the run
//! stops as on SIGTERM (no new rows; rows in flight finish or stay in the journal), and the process
//! exits 2 naming the cause, so that a large file does not spend hours writing the same failure.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use tokio::sync::watch;

use crate::domain::stop::Stop;

/// Calls in a row that ended without an answer or with a 5xx (after their own retries) before
/// the service is taken to be down.
pub const BREAKER_THRESHOLD: u32 = 20;

/// Why a run was stopped for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// A 401 with error code 900421: the token carries no multi-factor authentication claim.
    MfaRequired,
    /// A 401 that a freshly fetched token did not cure (or a token that cannot be renewed).
    Unauthorized(String),
    /// The token endpoint failed through its own retries, or refused to renew the token.
    TokenEndpoint(String),
    /// Too many calls in a row failed with no answer or a server error.
    Outage {
        /// How many in a row.
        failures: u32,
        /// The last one's reason.
        last: String,
    },
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cause::MfaRequired => f.write_str(
                "the service refused the sign-in (HTTP 401, error code 900421): the signed-in user needs multi-factor authentication; sign in again with `pc-qualify login` (completing MFA), then run the same command with --resume",
            ),
            Cause::Unauthorized(detail) => write!(
                f,
                "the service refused the access token (HTTP 401) and a fresh token did not help ({detail}); the signed-in user may need multi-factor authentication or lack the rights: sign in again with `pc-qualify login`, then run the same command with --resume"
            ),
            Cause::TokenEndpoint(detail) => write!(
                f,
                "no access token could be had ({detail}); no row can be sent without one: once the token endpoint answers (or after `pc-qualify login`), run the same command with --resume"
            ),
            Cause::Outage { failures, last } => write!(
                f,
                "{failures} calls in a row got no answer or a server error (last: {last}); the service looks down: once it is back, run the same command with --resume"
            ),
        }
    }
}

/// The run-wide stop: a cause recorded once, and a circuit breaker that records one.
pub struct FatalStop {
    cause: OnceLock<Cause>,
    stop: Stop,
    tripped: watch::Sender<bool>,
    consecutive: AtomicU32,
}

impl FatalStop {
    /// A stop that, when tripped, asks `stop` to drain the run.
    pub fn new(stop: Stop) -> Self {
        FatalStop {
            cause: OnceLock::new(),
            stop,
            tripped: watch::channel(false).0,
            consecutive: AtomicU32::new(0),
        }
    }

    /// Records `cause` (the first one wins) and stops the run.
    pub fn trip(&self, cause: Cause) {
        if self.cause.set(cause).is_ok() {
            if let Some(cause) = self.cause.get() {
                tracing::error!("stopping the run: {cause}");
            }
            self.tripped.send_replace(true);
            self.stop.request();
        }
    }

    /// The recorded cause, once tripped.
    pub fn cause(&self) -> Option<&Cause> {
        self.cause.get()
    }

    /// Resolves once the stop is tripped, at once if it already is (wakes calls sleeping between
    /// attempts).
    pub async fn tripped(&self) {
        let mut rx = self.tripped.subscribe();
        let _ = rx.wait_for(|t| *t).await;
    }

    /// A call ended with no answer or a server error after its retries; enough in a row trip the breaker.
    pub fn call_failed(&self, reason: &str) {
        let failures = self
            .consecutive
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        if failures >= BREAKER_THRESHOLD {
            self.trip(Cause::Outage {
                failures,
                last: crate::partner_center::api::sanitize(reason),
            });
        }
    }

    /// A call got a real answer (success or a client error): the service is up.
    pub fn call_answered(&self) {
        self.consecutive.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_breaker_trips_on_a_run_of_failures_only() {
        let stop = Stop::default();
        let fatal = FatalStop::new(stop.clone());
        for _ in 0..BREAKER_THRESHOLD - 1 {
            fatal.call_failed("503");
        }
        fatal.call_answered();
        for _ in 0..BREAKER_THRESHOLD - 1 {
            fatal.call_failed("503");
        }
        assert!(fatal.cause().is_none() && !stop.requested());
        fatal.call_failed("connection refused");
        assert!(stop.requested());
        assert!(matches!(
            fatal.cause(),
            Some(Cause::Outage { failures, last }) if *failures == BREAKER_THRESHOLD && last == "connection refused"
        ));
        // The first cause wins.
        fatal.trip(Cause::MfaRequired);
        assert!(matches!(fatal.cause(), Some(Cause::Outage { .. })));
    }

    #[test]
    fn the_mfa_message_says_what_to_do() {
        let text = Cause::MfaRequired.to_string();
        assert!(text.contains("multi-factor authentication"), "{text}");
        assert!(
            text.contains("pc-qualify login") && text.contains("--resume"),
            "{text}"
        );
    }
}
