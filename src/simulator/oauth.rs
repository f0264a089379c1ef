//! The Microsoft identity platform's v2.0 endpoints as `pc-qualify login` meets them:
//! `/{tenant}/oauth2/v2.0/authorize` (authorization code with PKCE), `/devicecode` (RFC 8628) and
//! `/token` (authorization_code, device_code and refresh_token grants), plus the client checks the
//! v1 `/oauth2/token` endpoint shares: confidential clients must send their secret, public clients
//! must not send one, and the token resource must be the one of the cloud being played.

// The `Err` of these checks is the refusal itself, an HTTP answer sent once per refused request:
// boxing it would only add noise to a cold path.
#![allow(clippy::result_large_err)]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use serde_json::json;
use sha2::Digest as _;

use super::parse::form_decode;
use super::routes::aad_error;
use super::state::{lock, Shared};
use super::{SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SANDBOX_TENANT};
use crate::partner_center::cloud::Cloud;

pub use crate::partner_center::login::DEVICE_CODE_GRANT;
/// Authorization codes are short-lived in Entra ID (about ten minutes).
const CODE_LIFETIME: Duration = Duration::from_secs(600);
/// RFC 8628: after `slow_down` the client adds five seconds to its interval.
const SLOW_DOWN_STEP: u64 = 5;
/// Polls this much earlier than the interval still count as on time (timer jitter).
const POLL_TOLERANCE: Duration = Duration::from_millis(100);

/// A scripted answer to one device-code poll; once the script is used up, sign-in succeeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevicePoll {
    /// `authorization_pending`: the user has not finished yet.
    Pending,
    /// `slow_down` (RFC 8628; Entra ID does not document it): poll five seconds less often.
    SlowDown,
    /// `authorization_declined`: Entra ID's answer when the user refuses.
    Declined,
    /// `access_denied`: RFC 8628's name for the same refusal.
    AccessDenied,
    /// `expired_token`: the code ran out before the user signed in.
    Expired,
}

/// A `--device-polls` item that names no answer; holds the item as normalised (trimmed,
/// lower-cased, `-` read as `_`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown device poll answer {0:?}; expected pending, slow_down, declined, access_denied or expired")]
pub struct UnknownDevicePoll(pub String);

impl std::str::FromStr for DevicePoll {
    type Err = UnknownDevicePoll;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "pending" | "authorization_pending" => Ok(DevicePoll::Pending),
            "slow_down" => Ok(DevicePoll::SlowDown),
            "declined" | "authorization_declined" => Ok(DevicePoll::Declined),
            "access_denied" => Ok(DevicePoll::AccessDenied),
            "expired" | "expired_token" => Ok(DevicePoll::Expired),
            other => Err(UnknownDevicePoll(other.to_string())),
        }
    }
}

/// The identity-platform part of the simulator's configuration and memory.
pub(crate) struct OAuth {
    pub cloud: Cloud,
    pub public_client: bool,
    pub device_interval: u64,
    pub device_expires: u64,
    pub authorize_declines: bool,
    polls: Vec<DevicePoll>,
    devices: Mutex<HashMap<String, DeviceGrant>>,
    codes: Mutex<HashMap<String, CodeGrant>>,
}

struct DeviceGrant {
    client_id: String,
    scope: String,
    expires_at: Instant,
    /// Seconds; grows by five with every slow_down.
    interval: u64,
    last_poll: Option<Instant>,
    script: VecDeque<DevicePoll>,
}

struct CodeGrant {
    client_id: String,
    redirect_uri: String,
    scope: String,
    /// The S256 `code_challenge` (authorize refuses a request without one).
    challenge: String,
    expires_at: Instant,
}

impl OAuth {
    pub fn new(
        cloud: Cloud,
        public_client: bool,
        device_interval: u64,
        device_expires: u64,
        authorize_declines: bool,
        polls: Vec<DevicePoll>,
    ) -> Self {
        OAuth {
            cloud,
            public_client,
            device_interval,
            device_expires,
            authorize_declines,
            polls,
            devices: Mutex::new(HashMap::new()),
            codes: Mutex::new(HashMap::new()),
        }
    }

    /// The resource tokens are issued for in the cloud being played.
    pub fn resource(&self) -> &'static str {
        self.cloud.resource()
    }
}

/// A random opaque value for codes (not a secret worth a CSPRNG: the simulator is local).
fn opaque(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// The client checks every grant shares: the app must be known, a confidential client must send
/// its secret and a public client must send none (Entra ID refuses both mistakes).
pub(crate) fn check_client(
    shared: &Shared,
    tenant: &str,
    client_id: Option<&str>,
    client_secret: Option<&str>,
) -> Result<(), Response> {
    let Some(client_id) = client_id else {
        return Err(missing("client_id"));
    };
    if client_id != SANDBOX_CLIENT_ID {
        return Err(aad_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!("Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant."),
        ));
    }
    match (shared.oauth.public_client, client_secret) {
        (true, None) => Ok(()),
        (true, Some(_)) => Err(aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            700025,
            "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.",
        )),
        (false, None) => Err(aad_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )),
        (false, Some(SANDBOX_CLIENT_SECRET)) => Ok(()),
        (false, Some(_)) => Err(aad_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '00000000-5a9d-4b0c-8e11-5a9db0c8e111'.",
        )),
    }
}

/// The v1 `resource` or a v2 scope's resource must be this cloud's Partner Center.
pub(crate) fn wrong_resource(tenant: &str, resource: &str) -> Response {
    aad_error(
        StatusCode::BAD_REQUEST,
        "invalid_resource",
        500011,
        &format!("The resource principal named {resource} was not found in the tenant named {tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."),
    )
}

pub(crate) fn missing(name: &str) -> Response {
    aad_error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        900144,
        &format!("The request body must contain the following parameter: '{name}'."),
    )
}

/// The token service's answer while the outage switch is on (v1 and v2 alike).
pub(crate) fn token_service_down() -> Response {
    aad_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        50196,
        "The server is temporarily unavailable. Please try again later.",
    )
}

pub(crate) fn unknown_tenant(tenant: &str) -> Response {
    aad_error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        90002,
        &format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
    )
}

/// Checks a v2 `scope`: space-separated, naming Partner Center of this cloud
/// (`{resource}/user_impersonation` or `{resource}/.default`) and optionally the OpenID scopes.
/// Returns whether `offline_access` (a refresh token) was asked for.
fn check_scope(shared: &Shared, tenant: &str, scope: &str) -> Result<bool, Response> {
    let resource = shared.oauth.resource();
    let mut api = false;
    let mut offline = false;
    for item in scope.split(' ').filter(|s| !s.is_empty()) {
        match item {
            "offline_access" => offline = true,
            "openid" | "profile" | "email" => {}
            _ => {
                let Some((res, permission)) = item.rsplit_once('/') else {
                    return Err(aad_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_scope",
                        70011,
                        &format!("The provided value for the input parameter 'scope' is not valid. The scope {item} is not valid."),
                    ));
                };
                if res.trim_end_matches('/') != resource {
                    return Err(wrong_resource(tenant, res));
                }
                if permission != "user_impersonation" && permission != ".default" {
                    return Err(aad_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_scope",
                        65005,
                        &format!("The application asked for scope '{permission}' that doesn't exist on the resource '{resource}'."),
                    ));
                }
                api = true;
            }
        }
    }
    if !api {
        return Err(aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            70011,
            &format!("The provided value for the input parameter 'scope' is not valid: it names no permission of {resource}."),
        ));
    }
    Ok(offline)
}

pub(crate) fn form_fields(headers: &HeaderMap, body: &Bytes) -> Vec<(String, String)> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if is_form {
        form_decode(&String::from_utf8_lossy(body))
    } else {
        Vec::new()
    }
}

pub(crate) fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `POST /{tenant}/oauth2/v2.0/devicecode`.
pub(crate) async fn devicecode(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    token_latency(&shared).await;
    // The outage switch covers the whole token service, v1 and v2 alike.
    if shared.switches.token_down() {
        return token_service_down();
    }
    if tenant != SANDBOX_TENANT {
        return unknown_tenant(&tenant);
    }
    let fields = form_fields(&headers, &body);
    // The device authorization request carries no secret; the client is checked when it polls.
    let Some(client_id) = field(&fields, "client_id") else {
        return missing("client_id");
    };
    if client_id != SANDBOX_CLIENT_ID {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!("Application with identifier '{client_id}' was not found in the directory '{tenant}'."),
        );
    }
    let Some(scope) = field(&fields, "scope") else {
        return missing("scope");
    };
    if let Err(refused) = check_scope(&shared, &tenant, scope) {
        return refused;
    }
    let oauth = &shared.oauth;
    let device_code = opaque("sim-dc-");
    // Entra ID's user codes are nine upper-case letters and digits.
    let user_code: String = uuid::Uuid::new_v4()
        .simple()
        .to_string()
        .to_ascii_uppercase()
        .chars()
        .take(9)
        .collect();
    let verification_uri = match oauth.cloud {
        Cloud::Public => "https://microsoft.com/devicelogin",
        Cloud::China => "https://microsoft.com/deviceloginchina",
    };
    lock(&oauth.devices).insert(
        device_code.clone(),
        DeviceGrant {
            client_id: client_id.to_string(),
            scope: scope.to_string(),
            // A lifetime too large for the clock means "never" (a configured value, not a panic).
            expires_at: Instant::now()
                .checked_add(Duration::from_secs(oauth.device_expires))
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(365 * 86_400)),
            interval: oauth.device_interval,
            last_poll: None,
            script: oauth.polls.iter().copied().collect(),
        },
    );
    let body = json!({
        "user_code": user_code,
        "device_code": device_code,
        "verification_uri": verification_uri,
        "expires_in": oauth.device_expires,
        "interval": oauth.device_interval,
        "message": format!("To sign in, use a web browser to open the page {verification_uri} and enter the code {user_code} to authenticate."),
    });
    (StatusCode::OK, Json(body)).into_response()
}

/// An HTML error page, as the authorize endpoint shows when it cannot redirect safely.
fn error_page(code: u32, text: &str) -> Response {
    let body = format!(
        "<html><body><h1>Sign in</h1><p>AADSTS{code}: {}</p></body></html>",
        text.replace('<', "&lt;")
    );
    let mut response = (StatusCode::BAD_REQUEST, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// Redirects the browser back to the app, as the authorize endpoint does (`response_mode=query`).
fn redirect_back(redirect_uri: &str, params: &[(&str, &str)]) -> Response {
    let Ok(mut url) = reqwest::Url::parse(redirect_uri) else {
        return error_page(50011, "The redirect URI is not a URL.");
    };
    {
        let mut query = url.query_pairs_mut();
        for (k, v) in params {
            query.append_pair(k, v);
        }
    }
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(value) = HeaderValue::from_str(url.as_str()) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// `GET /{tenant}/oauth2/v2.0/authorize`: the sandbox's user is signed in already and consents at
/// once, so the browser is sent straight back with a code (or, in the declining mode, an error).
pub(crate) async fn authorize(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    if tenant != SANDBOX_TENANT {
        return error_page(90002, &format!("Tenant '{tenant}' not found."));
    }
    let params = form_decode(query.as_deref().unwrap_or(""));
    let param = |name: &str| field(&params, name);
    match param("client_id") {
        Some(SANDBOX_CLIENT_ID) => {}
        Some(other) => {
            return error_page(
                700016,
                &format!(
                "Application with identifier '{other}' was not found in the directory '{tenant}'."
            ),
            )
        }
        None => {
            return error_page(
                900144,
                "The request must contain the parameter 'client_id'.",
            )
        }
    }
    // Only loopback addresses are registered for the sandbox app; Entra ID ignores the port of a
    // loopback redirect URI, so any port matches.
    let Some(redirect_uri) = param("redirect_uri") else {
        return error_page(
            900144,
            "The request must contain the parameter 'redirect_uri'.",
        );
    };
    let loopback = reqwest::Url::parse(redirect_uri).is_ok_and(|url| {
        url.scheme() == "http"
            && matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"))
    });
    if !loopback {
        return error_page(
            50011,
            &format!("The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs configured for the application."),
        );
    }
    let state = param("state").unwrap_or("");
    let fail = |error: &str, description: &str| {
        let mut pairs = vec![("error", error), ("error_description", description)];
        if !state.is_empty() {
            pairs.push(("state", state));
        }
        redirect_back(redirect_uri, &pairs)
    };
    if param("response_type") != Some("code") {
        return fail(
            "unsupported_response_type",
            "AADSTS700054: response_type 'code' is expected.",
        );
    }
    let scope = param("scope").unwrap_or("");
    if check_scope(&shared, &tenant, scope).is_err() {
        return fail(
            "invalid_scope",
            "AADSTS70011: The provided value for the input parameter 'scope' is not valid, or names another cloud's resource.",
        );
    }
    // This app's sign-in is PKCE with S256 (a public client on a loopback redirect): a request
    // without a challenge, or with the `plain` method (the default when none is named, RFC 7636
    // section 4.3), is refused on the redirect as Entra ID refuses a protocol error.
    let challenge = match (param("code_challenge"), param("code_challenge_method")) {
        (None | Some(""), _) => {
            return fail(
                "invalid_request",
                "AADSTS9002325: Proof Key for Code Exchange is required: the request must contain the parameter 'code_challenge'.",
            )
        }
        (Some(c), Some("S256")) => c.to_string(),
        (Some(_), None | Some("plain")) => {
            return fail(
                "invalid_request",
                "AADSTS501491: Invalid code_challenge_method 'plain': this application requires 'S256'.",
            )
        }
        (Some(_), Some(other)) => {
            return fail(
                "invalid_request",
                &format!("AADSTS501491: Invalid code_challenge_method '{other}'."),
            )
        }
    };
    if shared.oauth.authorize_declines {
        return fail(
            "access_denied",
            "AADSTS65004: User declined to consent to access the app.",
        );
    }
    let code = opaque("sim-ac-");
    lock(&shared.oauth.codes).insert(
        code.clone(),
        CodeGrant {
            client_id: SANDBOX_CLIENT_ID.to_string(),
            redirect_uri: redirect_uri.to_string(),
            scope: scope.to_string(),
            challenge,
            expires_at: Instant::now() + CODE_LIFETIME,
        },
    );
    let mut pairs = vec![("code", code.as_str())];
    if !state.is_empty() {
        pairs.push(("state", state));
    }
    redirect_back(redirect_uri, &pairs)
}

/// Holds a token answer for the configured sign-in latency (v1 and v2 alike).
pub(crate) async fn token_latency(shared: &Shared) {
    let latency = shared.settings.token_latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
}

/// `POST /{tenant}/oauth2/v2.0/token`.
pub(crate) async fn token_v2(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    token_latency(&shared).await;
    // The outage switch covers the whole token service, v1 and v2 alike.
    if shared.switches.token_down() {
        return token_service_down();
    }
    if tenant != SANDBOX_TENANT {
        return unknown_tenant(&tenant);
    }
    let fields = form_fields(&headers, &body);
    let get = |name: &str| field(&fields, name);
    let Some(grant_type) = get("grant_type") else {
        return missing("grant_type");
    };
    if let Err(refused) = check_client(&shared, &tenant, get("client_id"), get("client_secret")) {
        return refused;
    }
    let client_id = get("client_id").unwrap_or_default();
    let scope = match grant_type {
        "refresh_token" => {
            let Some(refresh_token) = get("refresh_token") else {
                return missing("refresh_token");
            };
            let Some(scope) = get("scope") else {
                return missing("scope");
            };
            if !shared.refresh_token_valid(refresh_token) {
                return aad_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    70000,
                    "Provided grant is invalid or malformed. The refresh token was not issued to this application or has been revoked.",
                );
            }
            scope.to_string()
        }
        "authorization_code" => match redeem_code(&shared, client_id, &fields) {
            Ok(scope) => scope,
            Err(refused) => return refused,
        },
        DEVICE_CODE_GRANT => match poll_device(&shared, client_id, &fields) {
            Ok(scope) => scope,
            Err(refused) => return refused,
        },
        other => {
            return aad_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                70003,
                &format!("The app requested an unsupported grant type '{other}'."),
            )
        }
    };
    let offline = match check_scope(&shared, &tenant, &scope) {
        Ok(offline) => offline,
        Err(refused) => return refused,
    };
    let (access_token, refresh_token) = shared.issue_tokens();
    let ttl = shared.settings.token_ttl.as_secs();
    let mut body = json!({
        "token_type": "Bearer",
        "scope": format!("{}/user_impersonation", shared.oauth.resource()),
        // A test's figure (absurd ones included) in place of the lifetime, as on v1.
        "expires_in": shared.token_expires_in.unwrap_or(ttl),
        "ext_expires_in": ttl,
        "access_token": access_token,
    });
    // As in Entra ID: a refresh token only for `offline_access`.
    if offline {
        body["refresh_token"] = json!(refresh_token);
    }
    (StatusCode::OK, Json(body)).into_response()
}

fn redeem_code(
    shared: &Shared,
    client_id: &str,
    fields: &[(String, String)],
) -> Result<String, Response> {
    let Some(code) = field(fields, "code") else {
        return Err(missing("code"));
    };
    // Codes are single-use: taken out whether or not the rest checks out.
    let grant = lock(&shared.oauth.codes).remove(code);
    let invalid = |code: u32, text: &str| {
        Err(aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            code,
            text,
        ))
    };
    let Some(grant) = grant else {
        return invalid(
            54005,
            "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
        );
    };
    if Instant::now() > grant.expires_at {
        return invalid(70008, "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.");
    }
    if grant.client_id != client_id {
        return invalid(
            70000,
            "Provided grant is invalid or malformed: the code was issued to another application.",
        );
    }
    if field(fields, "redirect_uri") != Some(grant.redirect_uri.as_str()) {
        return invalid(500112, "The reply address does not match the reply address provided when requesting the authorization code.");
    }
    let Some(verifier) = field(fields, "code_verifier") else {
        return Err(missing("code_verifier"));
    };
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    if computed != grant.challenge {
        return invalid(
            501481,
            "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
        );
    }
    Ok(grant.scope)
}

fn poll_device(
    shared: &Shared,
    client_id: &str,
    fields: &[(String, String)],
) -> Result<String, Response> {
    let Some(device_code) = field(fields, "device_code") else {
        return Err(missing("device_code"));
    };
    let error = |error: &str, code: u32, text: &str| {
        Err(aad_error(StatusCode::BAD_REQUEST, error, code, text))
    };
    let mut devices = lock(&shared.oauth.devices);
    let Some(grant) = devices.get_mut(device_code) else {
        return error(
            "bad_verification_code",
            70019,
            "The device_code sent to the token endpoint was not recognized.",
        );
    };
    if grant.client_id != client_id {
        return error(
            "invalid_grant",
            70000,
            "The device code was issued to another application.",
        );
    }
    let now = Instant::now();
    if now > grant.expires_at {
        devices.remove(device_code);
        return error("expired_token", 70020, "The provided value for the input parameter 'device_code' is not valid. Verification code expired.");
    }
    // A client that polls before the interval is up is told to slow down, as RFC 8628 says.
    let early = grant.last_poll.is_some_and(|last| {
        now.saturating_duration_since(last) + POLL_TOLERANCE < Duration::from_secs(grant.interval)
    });
    grant.last_poll = Some(now);
    if early {
        grant.interval = grant.interval.saturating_add(SLOW_DOWN_STEP);
        return error(
            "slow_down",
            70016,
            "The client is polling too fast; add 5 seconds to the interval.",
        );
    }
    match grant.script.pop_front() {
        Some(DevicePoll::Pending) => error(
            "authorization_pending",
            70016,
            "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
        ),
        Some(DevicePoll::SlowDown) => {
            grant.interval = grant.interval.saturating_add(SLOW_DOWN_STEP);
            error(
                "slow_down",
                70016,
                "The client is polling too fast; add 5 seconds to the interval.",
            )
        }
        Some(DevicePoll::Declined) => {
            devices.remove(device_code);
            error(
                "authorization_declined",
                70000,
                "The end user denied the authorization request.",
            )
        }
        Some(DevicePoll::AccessDenied) => {
            devices.remove(device_code);
            error(
                "access_denied",
                70000,
                "The end user denied the authorization request.",
            )
        }
        Some(DevicePoll::Expired) => {
            devices.remove(device_code);
            error("expired_token", 70020, "The provided value for the input parameter 'device_code' is not valid. Verification code expired.")
        }
        None => {
            let scope = grant.scope.clone();
            devices.remove(device_code);
            Ok(scope)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_poll_names_parse() {
        assert_eq!("pending".parse(), Ok(DevicePoll::Pending));
        assert_eq!("slow-down".parse(), Ok(DevicePoll::SlowDown));
        assert_eq!("authorization_declined".parse(), Ok(DevicePoll::Declined));
        assert_eq!("access_denied".parse(), Ok(DevicePoll::AccessDenied));
        assert_eq!("expired_token".parse(), Ok(DevicePoll::Expired));
        let err = " Approve "
            .parse::<DevicePoll>()
            .expect_err("not an answer");
        assert_eq!(err, UnknownDevicePoll("approve".into()));
        assert_eq!(
            err.to_string(),
            r#"unknown device poll answer "approve"; expected pending, slow_down, declined, access_denied or expired"#
        );
    }
}
