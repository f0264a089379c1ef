//! The token endpoints: v1 `POST /{tenant}/oauth2/token` (the refresh-token grant a run uses)
//! and v2 `POST /{tenant}/oauth2/v2.0/token` (the grants of `pc-qualify login`, and refresh).

use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::authorize::redeem_code;
use super::device::poll_device;
use super::DEVICE_CODE_GRANT;
use super::{bad_request, Form};
use crate::simulator::state::Shared;

/// `POST /{tenant}/oauth2/token` (v1): only the refresh-token grant, for the `resource`.
pub(crate) fn token_v1(form: &Form) -> Result<Response, Response> {
    let grant_type = form.required("grant_type")?;
    if grant_type != "refresh_token" {
        return Err(unsupported_grant(grant_type));
    }
    form.check_client()?;
    let refresh_token = form.required("refresh_token")?;
    let shared = form.shared;
    let resource = shared.settings.cloud.resource();
    match form.required("resource")? {
        r if r == resource => {}
        other => return Err(form.wrong_resource(other)),
    }
    check_refresh_token(shared, refresh_token)?;

    let (access_token, new_refresh) = shared.issue_tokens();
    let ttl = shared.settings.token_ttl.as_secs();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let expires_in = match shared.settings.token_expires_in {
        Some(figure) => json!(figure),
        None => json!(ttl.to_string()),
    };
    let body = json!({
        "token_type": "Bearer",
        "scope": "user_impersonation",
        "expires_in": expires_in,
        "ext_expires_in": ttl.to_string(),
        "expires_on": now.saturating_add(ttl).to_string(),
        "not_before": now.to_string(),
        "resource": resource,
        "access_token": access_token,
        "refresh_token": new_refresh,
        // An unsigned JWT ({"alg":"none"}) naming the sandbox user; nothing checks it.
        "id_token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.eyJhdWQiOiIwMDAwMDAwMC01YTlkLTRiMGMtOGUxMS01YTlkYjBjOGUxMTEiLCJpc3MiOiJodHRwczovL3N0cy53aW5kb3dzLm5ldC9zYW5kYm94LyIsInVwbiI6ImFkbWluQHNhbmRib3gub25taWNyb3NvZnQuY29tIn0.",
    });
    Ok(Json(body).into_response())
}

/// `POST /{tenant}/oauth2/v2.0/token`: the refresh-token, authorization-code and device-code
/// grants, for a `scope`.
pub(crate) fn token_v2(form: &Form) -> Result<Response, Response> {
    let grant_type = form.required("grant_type")?;
    let client_id = form.check_client()?;
    let shared = form.shared;
    let scope = match grant_type {
        "refresh_token" => {
            let refresh_token = form.required("refresh_token")?;
            let scope = form.required("scope")?;
            check_refresh_token(shared, refresh_token)?;
            scope.to_string()
        }
        "authorization_code" => redeem_code(form, client_id)?,
        DEVICE_CODE_GRANT => poll_device(form, client_id)?,
        other => return Err(unsupported_grant(other)),
    };
    let offline = form.check_scope(&scope)?;
    let (access_token, refresh_token) = shared.issue_tokens();
    let ttl = shared.settings.token_ttl.as_secs();
    let mut body = json!({
        "token_type": "Bearer",
        "scope": format!("{}/user_impersonation", shared.settings.cloud.resource()),
        // A test's figure (absurd ones included) in place of the lifetime, as on v1.
        "expires_in": shared.settings.token_expires_in.unwrap_or(ttl),
        "ext_expires_in": ttl,
        "access_token": access_token,
    });
    // As in Entra ID: a refresh token only for `offline_access`.
    if offline {
        body["refresh_token"] = json!(refresh_token);
    }
    Ok(Json(body).into_response())
}

fn unsupported_grant(grant_type: &str) -> Response {
    bad_request(
        "unsupported_grant_type",
        70003,
        &format!("The app requested an unsupported grant type '{grant_type}'."),
    )
}

/// A refresh token this simulator issued and has not revoked (v1 and v2 alike).
fn check_refresh_token(shared: &Shared, refresh_token: &str) -> Result<(), Response> {
    if shared.refresh_token_valid(refresh_token) {
        return Ok(());
    }
    Err(bad_request(
        "invalid_grant",
        70000,
        "Provided grant is invalid or malformed. The refresh token was not issued to this application or has been revoked.",
    ))
}
