//! Below the client: reqwest's HTTP client with rustls (one place sets TLS, timeouts and the
//! connection pool), answers read within a size cap, the headers every call carries, and how
//! an answer says that multi-factor authentication is needed.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::HeaderValue;
use uuid::Uuid;

use crate::partner_center::client::{
    AttemptError, CONTRACT_VERSION, CONTRACT_VERSION_VALUE, MAX_ANSWER_BYTES,
};
use crate::partner_center::retry::{describe_transport_error, retry_after, RetryAfter};

/// The Partner Center error code of a 401 whose token lacks the multi-factor authentication claim.
pub const MFA_REQUIRED_CODE: &str = "900421";

/// How deep [`names_mfa_required`] looks into nested error objects.
pub(crate) const MAX_ERROR_DEPTH: usize = 4;

/// Whether a 401 body says the token lacks the MFA claim: a real error-code field names
/// [`MFA_REQUIRED_CODE`] – `code` as a number or a string (also `AADSTS900421`), an
/// `error_codes` list (Entra ID), or `AADSTS900421` in an error description – at the top or in
/// a nested error object. The digits elsewhere (a correlation id, a timestamp, free text) are
/// not a code: guessing from them would stop a whole run on an ordinary expired token.
pub(crate) fn names_mfa_required(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|v| mfa_in(&v, 0))
}

pub(crate) fn mfa_in(value: &serde_json::Value, depth: usize) -> bool {
    use serde_json::Value;
    let Value::Object(map) = value else {
        return false;
    };
    let is_code = |v: &Value| match v {
        Value::Number(n) => n.as_u64() == MFA_REQUIRED_CODE.parse().ok(),
        Value::String(s) => {
            let s = s.trim().to_ascii_uppercase();
            s.strip_prefix("AADSTS").unwrap_or(&s) == MFA_REQUIRED_CODE
        }
        _ => false,
    };
    map.iter().any(|(key, v)| {
        let key = key.to_ascii_lowercase();
        match key.as_str() {
            "code" | "errorcode" | "error_code" => is_code(v),
            "error_codes" | "errorcodes" => {
                matches!(v, Value::Array(codes) if codes.iter().any(is_code))
            }
            "error_description" | "description" | "message" => {
                matches!(v, Value::String(text) if mentions_aadsts_mfa(text))
            }
            _ if depth < MAX_ERROR_DEPTH => mfa_in(v, depth + 1),
            _ => false,
        }
    })
}

/// `AADSTS900421` in a description, as a whole code (not the start of a longer number).
pub(crate) fn mentions_aadsts_mfa(text: &str) -> bool {
    let needle = concat!("AADSTS", "900421");
    text.match_indices(needle)
        .any(|(at, _)| !text[at + needle.len()..].starts_with(|c: char| c.is_ascii_digit()))
}

/// The answer's body, at most `max` bytes. Partner Center's answers are small and arrive
/// in one piece, which is then handed over as it is; `Response::bytes` would gather even a single
/// piece into a new buffer.
pub(crate) async fn read_body(
    mut response: reqwest::Response,
    max: usize,
) -> Result<Bytes, AttemptError> {
    let cap = u64::try_from(max).unwrap_or(u64::MAX);
    if response.content_length().is_some_and(|n| n > cap) {
        return Err(AttemptError::TooLarge(max));
    }
    let (mut pieces, mut len) = (Vec::new(), 0);
    while let Some(piece) = response.chunk().await.map_err(AttemptError::Body)? {
        len += piece.len();
        if len > max {
            return Err(AttemptError::TooLarge(max));
        }
        pieces.push(piece);
    }
    Ok(match <[Bytes; 1]>::try_from(pieces) {
        Ok([one]) => one,
        Err(pieces) => Bytes::from(pieces.concat()),
    })
}

/// Why a form posted to an identity endpoint got no usable answer (its text follows the URL).
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// No answer: what the transport said.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// An answer whose body could not be read (cut off, or larger than the cap).
    #[error("answered HTTP {status}, but its body could not be read: {reason}")]
    Unreadable { status: u16, reason: String },
}

/// An identity endpoint's answer: its status, its body, and its `Retry-After` (Entra ID sends one
/// with a 429).
pub(crate) struct FormAnswer {
    pub status: u16,
    pub body: Bytes,
    pub retry_after: Option<RetryAfter>,
}

/// POSTs `form` to an identity endpoint (outside the retry loop): the status and the body, capped
/// like every other answer (a token answer is a few kilobytes; neither the endpoint nor a proxy in
/// its place may make the tool hold an unbounded body).
pub(crate) async fn post_form<T: serde::Serialize + ?Sized>(
    http: &reqwest::Client,
    url: &str,
    form: &T,
) -> Result<FormAnswer, PostError> {
    let response = http.post(url).form(form).send().await;
    let response =
        response.map_err(|err| PostError::Unreachable(describe_transport_error(&err)))?;
    let status = response.status().as_u16();
    let retry_after = retry_after(response.headers());
    let body = read_body(response, MAX_ANSWER_BYTES).await;
    let body = body.map_err(|err| PostError::Unreadable {
        status,
        reason: err.to_string(),
    })?;
    Ok(FormAnswer {
        status,
        body,
        retry_after,
    })
}

/// The application name sent in `MS-PartnerCenter-Application`.
pub(crate) const APPLICATION_NAME: &str = concat!("pc-qualify/", env!("CARGO_PKG_VERSION"));

/// A random (version 4) UUID from a fast non-cryptographic generator: these ids only need to be
/// unique, and the OS generator costs a system call per id.
pub fn new_uuid() -> Uuid {
    let mut bytes = [0u8; 16];
    fastrand::fill(&mut bytes);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// `Host` as hyper would write it: `host[:port]`, the port only when it is not the scheme's default.
pub(crate) fn host_header(url: &reqwest::Url) -> Option<HeaderValue> {
    url.host_str()?;
    HeaderValue::from_str(&url[url::Position::BeforeHost..url::Position::AfterPort]).ok()
}

pub(crate) fn header_value(id: Uuid) -> HeaderValue {
    let mut buf = Uuid::encode_buffer();
    let text = id.hyphenated().encode_lower(&mut buf);
    // A hyphenated UUID is always a valid header value.
    HeaderValue::from_str(text).unwrap_or(HeaderValue::from_static(""))
}

/// Makes rustls's ring provider the process default. reqwest is built with `rustls-no-provider`
/// (no aws-lc C build), so every client in the process needs this first; repeating it is harmless.
pub fn install_tls_provider() {
    // `Err` only means a provider is already installed, which is what we want. rustls 0.23.48
    // deprecates ring's provider for lacking post-quantum key exchange; the provider that has it
    // (aws-lc-rs) needs a C and assembler build, which a fresh machine with only a Rust
    // toolchain, and the mingw cross-build for Windows, do not have. ring stays supported in 0.23.
    #[allow(deprecated)]
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// How long an idle keep-alive connection is kept for reuse.
pub const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(20);

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
        // Shorter than the keep-alive of the usual servers and load balancers (60 s and more), so
        // an idle connection is dropped here before the server closes it under a new request.
        .pool_idle_timeout(IDLE_CONNECTION_TIMEOUT)
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .https_only(false);
    if direct {
        builder.no_proxy().build()
    } else {
        builder.build()
    }
}

/// A plain client for tests and tools that talk to the simulator (provider installed first),
/// sending the `MS-Contract-Version` every Partner Center call needs.
pub fn test_http_client() -> reqwest::Client {
    install_tls_provider();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(CONTRACT_VERSION, CONTRACT_VERSION_VALUE);
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap_or_default()
}
