//! The simulator's Microsoft identity platform: its memory, and the checks and
//! error answers its endpoints share. The endpoints: `token` (v1 `/oauth2/token` and v2
//! `/oauth2/v2.0/token`), `authorize` (authorization code with PKCE) and `device` (RFC 8628).
//! Both token endpoints check the client alike: confidential clients must send their secret,
//! public clients must not send one, and the token resource must be the one of the cloud played.

// The `Err` of these checks is the refusal itself, an HTTP answer sent once per refused request:
// boxing it would only add noise to a cold path.
#![allow(clippy::result_large_err)]

pub(crate) mod authorize;
pub(crate) mod device;
pub(crate) mod token;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::parse::form_decode;
use super::routes::content_type_is;
use super::state::Shared;
use super::{SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SANDBOX_TENANT};
use authorize::CodeGrant;
use device::DeviceGrant;

pub use crate::partner_center::login::DEVICE_CODE_GRANT;
pub use device::{DevicePoll, UnknownDevicePoll};

/// The identity platform's memory: the device and authorization codes handed out (its
/// configuration is the simulator's, in `Shared::settings`).
#[derive(Default)]
pub(crate) struct OAuth {
    devices: Mutex<HashMap<String, DeviceGrant>>,
    codes: Mutex<HashMap<String, CodeGrant>>,
}

/// A random opaque value for codes (not a secret worth a CSPRNG: the simulator is local).
pub(crate) fn opaque(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

pub(crate) fn aad_error(status: StatusCode, error: &str, code: u32, description: &str) -> Response {
    let trace_id = uuid::Uuid::new_v4().to_string();
    let correlation_id = uuid::Uuid::new_v4().to_string();
    let timestamp = super::parse::rfc3339(std::time::SystemTime::now());
    let body = json!({
        "error": error,
        "error_description": format!(
            "AADSTS{code}: {description}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {timestamp}"
        ),
        "error_codes": [code],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
    });
    (status, Json(body)).into_response()
}

/// An error of the token service answered `400`, the status of most of its refusals.
pub(crate) fn bad_request(error: &str, code: u32, description: &str) -> Response {
    aad_error(StatusCode::BAD_REQUEST, error, code, description)
}

/// A token-service request: the shared state, the tenant of its path and its form's fields (the
/// authorize endpoint's query parameters read the same way).
pub(crate) struct Form<'a> {
    shared: &'a Shared,
    tenant: &'a str,
    fields: Vec<(String, String)>,
}

impl<'a> Form<'a> {
    /// The form of `text` (a form body, or a query string).
    fn new(shared: &'a Shared, tenant: &'a str, text: &str) -> Self {
        let fields = form_decode(text);
        Form {
            shared,
            tenant,
            fields,
        }
    }

    pub(crate) fn field(&self, name: &str) -> Option<&str> {
        let mut fields = self.fields.iter();
        fields.find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// A form field the request must carry, or the refusal naming it.
    pub(crate) fn required(&self, name: &str) -> Result<&str, Response> {
        self.field(name).ok_or_else(|| {
            let text = format!("The request body must contain the following parameter: '{name}'.");
            bad_request("invalid_request", 900144, &text)
        })
    }

    /// The `client_id`, which must name the app registered in the tenant.
    pub(crate) fn client_id(&self) -> Result<&str, Response> {
        let (client_id, tenant) = (self.required("client_id")?, self.tenant);
        if client_id == SANDBOX_CLIENT_ID {
            return Ok(client_id);
        }
        Err(bad_request(
            "unauthorized_client",
            700016,
            &format!("Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant."),
        ))
    }

    /// The client checks every grant shares: the app must be known, a confidential client must
    /// send its secret and a public client must send none (Entra ID refuses both mistakes).
    /// Returns the client id.
    pub(crate) fn check_client(&self) -> Result<&str, Response> {
        let client_id = self.client_id()?;
        match (self.shared.settings.public_client, self.field("client_secret")) {
            (true, None) | (false, Some(SANDBOX_CLIENT_SECRET)) => Ok(client_id),
            (true, Some(_)) => Err(bad_request(
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
            (false, Some(_)) => Err(aad_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '00000000-5a9d-4b0c-8e11-5a9db0c8e111'.",
            )),
        }
    }

    /// The v1 `resource` or a v2 scope's resource must be this cloud's Partner Center.
    pub(crate) fn wrong_resource(&self, resource: &str) -> Response {
        let tenant = self.tenant;
        bad_request(
            "invalid_resource",
            500011,
            &format!("The resource principal named {resource} was not found in the tenant named {tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."),
        )
    }

    /// Checks a v2 `scope`: space-separated, naming Partner Center of this cloud
    /// (`{resource}/user_impersonation` or `{resource}/.default`) and optionally the OpenID
    /// scopes. Returns whether `offline_access` (a refresh token) was asked for.
    pub(crate) fn check_scope(&self, scope: &str) -> Result<bool, Response> {
        let resource = self.shared.settings.cloud.resource();
        let mut api = false;
        let mut offline = false;
        for item in scope.split(' ').filter(|s| !s.is_empty()) {
            match item {
                "offline_access" => offline = true,
                "openid" | "profile" | "email" => {}
                _ => {
                    let Some((res, permission)) = item.rsplit_once('/') else {
                        return Err(bad_request(
                            "invalid_scope",
                            70011,
                            &format!("The provided value for the input parameter 'scope' is not valid. The scope {item} is not valid."),
                        ));
                    };
                    if res.trim_end_matches('/') != resource {
                        return Err(self.wrong_resource(res));
                    }
                    if permission != "user_impersonation" && permission != ".default" {
                        return Err(bad_request(
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
            return Err(bad_request(
                "invalid_scope",
                70011,
                &format!("The provided value for the input parameter 'scope' is not valid: it names no permission of {resource}."),
            ));
        }
        Ok(offline)
    }
}

/// A token-service endpoint handler.
pub(crate) type Endpoint = fn(&Form) -> Result<Response, Response>;

/// Every token-service endpoint, v1 and v2 alike: what each request meets first (the configured
/// latency, the outage switch of the whole service, the tenant), then `endpoint` with its form.
pub(crate) fn form_route(endpoint: Endpoint) -> axum::routing::MethodRouter<Arc<Shared>> {
    axum::routing::post(move |s, p, h, b| token_endpoint(endpoint, s, p, h, b))
}

async fn token_endpoint(
    endpoint: Endpoint,
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let latency = shared.settings.token_latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if shared.token_outage.refuses() {
        return aad_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            50196,
            "The server is temporarily unavailable. Please try again later.",
        );
    }
    if shared.token_throttle.refuses() {
        // Entra ID's answer to an app that asks too often, or when it is overloaded (MSAL's
        // throttling notes): 429 with Retry-After, and an OAuth error body like the outage's.
        let mut answer = aad_error(
            StatusCode::TOO_MANY_REQUESTS,
            "temporarily_unavailable",
            50196,
            "Too many requests. Retry after the time in the Retry-After header.",
        );
        answer.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from(shared.settings.retry_after_secs),
        );
        return answer;
    }
    if tenant != SANDBOX_TENANT {
        return bad_request(
            "invalid_request",
            90002,
            &format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
        );
    }
    let form = content_type_is(&headers, "application/x-www-form-urlencoded");
    let text = String::from_utf8_lossy(&body);
    let form = Form::new(&shared, &tenant, if form { &text } else { "" });
    endpoint(&form).unwrap_or_else(|refused| refused)
}
