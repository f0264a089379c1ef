//! A local stand-in for Partner Center and its AAD token endpoint, faithful enough to reject what
//! the real service rejects, with scripted and random faults, throttling and a request log.
//!
//! The server runs on hyper directly rather than `axum::serve`, because injecting a dropped
//! connection needs the service to fail: hyper then closes the socket without writing a response.

mod answered;
mod customers;
mod faults;
mod oauth;
mod parse;
mod qualifications;
mod quota;
mod redact;
mod routes;
mod shapes;
mod state;
mod switches;
#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use axum::response::Response;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::Service as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::domain::model::{CustomerId, QualificationRecord};
use crate::partner_center::cloud::Cloud;
pub use customers::{CustomerProfile, DEFAULT_PAGE_CAP};
use faults::DropConnection;
pub use oauth::{DevicePoll, UnknownDevicePoll, DEVICE_CODE_GRANT};
pub use parse::{parse_preload, parse_script, DelayError, Preload, ScriptError};
pub use quota::{parse_change as parse_throttle_change, RateChange, RateChangeError};
pub use redact::token_fingerprint;
pub use shapes::{AnswerShape, UnknownAnswerShape};
use state::Shared;

/// The partner tenant the sandbox token endpoint accepts.
pub const SANDBOX_TENANT: &str = "sandbox.onmicrosoft.com";
/// The app registration's client id the sandbox accepts.
pub const SANDBOX_CLIENT_ID: &str = "00000000-5a9d-4b0c-8e11-5a9db0c8e111";
/// The client secret the sandbox accepts.
pub const SANDBOX_CLIENT_SECRET: &str = "sandbox-client-secret";
/// The refresh token the sandbox always accepts (tokens it issues are accepted too).
pub const SANDBOX_REFRESH_TOKEN: &str = "sandbox-refresh-token";

/// The built-in customer states of [`SimConfig::sandbox`].
const SANDBOX_PRELOAD: &str = include_str!("../../samples/sandbox-preload.csv");
/// Request bodies larger than this are refused by dropping the connection.
const MAX_BODY: usize = 16 * 1024 * 1024;
/// How long [`SimHandle::shutdown`] waits for open connections to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What can go wrong setting up the simulator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The preload CSV is malformed.
    #[error("preload line {line}: {reason}")]
    Preload {
        /// 1-based line in the CSV (0 when unknown).
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// The fault script is malformed.
    #[error("script line {line}: {reason}")]
    Script {
        /// 1-based line in the script.
        line: usize,
        /// What is wrong.
        #[source]
        reason: ScriptError,
    },
    /// A configuration value is out of range or contradicts another.
    #[error("simulator configuration: {0}")]
    Config(String),
    /// The listening socket could not be opened.
    #[error("simulator cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
}

/// The service's error when a response is to be replaced by closing the connection.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped on purpose by the simulator")]
struct DroppedConnection;

/// How the simulator behaves; see each field.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Added to every API (not token) answer.
    pub latency: Duration,
    /// Access token lifetime.
    pub token_ttl: Duration,
    /// Fraction (0..=1) of API requests that fail: half 503, half a dropped connection.
    pub fault_rate: f64,
    /// The partner's quota: API requests per second allowed before 429s; 0 means never throttle.
    pub throttle_rate: f64,
    /// The quota's burst: requests it admits at once; `None` = one second's worth.
    pub throttle_burst: Option<u32>,
    /// Scheduled changes of the quota's rate (since the simulator started).
    pub throttle_changes: Vec<RateChange>,
    /// Retry-After seconds sent with throttle 429s.
    pub retry_after_secs: u64,
    /// Seed for fault, throttle and vetting choices.
    pub seed: u64,
    /// Customers' existing state.
    pub preload: Vec<PreloadEntry>,
    /// What `GET /v1/customers/all/validations` lists.
    pub validations: Vec<ValidationEntry>,
    /// How long created Education qualifications stay InReview.
    pub vetting_delay: Duration,
    /// Fraction (by seed and customer) of Education vettings that end Denied.
    pub deny_rate: f64,
    /// Per-customer scripted answers, consumed in order.
    pub script: Vec<ScriptedFault>,
    /// Whether to keep a log of every request received.
    pub record: bool,
    /// Whether to reject 2021-shaped create bodies with 400.
    pub require_2022: bool,
    /// Company profiles for the customer list; every preloaded customer is listed too (with a
    /// made-up profile unless one is given here).
    pub customers: Vec<CustomerProfile>,
    /// Most customers one list page holds, whatever `size` asks; 0 means [`DEFAULT_PAGE_CAP`].
    pub customer_page_cap: usize,
    /// Answers for the next `GET /v1/customers` requests, consumed in order.
    pub list_script: Vec<FaultAction>,
    /// The cloud played: the token resource (and scope) the token endpoints accept.
    pub cloud: Cloud,
    /// The app registration is a public client: grants must come without `client_secret`.
    pub public_client: bool,
    /// Answers to device-code polls, in order; once used up, the sign-in completes.
    pub device_polls: Vec<DevicePoll>,
    /// The `interval` (seconds) the devicecode endpoint announces; polls before it are told to slow down.
    pub device_interval_secs: u64,
    /// The `expires_in` (seconds) of device codes.
    pub device_expires_secs: u64,
    /// The authorize endpoint sends the browser back with `access_denied` (the user declined).
    pub authorize_declines: bool,
    /// The documented shape of create answers and qualification lists.
    pub answer_shape: AnswerShape,
    /// MFA-required mode: API requests after the first N are answered 401 with error code
    /// 900421 (`Some(0)`: from the start); see also [`SimHandle::set_mfa_required`].
    pub mfa_after: Option<u64>,
    /// Token endpoint outage: token requests after the first N are answered 503; see also
    /// [`SimHandle::set_token_outage`].
    pub token_outage_after: Option<u64>,
    /// Token endpoint throttling: token requests after the first N are answered `429` with
    /// `Retry-After` [`SimConfig::retry_after_secs`], as Entra ID throttles an app that asks too
    /// often; [`SimConfig::token_throttle_count`] of them, or all.
    pub token_throttle_after: Option<u64>,
    /// How many token requests [`SimConfig::token_throttle_after`] throttles (`None`: every one).
    pub token_throttle_count: Option<u64>,
    /// `expires_in` sent with issued tokens instead of the lifetime (to test absurd figures).
    pub token_expires_in: Option<u64>,
    /// Added to every token endpoint answer (v1 and v2): a slow sign-in, which the pacer must not
    /// count as time the service was asked to accept rows.
    pub token_latency: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            latency: Duration::ZERO,
            token_ttl: Duration::from_secs(3600),
            fault_rate: 0.0,
            throttle_rate: 0.0,
            throttle_burst: None,
            throttle_changes: Vec::new(),
            retry_after_secs: 1,
            seed: 0,
            preload: Vec::new(),
            validations: vec![ValidationEntry::default()],
            vetting_delay: Duration::from_secs(60),
            deny_rate: 0.0,
            script: Vec::new(),
            record: true,
            require_2022: false,
            customers: Vec::new(),
            customer_page_cap: 0,
            list_script: Vec::new(),
            cloud: Cloud::Public,
            public_client: false,
            device_polls: Vec::new(),
            // Entra ID's values.
            device_interval_secs: 5,
            device_expires_secs: 900,
            authorize_declines: false,
            answer_shape: AnswerShape::Bare,
            mfa_after: None,
            token_outage_after: None,
            token_throttle_after: None,
            token_throttle_count: None,
            token_expires_in: None,
            token_latency: Duration::ZERO,
        }
    }
}

impl SimConfig {
    /// The defaults plus the built-in sandbox customers of `samples/sandbox-preload.csv`.
    pub fn sandbox() -> Self {
        let Preload { entries, profiles } = parse_preload(SANDBOX_PRELOAD).unwrap_or_else(|e| {
            // The file is compiled in and covered by a test, so this only fires on a bad edit.
            tracing::error!(error = %e, "built-in sandbox preload is malformed; starting empty");
            Preload::default()
        });
        SimConfig {
            preload: entries,
            customers: profiles,
            ..SimConfig::default()
        }
    }
}

/// One line of preload: a customer and one fact about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreloadEntry {
    /// The customer.
    pub customer_id: CustomerId,
    /// What the service knows about it.
    pub state: PreloadState,
}

/// A customer's preloaded state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreloadState {
    /// The customer holds this qualification (one of possibly several).
    Holds(QualificationRecord),
    /// The customer tenant does not exist (404).
    NotFound,
    /// The partner has no relationship with the customer (403).
    NoRelationship,
}

/// One partner validation, for GovernmentCommunityCloud creates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationEntry {
    /// The code clients send (text).
    pub validation_id: String,
    /// The validated organisation.
    pub organization_name: String,
    /// How many creates the validation allows in total; `None` shows as null.
    pub max_creates: Option<u32>,
    /// Creates left; `None` means unlimited and shows as null.
    pub remaining_creates: Option<u32>,
}

impl Default for ValidationEntry {
    fn default() -> Self {
        ValidationEntry {
            validation_id: "482913".into(),
            organization_name: "Contoso Public Sector".into(),
            max_creates: Some(100),
            remaining_creates: Some(100),
        }
    }
}

/// A scripted answer for the next API request naming a customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptedFault {
    /// The customer whose requests it applies to.
    pub customer_id: CustomerId,
    /// What to do instead of (or before) answering.
    pub action: FaultAction,
}

/// What a scripted fault does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultAction {
    /// Answer with this status and a realistic error body, with Retry-After if given.
    Status {
        /// The HTTP status (400-599).
        status: u16,
        /// The Retry-After header value, sent as is.
        retry_after: Option<String>,
    },
    /// Close the connection without answering.
    Drop,
    /// Wait this long, then process the request normally.
    Delay(Duration),
    /// Process the request at once, then hold the answer this long: the write lands even if the
    /// client gives up waiting (a timed-out attempt that reached the service).
    SlowAnswer(Duration),
    /// Process the request, then send the status line and part of the body and close the
    /// connection: an answer cut off after the write landed.
    Cut,
    /// Answer with this status (and Retry-After, if given) as `Status` does, without processing
    /// the request, and cut its body off part-way: the status arrived, the body did not.
    CutStatus {
        /// The HTTP status (400-599).
        status: u16,
        /// The Retry-After header value, sent as is.
        retry_after: Option<String>,
    },
    /// Process the request, send the status line and half the body, and the rest this much
    /// later: a `--timeout` that runs out while the body is read.
    SlowBody(Duration),
    /// Answer `200` with an HTML page without processing the request, as a proxy's sign-in page does.
    Html,
    /// Process the request, then answer with a body of this many bytes (an oversized answer).
    Big(usize),
    /// Answer with this status and JSON body without processing the request (e.g. a 2xx
    /// naming another qualification than the one posted).
    Json {
        /// The HTTP status.
        status: u16,
        /// The body, sent as is with `application/json`.
        body: String,
    },
}

/// One request the simulator received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// The HTTP method.
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// Headers in arrival order, names lower-case; a credential's value keeps only its scheme
    /// (`Bearer <redacted>`).
    pub headers: Vec<(String, String)>,
    /// [`token_fingerprint`] of the `Authorization` credential, when one was sent: tells the
    /// tokens of a run apart without recording them.
    #[serde(default)]
    pub token_fingerprint: Option<String>,
    /// The body as text; token-endpoint secrets are redacted.
    pub body: String,
    /// The status answered, 0 when the connection was dropped.
    pub status: u16,
    /// Milliseconds since the simulator started.
    pub at_ms: u64,
}

/// A running simulator; dropping it stops accepting connections, like [`SimHandle::shutdown`].
pub struct SimHandle {
    /// The address actually bound.
    pub addr: SocketAddr,
    /// `https` when started with [`start_tls`], else `http`.
    scheme: &'static str,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl SimHandle {
    /// The URL clients use for both the API and the token authority, e.g. `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!(
            "{}://{}",
            self.scheme,
            SocketAddr::new(ip, self.addr.port())
        )
    }

    /// Every request received so far (empty when recording is off).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests()
    }

    /// The recorded Partner Center requests: everything but the token endpoint and `/_sim`.
    pub fn api_requests(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.starts_with("/v1/"))
            .collect()
    }

    /// What a customer holds now, with due vetting decisions applied.
    pub fn holdings(&self, id: CustomerId) -> Vec<QualificationRecord> {
        self.shared.read(id).unwrap_or_default()
    }

    /// Successful token redemptions so far.
    pub fn redemptions(&self) -> u64 {
        self.shared.redemptions()
    }

    /// Whether `token` is a refresh token this simulator issued (not the well-known sandbox one).
    pub fn issued_refresh_token(&self, token: &str) -> bool {
        token != SANDBOX_REFRESH_TOKEN && self.shared.refresh_token_valid(token)
    }

    /// Switches the MFA-required mode on (every further API call gets 401 / 900421) or off.
    pub fn set_mfa_required(&self, on: bool) {
        self.shared.mfa_required.set(on);
    }

    /// Switches a token endpoint outage (503 to every token request) on or off.
    pub fn set_token_outage(&self, on: bool) {
        self.shared.token_outage.set(on);
    }

    /// Stops accepting, lets open connections finish their requests, and waits (briefly) for them.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "simulator accept loop ended abnormally");
        }
        // Every connection task holds a receiver, so `closed` means all of them have ended.
        if tokio::time::timeout(SHUTDOWN_GRACE, self.stop.closed())
            .await
            .is_err()
        {
            tracing::warn!("simulator connections still open after the shutdown grace period");
        }
    }
}

/// Binds `addr` (port 0 picks a free one), spawns the server on the current runtime and returns.
pub async fn start(config: SimConfig, addr: SocketAddr) -> Result<SimHandle, SimError> {
    start_with(config, addr, None).await
}

/// Like [`start`], but every connection speaks TLS with `tls` (the client's real rustls stack is
/// then exercised end to end; tests make the certificate with rcgen).
pub async fn start_tls(
    config: SimConfig,
    addr: SocketAddr,
    tls: Arc<rustls::ServerConfig>,
) -> Result<SimHandle, SimError> {
    crate::partner_center::client::install_tls_provider();
    start_with(config, addr, Some(tokio_rustls::TlsAcceptor::from(tls))).await
}

async fn start_with(
    config: SimConfig,
    addr: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> Result<SimHandle, SimError> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let shared = Arc::new(Shared::new(config)?);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| SimError::Bind { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| SimError::Bind { addr, source })?;
    let router = routes::router(shared.clone());
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, shared.clone(), router, stop_rx, tls));
    tracing::debug!(%addr, "simulator listening");
    Ok(SimHandle {
        addr,
        scheme,
        shared,
        stop,
        task,
    })
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    router: Router,
    mut stop: watch::Receiver<bool>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // Small request/response pairs: Nagle would only add latency.
                    let _ = stream.set_nodelay(true);
                    let (shared, router, stop) = (shared.clone(), router.clone(), stop.clone());
                    match tls.clone() {
                        None => {
                            tokio::spawn(serve_connection(stream, shared, router, stop));
                        }
                        // The handshake runs in the connection's own task: a slow client must
                        // not hold up the accept loop.
                        Some(acceptor) => {
                            tokio::spawn(async move {
                                match acceptor.accept(stream).await {
                                    Ok(stream) => serve_connection(stream, shared, router, stop).await,
                                    Err(e) => tracing::debug!(error = %e, "simulator TLS handshake failed"),
                                }
                            });
                        }
                    }
                }
                Err(e) => {
                    // Usually out of file descriptors; pausing lets connections close.
                    tracing::warn!(error = %e, "simulator accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            _ = stop.changed() => break,
        }
    }
}

async fn serve_connection<S>(
    stream: S,
    shared: Arc<Shared>,
    router: Router,
    mut stop: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| {
        handle(
            shared.clone(),
            TowerToHyperService::new(router.clone()),
            request,
        )
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "simulator connection ended");
            }
        }
        _ = stop.changed() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// Puts a request into the log when dropped, however the handling ended.
struct RecordOnDrop<'a> {
    shared: &'a Shared,
    recorded: Option<RecordedRequest>,
}

impl Drop for RecordOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(recorded) = self.recorded.take() {
            self.shared.record(recorded);
        }
    }
}

/// Runs one request through the router, recording it, and turns a drop marker into a service error.
async fn handle(
    shared: Arc<Shared>,
    service: TowerToHyperService<Router>,
    request: Request<Incoming>,
) -> Result<Response, DroppedConnection> {
    if !shared.settings.record {
        let response = call(&service, request.map(Body::new)).await;
        return if response.extensions().get::<DropConnection>().is_some() {
            Err(DroppedConnection)
        } else {
            Ok(response)
        };
    }

    let at_ms = u64::try_from(shared.started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (parts, body) = request.into_parts();
    // A body that cannot be read means the client went away or sent too much: nothing to answer.
    let bytes = axum::body::to_bytes(Body::new(body), MAX_BODY)
        .await
        .map_err(|_| DroppedConnection)?;
    let path = parts.uri.path().to_string();
    let text = String::from_utf8_lossy(&bytes);
    let body_text = if path.contains("/oauth2/") {
        parse::redact_form(&text)
    } else {
        text.into_owned()
    };
    let recorded = RecordedRequest {
        method: parts.method.to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes());
                (
                    name.as_str().to_string(),
                    redact::header_value(name.as_str(), &value),
                )
            })
            .collect(),
        token_fingerprint: parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .map(|v| redact::authorization_fingerprint(&String::from_utf8_lossy(v.as_bytes()))),
        path,
        body: body_text,
        status: 0,
        at_ms,
    };
    // Recorded even when the client gives up and hyper drops this future mid-answer (status 0):
    // a timed-out request that reached the service must show in the log.
    let mut guard = RecordOnDrop {
        shared: &shared,
        recorded: Some(recorded),
    };
    let response = call(&service, Request::from_parts(parts, Body::from(bytes))).await;
    let dropped = response.extensions().get::<DropConnection>().is_some();
    if let (false, Some(recorded)) = (dropped, guard.recorded.as_mut()) {
        recorded.status = response.status().as_u16();
    }
    drop(guard);
    if dropped {
        Err(DroppedConnection)
    } else {
        Ok(response)
    }
}

async fn call(service: &TowerToHyperService<Router>, request: Request<Body>) -> Response {
    match service.call(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}
