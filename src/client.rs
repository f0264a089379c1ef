//! One logical Partner Center call: paced by the throttle, authenticated, retried per the policy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST};
use uuid::Uuid;

use crate::api::Request;
use crate::auth::TokenProvider;
use crate::retry::{
    classify_status, describe_transport_error, retry_after, Decision, RetryPolicy, Retryable,
};
use crate::stats::Stats;
use crate::throttle::Throttle;

/// Header carrying the per-call idempotency id.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("ms-requestid");
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
}

/// The result of one logical call, as the results file describes it.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// How the last send ended.
    pub reply: Reply,
    /// Every send of this call, a resend after a 401 included.
    pub attempts: u32,
    /// `MS-CorrelationId` of the last send.
    pub correlation_id: Option<Uuid>,
    /// `MS-RequestId` shared by every send of this call.
    pub request_id: Uuid,
}

/// Sends calls to one Partner Center base URL on behalf of every worker.
pub struct Client {
    http: reqwest::Client,
    base: String,
    tokens: Arc<TokenProvider>,
    throttle: Arc<Throttle>,
    policy: RetryPolicy,
    stats: Arc<Stats>,
    /// The base URL, parsed once: each request only swaps in its path and query.
    base_url: Option<reqwest::Url>,
    /// `Host` for every request, built once; hyper would otherwise `format!` it per request.
    host: Option<HeaderValue>,
}

impl Client {
    /// A client for `base` (no trailing slash), sharing the token provider, pacer and counters.
    pub fn new(
        http: reqwest::Client,
        base: &str,
        tokens: Arc<TokenProvider>,
        throttle: Arc<Throttle>,
        policy: RetryPolicy,
        stats: Arc<Stats>,
    ) -> Self {
        let base = base.trim_end_matches('/').to_string();
        let base_url = reqwest::Url::parse(&base).ok();
        Client {
            host: base_url.as_ref().and_then(host_header),
            base_url,
            http,
            base,
            tokens,
            throttle,
            policy,
            stats,
        }
    }

    /// Builds the HTTP client and token provider for `config` and proves the credentials by
    /// fetching a first token, so a bad secret stops the command before anything is sent.
    pub async fn connect(
        config: &crate::config::RunConfig,
        credentials: crate::auth::Credentials,
        throttle: Arc<Throttle>,
        stats: Arc<Stats>,
    ) -> Result<(Client, Arc<TokenProvider>), crate::error::ErrorKind> {
        // A proxy cannot reach this machine's own simulator, so the sandbox goes direct (and
        // skips the per-request proxy lookup); a real service keeps the system's proxy settings.
        let local = |text: &str| {
            reqwest::Url::parse(text).is_ok_and(|url| crate::config::is_loopback(&url))
        };
        let direct = local(&config.base_url) && local(&config.authority);
        let http = http_client(config.timeout, config.concurrency, direct)
            .map_err(|e| crate::error::ErrorKind::Config(format!("HTTP client: {e}")))?;
        let tokens = Arc::new(TokenProvider::new(http.clone(), credentials));
        tokens.token().await?;
        let client = Client::new(
            http,
            &config.base_url,
            tokens.clone(),
            throttle,
            config.retry,
            stats,
        );
        Ok((client, tokens))
    }

    /// The full URL a request goes to.
    pub fn url(&self, request: &Request) -> String {
        format!("{}{}", self.base, request.path_and_query)
    }

    /// The request's URL from the parsed base (no re-parse of scheme, host and port).
    fn request_url(&self, request: &Request) -> Result<reqwest::Url, String> {
        let (path, query) = match request.path_and_query.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (request.path_and_query.as_str(), None),
        };
        match &self.base_url {
            Some(base) => {
                let mut url = base.clone();
                let prefix = base.path().trim_end_matches('/');
                if prefix.is_empty() {
                    url.set_path(path);
                } else {
                    url.set_path(&format!("{prefix}{path}"));
                }
                url.set_query(query);
                Ok(url)
            }
            None => reqwest::Url::parse(&self.url(request)).map_err(|e| e.to_string()),
        }
    }

    /// Sends `request` until it succeeds, fails for good, or runs out of attempts.
    pub async fn send(&self, request: &Request, request_id: Uuid) -> Exchange {
        let url = match self.request_url(request) {
            Ok(url) => url,
            Err(reason) => {
                return Exchange {
                    reply: Reply::Transport(format!("bad request URL: {reason}")),
                    attempts: 0,
                    correlation_id: None,
                    request_id,
                }
            }
        };
        let mut schedule = self.policy.schedule();
        let mut attempts = 0u32;
        let mut reauthenticated = false;
        let mut correlation_id = None;
        let request_id_value = header_value(request_id);
        loop {
            // The slot first, the token second: a token picked up before a long wait for the
            // limiter (or a 429 pause) can expire on the way, and the send would earn a 401.
            self.throttle.acquire().await;
            let token = match self.tokens.token().await {
                Ok(token) => token,
                Err(err) => {
                    return Exchange {
                        reply: Reply::Token(err.to_string()),
                        attempts,
                        correlation_id,
                        request_id,
                    }
                }
            };
            let Some(auth) = token.header().cloned() else {
                return Exchange {
                    reply: Reply::Token(
                        "the access token holds characters an HTTP header cannot carry".into(),
                    ),
                    attempts,
                    correlation_id,
                    request_id,
                };
            };
            attempts += 1;
            let correlation = new_uuid();
            correlation_id = Some(correlation);
            // Built as a `Request` rather than through `RequestBuilder`, whose every `.header()`
            // moves the whole builder: this runs once per send.
            let mut outgoing = reqwest::Request::new(request.method.clone(), url.clone());
            let headers = outgoing.headers_mut();
            headers.reserve(6);
            headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
            headers.insert(APPLICATION, HeaderValue::from_static(APPLICATION_NAME));
            headers.insert(REQUEST_ID, request_id_value.clone());
            headers.insert(CORRELATION_ID, header_value(correlation));
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
                    let status = response.status().as_u16();
                    // Only answers that may be retried need their Retry-After.
                    let hint = if status.should_retry() {
                        retry_after(response.headers())
                    } else {
                        None
                    };
                    match read_body(response).await {
                        Ok(body) => Ok((status, hint, body)),
                        Err(err) => Err(err),
                    }
                }
                Err(err) => Err(err),
            };
            let (status, hint, answer) = match outcome {
                Ok(parts) => parts,
                Err(err) => {
                    self.stats.record_transport_error();
                    let reason = describe_transport_error(&err);
                    tracing::debug!(%url, attempt = attempts, %correlation, %reason, "no answer");
                    if err.should_retry() && attempts < self.policy.max_attempts {
                        self.stats.record_retry();
                        tokio::time::sleep(schedule.next_wait(None)).await;
                        continue;
                    }
                    return Exchange {
                        reply: Reply::Transport(reason),
                        attempts,
                        correlation_id,
                        request_id,
                    };
                }
            };
            self.stats.record_answer(status, started.elapsed());
            if status != 429 {
                // Whatever the answer, the service counted the request against its quota.
                self.throttle.on_accepted();
            }
            tracing::debug!(%url, attempt = attempts, %correlation, status, "answer");
            let done = |body: Bytes| Exchange {
                reply: Reply::Answer { status, body },
                attempts,
                correlation_id,
                request_id,
            };
            match classify_status(status) {
                Decision::Successful | Decision::DontRetry(_) => return done(answer),
                Decision::Reauthenticate => {
                    if reauthenticated || !self.tokens.can_refresh() {
                        return done(answer);
                    }
                    // The token may have expired early or been revoked: renew once and resend.
                    reauthenticated = true;
                    self.tokens.invalidate(token.generation);
                    self.stats.record_retry();
                }
                Decision::Retry(reason) => {
                    let wait = schedule.next_wait(hint);
                    if status == 429 {
                        // Every worker waits, not just this one; acquire() sits out the pause.
                        self.throttle.on_throttled(wait);
                    }
                    if attempts >= self.policy.max_attempts {
                        return done(answer);
                    }
                    tracing::debug!(%url, attempt = attempts, reason, wait_ms = wait.as_millis() as u64, "retrying");
                    self.stats.record_retry();
                    if status != 429 {
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }
    }
}

/// The answer's body. Partner Center's answers are small and arrive in one piece, which is then
/// handed over as it is; `Response::bytes` would gather even a single piece into a new buffer.
async fn read_body(mut response: reqwest::Response) -> Result<Bytes, reqwest::Error> {
    let Some(first) = response.chunk().await? else {
        return Ok(Bytes::new());
    };
    let Some(second) = response.chunk().await? else {
        return Ok(first);
    };
    let mut body = bytes::BytesMut::with_capacity(first.len() + second.len());
    body.extend_from_slice(&first);
    body.extend_from_slice(&second);
    while let Some(more) = response.chunk().await? {
        body.extend_from_slice(&more);
    }
    Ok(body.freeze())
}

/// The application name sent in `MS-PartnerCenter-Application`.
const APPLICATION_NAME: &str = concat!("pc-qualify/", env!("CARGO_PKG_VERSION"));

/// A random (version 4) UUID from a fast non-cryptographic generator: these ids only need to be
/// unique, and the OS generator costs a system call per id.
pub fn new_uuid() -> Uuid {
    let mut bytes = [0u8; 16];
    fastrand::fill(&mut bytes);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// `Host` as hyper would write it: `host[:port]`, the port only when it is not the scheme's default.
fn host_header(url: &reqwest::Url) -> Option<HeaderValue> {
    let host = url.host_str()?;
    let value = match url.port() {
        Some(port) => HeaderValue::from_str(&format!("{host}:{port}")),
        None => HeaderValue::from_str(host),
    };
    value.ok()
}

fn header_value(id: Uuid) -> HeaderValue {
    let mut buf = Uuid::encode_buffer();
    let text = id.hyphenated().encode_lower(&mut buf);
    // A hyphenated UUID is always a valid header value.
    HeaderValue::from_str(text).unwrap_or(HeaderValue::from_static(""))
}

/// Makes rustls's ring provider the process default. reqwest is built with `rustls-no-provider`
/// (no aws-lc C build), so every client in the process needs this first; repeating it is harmless.
pub fn install_tls_provider() {
    // `Err` only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Builds the one HTTP client every call shares (keep-alive, rustls, per-request timeout);
/// `direct` leaves out the system's proxy settings.
pub fn http_client(
    timeout: Duration,
    pool: usize,
    direct: bool,
) -> Result<reqwest::Client, reqwest::Error> {
    install_tls_provider();
    let builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .pool_max_idle_per_host(pool.max(1))
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .https_only(false);
    if direct {
        builder.no_proxy().build()
    } else {
        builder.build()
    }
}

/// A plain client for tests and tools that talk to the simulator (provider installed first).
pub fn test_http_client() -> reqwest::Client {
    install_tls_provider();
    reqwest::Client::new()
}

#[cfg(test)]
mod tests {
    use super::*;

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
