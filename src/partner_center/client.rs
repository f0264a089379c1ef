//! One logical Partner Center call: paced by the throttle, authenticated, retried per the policy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST};
use uuid::Uuid;

use crate::domain::stats::Stats;
use crate::partner_center::api::{parse_error_body, sanitize, Request};
use crate::partner_center::auth::TokenProvider;
use crate::partner_center::cloud::is_loopback;
use crate::partner_center::fatal::{Cause, FatalStop};
use crate::partner_center::http::*;
pub use crate::partner_center::http::{
    http_client, install_tls_provider, new_uuid, test_http_client,
};
use crate::partner_center::retry::{
    classify_status, describe_transport_error, retry_after, transport_retryable, Decision,
    RetryPolicy, Schedule,
};
use crate::partner_center::throttle::Throttle;
use crate::partner_center::PartnerCenterError;

/// Header carrying the idempotency id: kept for a resend of a send that got no answer, new after
/// any answer ("Partner Center REST and response headers").
pub const REQUEST_ID: HeaderName = HeaderName::from_static("ms-requestid");
/// Header naming the API contract version; Partner Center's REST headers list it as required.
pub const CONTRACT_VERSION: HeaderName = HeaderName::from_static("ms-contract-version");
/// Header naming the language of the service's messages.
pub const LOCALE: HeaderName = HeaderName::from_static("x-locale");
/// The `MS-Contract-Version` sent on every API call.
pub const CONTRACT_VERSION_VALUE: HeaderValue = HeaderValue::from_static("v1");
/// The `X-Locale` sent when `--locale` is not given.
pub const DEFAULT_LOCALE: &str = "en-US";
/// Header carrying the per-send tracing id.
pub const CORRELATION_ID: HeaderName = HeaderName::from_static("ms-correlationid");
/// Header naming the calling application.
pub const APPLICATION: HeaderName = HeaderName::from_static("ms-partnercenter-application");

/// How the last send of a call ended.
#[derive(Debug, Clone)]
pub enum Reply {
    /// The service answered (after any retries).
    Answer {
        /// HTTP status of the last answer.
        status: u16,
        /// Its body.
        body: Bytes,
    },
    /// No HTTP answer: connect failure, timeout, dropped connection.
    Transport(String),
    /// No usable access token could be had.
    Token(String),
    /// Not sent (again): the run was stopped for good (see [`crate::partner_center::fatal`]).
    Stopped(String),
}

/// The result of one logical call, as the results file describes it.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// How the last send ended.
    pub reply: Reply,
    /// Every request sent for this call that may have reached the service (a resend after a 401
    /// or after a connection closed unanswered included); a connect failure is not one.
    pub attempts: u32,
    /// `MS-CorrelationId` of the last send.
    pub correlation_id: Option<Uuid>,
    /// `MS-RequestId` of the last send (the deciding one).
    pub request_id: Uuid,
    /// The status the service answered `request_id` with, if it did: for a call stopped while
    /// waiting to resend, the answer it was waiting after (that id is spent, and a `--resume`
    /// must not send it again; see `results::resume`).
    pub answered: Option<u16>,
    /// Why the call gave up although the answer itself looks retryable (e.g. a `Retry-After`
    /// past `--max-retry-after`); it replaces the error message in the results.
    pub note: Option<String>,
}

/// The most of an answer body that is read; Partner Center's answers are a few kilobytes, and a
/// larger one (a proxy's page, a runaway stream) fails the attempt instead of filling memory.
pub const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// Why one attempt got no usable answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AttemptError {
    /// No answer: connect failure, timeout, reset before the status line.
    #[error("{}", describe_transport_error(.0))]
    Send(#[source] reqwest::Error),
    /// The status arrived but the body was cut off (connection lost, timeout): the request may
    /// have landed, and is sent again with the same `MS-RequestId`.
    #[error("{}", describe_body_error(.0))]
    Body(#[source] reqwest::Error),
    /// The body is larger than the call's cap (this many bytes).
    #[error("the answer was larger than {} KiB and was not read", .0 / 1024)]
    TooLarge(usize),
}

fn describe_body_error(err: &reqwest::Error) -> String {
    let detail = describe_transport_error(err);
    if err.is_timeout() {
        format!("timed out while reading the answer ({detail})")
    } else if detail.starts_with("connection lost while reading the answer") {
        detail
    } else {
        format!("connection lost while reading the answer: {detail}")
    }
}

impl AttemptError {
    fn retryable(&self) -> bool {
        match self {
            AttemptError::Send(err) => transport_retryable(err),
            AttemptError::Body(_) | AttemptError::TooLarge(_) => true,
        }
    }

    /// The server closed the connection without a byte of answer (reset, or closed before the
    /// status line): on a kept-alive connection, the server closing it as the request went out.
    fn closed_unanswered(&self) -> bool {
        use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
        let AttemptError::Send(err) = self else {
            return false;
        };
        let mut causes = std::iter::successors(std::error::Error::source(err), |e| e.source());
        !err.is_timeout()
            && !err.is_connect()
            && causes.any(|inner| {
                inner
                    .downcast_ref::<hyper::Error>()
                    .is_some_and(hyper::Error::is_incomplete_message)
                    || inner.downcast_ref::<std::io::Error>().is_some_and(|io| {
                        matches!(io.kind(), ConnectionReset | BrokenPipe | ConnectionAborted)
                    })
            })
    }
}

/// Sends calls to one Partner Center base URL on behalf of every worker.
pub struct Client {
    http: reqwest::Client,
    tokens: Arc<TokenProvider>,
    throttle: Arc<Throttle>,
    policy: RetryPolicy,
    stats: Arc<Stats>,
    /// The run-wide stop this client trips (MFA, token endpoint, outage) and obeys.
    fatal: Arc<FatalStop>,
    /// The base URL, parsed once: each request only swaps in its path and query.
    base_url: Result<reqwest::Url, url::ParseError>,
    /// `Host` for every request, built once; hyper would otherwise `format!` it per request.
    host: Option<HeaderValue>,
    /// `X-Locale` for every request.
    locale: HeaderValue,
}

/// Records a newly drawn `MS-RequestId` before the send that carries it (the crash journal), so
/// that a call which may land unanswered is always on file; an `Err` stops the call unsent.
pub type NoteRequestId<'a> = &'a (dyn Fn(Uuid) -> Result<(), String> + Send + Sync);

/// Where and how a client connects: the parts of a job's settings the client reads.
pub struct Endpoint<'a> {
    /// The API base URL, no trailing slash.
    pub base_url: &'a str,
    /// The token authority, no trailing slash.
    pub authority: &'a str,
    /// `X-Locale` of every API call.
    pub locale: &'a str,
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// In-flight requests (the connection pool's size).
    pub concurrency: usize,
    /// Retry tunables.
    pub retry: RetryPolicy,
}

/// What the [`Exchange`] reports of a call's sends so far, however the call ends.
struct Sent {
    /// Requests that may have reached the service (the `attempts` column).
    attempts: u32,
    correlation_id: Option<Uuid>,
    request_id: Uuid,
    /// The status `request_id` was answered with.
    answered: Option<u16>,
}

impl Sent {
    fn end(&self, reply: Reply) -> Exchange {
        Exchange {
            reply,
            attempts: self.attempts,
            correlation_id: self.correlation_id,
            request_id: self.request_id,
            answered: self.answered,
            note: None,
        }
    }
}

impl Client {
    /// Builds the HTTP client and token provider for `config` and proves the credentials by
    /// fetching a first token, so a bad secret stops the command before anything is sent.
    /// The client shares the pacer and counters, and reports run-wide failures to `fatal`.
    pub async fn connect(
        config: &Endpoint<'_>,
        credentials: crate::partner_center::auth::Credentials,
        throttle: Arc<Throttle>,
        stats: Arc<Stats>,
        fatal: Arc<FatalStop>,
    ) -> Result<(Client, Arc<TokenProvider>), PartnerCenterError> {
        // A proxy cannot reach this machine's own simulator, so the sandbox goes direct (and
        // skips the per-request proxy lookup); a real service keeps the system's proxy settings.
        let direct = is_loopback(config.base_url) && is_loopback(config.authority);
        let http = http_client(config.timeout, config.concurrency, direct)
            .map_err(PartnerCenterError::HttpClient)?;
        let tokens = Arc::new(TokenProvider::new(
            http.clone(),
            credentials,
            config.retry.max_retry_after,
        ));
        tokens.token().await?;
        let base_url = reqwest::Url::parse(config.base_url.trim_end_matches('/'));
        let client = Client {
            host: base_url.as_ref().ok().and_then(host_header),
            // Checked by the settings; a value a header cannot carry keeps the default.
            locale: HeaderValue::from_str(config.locale)
                .unwrap_or(HeaderValue::from_static(DEFAULT_LOCALE)),
            base_url,
            http,
            tokens: tokens.clone(),
            throttle,
            policy: config.retry,
            stats,
            fatal,
        };
        Ok((client, tokens))
    }

    /// The request's URL from the parsed base (no re-parse of scheme, host and port).
    fn request_url(&self, request: &Request) -> Result<reqwest::Url, url::ParseError> {
        let mut parts = request.path_and_query.splitn(2, '?');
        let (path, query) = (parts.next().unwrap_or_default(), parts.next());
        let base = self.base_url.as_ref().map_err(|err| *err)?;
        let mut url = base.clone();
        match base.path().trim_end_matches('/') {
            "" => url.set_path(path),
            prefix => url.set_path(&format!("{prefix}{path}")),
        }
        url.set_query(query);
        Ok(url)
    }

    /// Sends `request` until it succeeds, fails for good, or runs out of attempts.
    pub async fn send(&self, request: &Request, request_id: Uuid) -> Exchange {
        self.send_full(request, request_id, &[], MAX_ANSWER_BYTES, None)
            .await
    }

    /// [`Client::send`] for a write: each `MS-RequestId` drawn after an answer is handed to
    /// `note` (the journal) before it is sent.
    pub async fn send_noted(
        &self,
        request: &Request,
        request_id: Uuid,
        note: NoteRequestId<'_>,
    ) -> Exchange {
        self.send_full(request, request_id, &[], MAX_ANSWER_BYTES, Some(note))
            .await
    }

    /// [`Client::send`] with extra headers on every attempt (a list page's
    /// `MS-ContinuationToken`), reading answers of up to `max_answer` bytes: a customer list page
    /// of 500 customers can pass [`MAX_ANSWER_BYTES`].
    pub async fn send_capped(
        &self,
        request: &Request,
        request_id: Uuid,
        extra: &[(HeaderName, HeaderValue)],
        max_answer: usize,
    ) -> Exchange {
        self.send_full(request, request_id, extra, max_answer, None)
            .await
    }

    /// The one send loop behind the others.
    async fn send_full(
        &self,
        request: &Request,
        request_id: Uuid,
        extra: &[(HeaderName, HeaderValue)],
        max_answer: usize,
        note: Option<NoteRequestId<'_>>,
    ) -> Exchange {
        // Microsoft's rule: the same MS-RequestId for a resend of a send that got no answer (it
        // may have landed; the service recognises the repeat), a new one after any answer.
        let mut sent = Sent {
            attempts: 0,
            correlation_id: None,
            request_id,
            answered: None,
        };
        let url = match self.request_url(request) {
            Ok(url) => url,
            Err(reason) => return sent.end(Reply::Transport(format!("bad request URL: {reason}"))),
        };
        let mut schedule = Schedule::new(self.policy.initial, self.policy.max_backoff);
        // Sends weighed against --max-attempts, as documented: every send, a connect failure
        // too, but not the free resend. The one count both limits check, after an answer and
        // after none; `sent.attempts` (what may have reached the service) bounds nothing.
        let mut budget = 0u32;
        let mut reauthenticated = false;
        // One resend per call outside --max-attempts: for a connection the server closed
        // without answering (the keep-alive race). The same MS-RequestId makes it safe.
        let mut free_resend = true;
        // The id the next send takes after an answer: drawn and journalled as soon as the
        // answer is in, before the wait that comes before that send, so that a run stopped (or
        // killed) during the wait leaves in the journal an id the service never answered, not
        // the answered one a resume would send again. `Err`: it could not be journalled.
        let mut next_id: Option<Result<Uuid, String>> = None;
        let draw = || {
            let id = new_uuid();
            match note.map(|note| note(id)) {
                Some(Err(reason)) => Err(reason),
                _ => Ok(id),
            }
        };
        loop {
            // The slot first, the token second: a token picked up before a long wait for the
            // limiter (or a 429 pause) can expire on the way, and the send would earn a 401.
            // A stop for good also ends a wait for the limiter (a long 429 pause) or the token.
            let ready = async {
                self.throttle.acquire().await;
                self.tokens.token().await
            };
            let token = match self.unless_stopped(ready).await {
                None => {
                    let cause = self.fatal.cause().map(|c| format!(" ({c})"));
                    let cause = cause.unwrap_or_default();
                    let reason = format!("not sent again: the run was stopped{cause}");
                    return sent.end(Reply::Stopped(reason));
                }
                Some(Ok(token)) => token,
                Some(Err(err)) => {
                    // Every other row would fail the same way, one by one: stop the run.
                    let reason = err.to_string();
                    self.fatal.trip(Cause::TokenEndpoint(sanitize(&reason)));
                    return sent.end(Reply::Token(reason));
                }
            };
            // From here on the pacer has counted this send (`acquire`): a return before it goes
            // out must take it back, or it stays in flight for the rest of the run.
            let Some(auth) = token.header.clone() else {
                self.throttle.on_unanswered();
                let reason = "the access token holds characters an HTTP header cannot carry";
                return sent.end(Reply::Token(reason.into()));
            };
            match next_id.take() {
                Some(Ok(id)) => (sent.request_id, sent.answered) = (id, None),
                Some(Err(reason)) => {
                    self.throttle.on_unanswered();
                    return sent.end(Reply::Stopped(format!(
                        "not sent again: its new MS-RequestId could not be journalled: {reason}"
                    )));
                }
                None => {}
            }
            sent.attempts += 1;
            budget += 1;
            let correlation = new_uuid();
            sent.correlation_id = Some(correlation);
            // Built as a `Request` rather than through `RequestBuilder`, whose every `.header()`
            // moves the whole builder: this runs once per send.
            let mut outgoing = reqwest::Request::new(request.method.clone(), url.clone());
            let headers = outgoing.headers_mut();
            headers.reserve(8 + extra.len());
            for (name, value) in extra {
                headers.insert(name.clone(), value.clone());
            }
            headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
            headers.insert(APPLICATION, HeaderValue::from_static(APPLICATION_NAME));
            headers.insert(REQUEST_ID, header_value(sent.request_id));
            headers.insert(CORRELATION_ID, header_value(correlation));
            headers.insert(CONTRACT_VERSION, CONTRACT_VERSION_VALUE);
            headers.insert(LOCALE, self.locale.clone());
            headers.insert(AUTHORIZATION, auth);
            if let Some(host) = &self.host {
                headers.insert(HOST, host.clone());
            }
            if let Some(body) = &request.body {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                *outgoing.body_mut() = Some(reqwest::Body::from(body.clone()));
            }
            let started = Instant::now();
            let outcome = match self.http.execute(outgoing).await {
                Ok(response) => {
                    // The pacer's round trip ends with the status line: a body that stalls until
                    // --timeout says nothing about how fast the service answers.
                    let headers_in = started.elapsed();
                    let status = response.status().as_u16();
                    let decision = classify_status(status);
                    // Only answers that may be retried need their Retry-After.
                    let retried = matches!(decision, Decision::Retry(_));
                    let hint = retried.then(|| retry_after(response.headers())).flatten();
                    let body = read_body(response, max_answer).await;
                    // A status that is retried (408, 429, 5xx) or renews the token (401) decides
                    // without its body: a body cut off or too large must not turn it into "no
                    // answer", which lost a 429's Retry-After and the pool's pause, and resent
                    // an answered request under its id. (A 401 without its body cannot name
                    // MFA: the token is renewed once, and a second 401 stops the run.)
                    let decided = retried || decision == Decision::Reauthenticate;
                    match body {
                        Ok(body) => Ok((status, decision, hint, body, headers_in)),
                        Err(err) if decided => {
                            tracing::debug!(%url, status, %err, "answer's body not read");
                            Ok((status, decision, hint, Bytes::new(), headers_in))
                        }
                        Err(err) => Err(err),
                    }
                }
                Err(err) => Err(AttemptError::Send(err)),
            };
            let (status, decision, hint, answer, headers_in) = match outcome {
                Ok(parts) => parts,
                Err(err) => {
                    self.stats.record_transport_error();
                    self.throttle.on_unanswered();
                    let reason = err.to_string();
                    let attempt = sent.attempts;
                    tracing::debug!(%url, attempt, %correlation, %reason, "no answer");
                    // The service did answer an oversized body, in full; only this side declined
                    // to read it: an answer, so a retry takes a new id.
                    let answered = matches!(err, AttemptError::TooLarge(_));
                    if matches!(&err, AttemptError::Send(err) if err.is_connect()) {
                        // No connection, so nothing was written: not an attempt (it still
                        // spends the budget).
                        sent.attempts -= 1;
                    }
                    if free_resend && err.closed_unanswered() {
                        // Not the service failing: an idle connection it had closed. At once,
                        // and not counted against --max-attempts (it is in `attempts`: the
                        // request was written, and may have reached the service).
                        free_resend = false;
                        budget -= 1;
                        continue;
                    }
                    if err.retryable() && budget < self.policy.max_attempts {
                        self.stats.record_retry();
                        next_id = answered.then(draw);
                        self.pause(schedule.next_wait(None)).await;
                        continue;
                    }
                    self.fatal.call_failed(&reason);
                    return sent.end(Reply::Transport(reason));
                }
            };
            self.stats.record_answer(status, started.elapsed());
            // Whatever the answer but a 429, the service counted the request against its quota.
            self.throttle.on_answer(headers_in, status);
            sent.answered = Some(status);
            tracing::debug!(%url, attempt = sent.attempts, %correlation, status, "answer");
            let done = |body: Bytes| sent.end(Reply::Answer { status, body });
            match decision {
                Decision::Successful | Decision::DontRetry(_) => {
                    self.fatal.call_answered();
                    return done(answer);
                }
                Decision::Reauthenticate => {
                    if names_mfa_required(&answer) {
                        // No token renewal can add the MFA claim: only a new sign-in can.
                        self.fatal.trip(Cause::MfaRequired);
                        return done(answer);
                    }
                    if reauthenticated || !self.tokens.can_refresh() {
                        let detail = parse_error_body(&answer)
                            .message
                            .unwrap_or_else(|| "no reason given".to_string());
                        self.fatal.trip(Cause::Unauthorized(detail));
                        return done(answer);
                    }
                    // The token may have expired early or been revoked: renew once and resend.
                    reauthenticated = true;
                    self.tokens.invalidate(token.generation);
                    self.stats.record_retry();
                    next_id = Some(draw());
                }
                Decision::Retry(reason) => {
                    let too_long = hint
                        .as_ref()
                        .filter(|h| h.wait > self.policy.max_retry_after);
                    // A figure past --max-retry-after is not obeyed, by this row or by the pool:
                    // the pool hears of the 429 with the tool's own backoff, as after a 429
                    // without the header (a pause with nothing measured lasts the whole wait).
                    let wait = match too_long {
                        Some(_) => schedule.next_wait(None),
                        None => schedule.next_wait(hint.as_ref().map(|h| h.wait)),
                    };
                    if status == 429 {
                        // Every 429, this call's last included: the pool pauses as long as the
                        // bucket needs (this request waits its Retry-After), the pacer lowers the
                        // rate, and its count of requests in flight loses this one.
                        self.throttle.on_throttled(wait);
                    }
                    if let Some(hint) = too_long {
                        // An absurd figure (or a service asking for hours): the row fails now
                        // with the service's own number rather than sleeping on it.
                        return Exchange {
                            note: Some(format!(
                                "the service answered {status} and asked to wait Retry-After: {} (seconds or a date), longer than --max-retry-after {} s; not retried",
                                hint.raw,
                                self.policy.max_retry_after.as_secs_f64()
                            )),
                            ..done(answer)
                        };
                    }
                    if budget >= self.policy.max_attempts {
                        if status >= 500 {
                            self.fatal.call_failed(&format!("HTTP {status}"));
                        }
                        return done(answer);
                    }
                    tracing::debug!(
                        %url,
                        attempt = sent.attempts,
                        reason,
                        wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                        "retrying"
                    );
                    self.stats.record_retry();
                    next_id = Some(draw());
                    self.pause(wait).await;
                }
            }
        }
    }

    /// `work`'s output, or `None` once the run is stopped for good (before or while it waits:
    /// `tripped` is polled first and is ready at once for a run already stopped).
    async fn unless_stopped<T>(&self, work: impl std::future::Future<Output = T>) -> Option<T> {
        tokio::select! {
            biased;
            _ = self.fatal.tripped() => None,
            output = work => Some(output),
        }
    }

    /// Sleeps between attempts; a stop for good ends the sleep, and the loop's next turn the call.
    async fn pause(&self, wait: Duration) {
        self.unless_stopped(tokio::time::sleep(wait)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mfa_is_read_from_error_code_fields_only() {
        for body in [
            r#"{"code":900421,"description":"MFA required"}"#,
            r#"{"code":"900421","description":"MFA required"}"#,
            r#"{"statusCode":401,"Code":"900421"}"#,
            r#"{"error":{"code":"900421","message":"MFA required"}}"#,
            r#"{"error":"invalid_grant","error_codes":[50076,900421]}"#,
            r#"{"error":"interaction_required","error_codes":["900421"]}"#,
            r#"{"error":"interaction_required","error_description":"AADSTS900421: The user needs multi-factor authentication."}"#,
            r#"{"code":"AADSTS900421"}"#,
        ] {
            assert!(names_mfa_required(body.as_bytes()), "{body}");
        }
        for body in [
            // The digits in a correlation id, a time stamp or free text are no error code.
            r#"{"code":401,"description":"Unauthorized","correlationId":"00900421-aaaa-4000-8000-000000000000"}"#,
            r#"{"code":"InvalidToken","description":"token 1900421900 expired at 900421"}"#,
            r#"{"error":"invalid_token","error_codes":[70043],"timestamp":"2026-09-00421"}"#,
            r#"{"error":"invalid_token","error_description":"AADSTS9004211: something else"}"#,
            r#"{"code":9004210}"#,
            "Unauthorized 900421",
            "<html>900421</html>",
            "",
            "null",
        ] {
            assert!(!names_mfa_required(body.as_bytes()), "{body}");
        }
    }

    #[test]
    fn the_host_header_carries_the_port_only_when_it_is_not_the_default() {
        let cases = [
            ("http://127.0.0.1:8080", "127.0.0.1:8080"),
            (
                "https://api.partnercenter.microsoft.com",
                "api.partnercenter.microsoft.com",
            ),
            ("https://example.com:443/v1", "example.com"),
            ("http://example.com:80", "example.com"),
            ("https://example.com:8443", "example.com:8443"),
            ("http://[::1]:9000", "[::1]:9000"),
        ];
        for (url, expected) in cases {
            let parsed = reqwest::Url::parse(url).expect("url");
            let value = host_header(&parsed).expect("a host");
            assert_eq!(value.to_str().ok(), Some(expected), "{url}");
        }
    }
}
