//! The authorization code flow with PKCE (RFC 7636) as Entra ID plays it for a loopback redirect:
//! `GET /authorize` sends the browser straight back with a code (the sandbox's user is signed in
//! and consents at once), and the token endpoint redeems the code once, against its verifier.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use sha2::Digest as _;

use super::{bad_request, opaque, Form};
use crate::simulator::state::{lock, Shared};
use crate::simulator::{SANDBOX_CLIENT_ID, SANDBOX_TENANT};

/// Authorization codes are short-lived in Entra ID (about ten minutes).
const CODE_LIFETIME: Duration = Duration::from_secs(600);

pub(crate) struct CodeGrant {
    client_id: String,
    redirect_uri: String,
    scope: String,
    /// The S256 `code_challenge` (authorize refuses a request without one).
    challenge: String,
    expires_at: Instant,
}

/// An HTML error page, as the authorize endpoint shows when it cannot redirect safely.
fn error_page(code: u32, text: &str) -> Response {
    let text = text.replace('<', "&lt;");
    let body = format!("<html><body><h1>Sign in</h1><p>AADSTS{code}: {text}</p></body></html>");
    let html = [(header::CONTENT_TYPE, "text/html; charset=utf-8")];
    (StatusCode::BAD_REQUEST, html, body).into_response()
}

/// Redirects the browser back to the app, as the authorize endpoint does (`response_mode=query`),
/// with the request's `state` when it sent one.
fn redirect_back(redirect_uri: &str, params: &[(&str, &str)], state: &str) -> Response {
    let Ok(mut url) = reqwest::Url::parse(redirect_uri) else {
        return error_page(50011, "The redirect URI is not a URL.");
    };
    let state = Some(("state", state)).filter(|_| !state.is_empty());
    url.query_pairs_mut()
        .extend_pairs(params)
        .extend_pairs(state);
    (StatusCode::FOUND, [(header::LOCATION, String::from(url))]).into_response()
}

/// `GET /{tenant}/oauth2/v2.0/authorize`: the sandbox's user is signed in already and consents at
/// once, so the browser is sent straight back with a code (or, in the declining mode, an error).
pub(crate) async fn authorize(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, Response> {
    if tenant != SANDBOX_TENANT {
        return Err(error_page(90002, &format!("Tenant '{tenant}' not found.")));
    }
    let params = Form::new(&shared, &tenant, query.as_deref().unwrap_or(""));
    let param = |name: &str| params.field(name);
    let required = |name: &str| {
        let text = format!("The request must contain the parameter '{name}'.");
        param(name).ok_or_else(|| error_page(900144, &text))
    };
    let client_id = required("client_id")?;
    if client_id != SANDBOX_CLIENT_ID {
        let text = format!(
            "Application with identifier '{client_id}' was not found in the directory '{tenant}'."
        );
        return Err(error_page(700016, &text));
    }
    // Only loopback addresses are registered for the sandbox app; Entra ID ignores the port of a
    // loopback redirect URI, so any port matches.
    let redirect_uri = required("redirect_uri")?;
    let loopback = reqwest::Url::parse(redirect_uri).is_ok_and(|url| {
        url.scheme() == "http"
            && matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"))
    });
    if !loopback {
        return Err(error_page(
            50011,
            &format!("The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs configured for the application."),
        ));
    }
    let state = param("state").unwrap_or("");
    let fail = |error: &str, description: &str| {
        Err(redirect_back(
            redirect_uri,
            &[("error", error), ("error_description", description)],
            state,
        ))
    };
    if param("response_type") != Some("code") {
        return fail(
            "unsupported_response_type",
            "AADSTS700054: response_type 'code' is expected.",
        );
    }
    let scope = param("scope").unwrap_or("");
    if params.check_scope(scope).is_err() {
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
    if shared.settings.authorize_declines {
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
    Ok(redirect_back(redirect_uri, &[("code", &code)], state))
}

pub(super) fn redeem_code(form: &Form, client_id: &str) -> Result<String, Response> {
    let code = form.required("code")?;
    // Codes are single-use: taken out whether or not the rest checks out.
    let grant = lock(&form.shared.oauth.codes).remove(code);
    let invalid = |code: u32, text: &str| Err(bad_request("invalid_grant", code, text));
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
    if form.field("redirect_uri") != Some(grant.redirect_uri.as_str()) {
        return invalid(500112, "The reply address does not match the reply address provided when requesting the authorization code.");
    }
    let verifier = form.required("code_verifier")?;
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
