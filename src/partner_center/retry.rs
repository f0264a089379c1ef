//! Retry policy: which answers may be retried, and how long to wait before the next attempt.
//!
//! `backoff` (unmaintained, RUSTSEC-2025-0012) is used only here, only as the exponential schedule,
//! so that replacing it with `backon` touches this file alone.

use std::time::{Duration, SystemTime};

use backoff::backoff::Backoff;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// What one HTTP answer (or failure to get one) means for the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The call is done and succeeded.
    Successful,
    /// The call is done and failed for good; the reason is for logs.
    DontRetry(&'static str),
    /// The call may succeed if sent again; the reason is for logs.
    Retry(&'static str),
    /// The token was refused: refresh it once and resend.
    Reauthenticate,
}

/// Classifies an HTTP status; `409` counts as done (the caller turns it into `exists`).
pub fn classify_status(status: u16) -> Decision {
    match status {
        200..=299 => Decision::Successful,
        401 => Decision::Reauthenticate,
        408 => Decision::Retry("request timeout (408)"),
        429 => Decision::Retry("throttled (429)"),
        500 => Decision::Retry("server error (500)"),
        502 => Decision::Retry("bad gateway (502)"),
        503 => Decision::Retry("service unavailable (503)"),
        504 => Decision::Retry("gateway timeout (504)"),
        _ => Decision::DontRetry("not retryable"),
    }
}

/// Whether a transport failure may pass on another attempt: connect failures, timeouts and
/// connections dropped mid-exchange are transient; a malformed request or redirect loop will fail
/// the same way every time.
pub fn transport_retryable(err: &reqwest::Error) -> bool {
    if err.is_builder() || err.is_redirect() || err.is_decode() {
        return false;
    }
    err.is_connect() || err.is_timeout() || err.is_request() || err.is_body()
}

/// A short, secret-free description of a transport failure for logs and the results file.
pub fn describe_transport_error(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "connection failed"
    } else if err.is_body() || err.is_decode() {
        "connection lost while reading the answer"
    } else {
        "connection lost before an answer"
    };
    // The source chain says e.g. "connection reset by peer" or "connection closed before message
    // completed"; URLs are dropped because reqwest puts them into its own Display.
    let innermost = std::iter::successors(std::error::Error::source(err), |e| e.source()).last();
    match innermost.map(ToString::to_string) {
        Some(detail) if !detail.is_empty() => format!("{kind}: {detail}"),
        _ => kind.to_string(),
    }
}

/// A `Retry-After` the service sent: how long it asks for, and its own figure for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryAfter {
    /// The wait, saturated at [`Duration::MAX`] for figures no clock can hold.
    pub wait: Duration,
    /// The header value as sent (trimmed, at most 64 characters), quoted in a row's message.
    pub raw: String,
}

/// Reads `Retry-After` as delta-seconds or an HTTP date; a malformed value reads as none.
pub fn retry_after(headers: &HeaderMap) -> Option<RetryAfter> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = parse_retry_after(value, SystemTime::now())?;
    Some(RetryAfter {
        wait,
        raw: value.chars().take(64).collect(),
    })
}

/// Parses a `Retry-After` value relative to `now` (a date in the past means "now").
///
/// Every figure is converted with checked arithmetic: `99999999999999999999` or `1e30` seconds
/// saturate at [`Duration::MAX`] (the caller compares it with `--max-retry-after`) instead of
/// panicking; negative, NaN and other malformed values read as no hint at all.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    // Delta-seconds (the documented form, read as a number like any fraction); NaN and negative
    // figures are no hint, and more than a `Duration` holds is "very long".
    if let Ok(secs) = value.parse::<f64>() {
        return (secs >= 0.0).then(|| Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Tunables of the retry loop.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Sends of one call, the first included.
    pub max_attempts: u32,
    /// First backoff ceiling.
    pub initial: Duration,
    /// Cap on any single wait the tool chooses itself (the service's `Retry-After` is not capped by it).
    pub max_backoff: Duration,
    /// The longest `Retry-After` obeyed; a longer one fails the call with the service's figure.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            initial: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(300),
        }
    }
}

/// The waits of one call: exponential ceilings with full jitter, capped at `max_backoff`.
pub struct Schedule {
    ceilings: backoff::ExponentialBackoff,
    cap: Duration,
}

impl Schedule {
    /// A schedule starting at `initial` and never waiting longer than `cap`.
    pub fn new(initial: Duration, cap: Duration) -> Self {
        // The crate only supplies the growing ceiling; jitter is applied here as "full jitter"
        // (uniform in 0..ceiling), which spreads a herd of workers better than ±50 %.
        let ceilings = backoff::ExponentialBackoffBuilder::new()
            .with_initial_interval(initial.max(Duration::from_millis(1)))
            .with_multiplier(2.0)
            .with_randomization_factor(0.0)
            .with_max_interval(cap.max(Duration::from_millis(1)))
            .with_max_elapsed_time(None)
            .build();
        Schedule { ceilings, cap }
    }

    /// The wait before the next attempt: the service's `server_hint` as given (the caller has
    /// already held it against `--max-retry-after`), else the jittered backoff capped at `cap`.
    pub fn next_wait(&mut self, server_hint: Option<Duration>) -> Duration {
        let ceiling = self.ceilings.next_backoff().unwrap_or(self.cap);
        let jittered = ceiling.mul_f64(fastrand::f64());
        match server_hint {
            Some(hint) => hint,
            None => jittered.min(self.cap),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_as_documented() {
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(
                matches!(classify_status(status), Decision::Retry(_)),
                "{status}"
            );
        }
        for status in [400, 403, 404, 405, 406, 409, 412, 501] {
            assert!(
                matches!(classify_status(status), Decision::DontRetry(_)),
                "{status}"
            );
        }
        assert_eq!(classify_status(201), Decision::Successful);
        assert_eq!(classify_status(200), Decision::Successful);
        assert_eq!(classify_status(401), Decision::Reauthenticate);
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
        assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
    }

    #[test]
    fn waits_are_jittered_below_a_growing_ceiling_and_capped() {
        let mut schedule = Schedule::new(Duration::from_millis(100), Duration::from_secs(1));
        let waits: Vec<Duration> = (0..20).map(|_| schedule.next_wait(None)).collect();
        assert!(waits[0] <= Duration::from_millis(100));
        assert!(waits[1] <= Duration::from_millis(200));
        assert!(waits.iter().all(|w| *w <= Duration::from_secs(1)));
        // Full jitter: twenty draws are not all equal.
        assert!(waits.windows(2).any(|w| w[0] != w[1]));
    }

    #[test]
    fn server_hints_win_even_past_the_backoff_cap() {
        let mut schedule = Schedule::new(Duration::from_millis(100), Duration::from_secs(60));
        assert_eq!(
            schedule.next_wait(Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        // --max-backoff caps the tool's own waits only; --max-retry-after is the client's check.
        assert_eq!(
            schedule.next_wait(Some(Duration::from_secs(600))),
            Duration::from_secs(600)
        );
    }

    #[test]
    fn absurd_retry_after_values_saturate_or_are_ignored_never_panic() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        for huge in [
            "99999999999999999999",
            "1e30",
            "1e300",
            "inf",
            "18446744073709551616",
        ] {
            assert_eq!(parse_retry_after(huge, now), Some(Duration::MAX), "{huge}");
        }
        assert_eq!(
            parse_retry_after("1.5", now),
            Some(Duration::from_millis(1500))
        );
        for bad in ["NaN", "-1e30", "", " ", "0x10", "1e", "Wed, 99 Foo"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }
}
