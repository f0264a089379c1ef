//! The token endpoints: v1 `POST /{tenant}/oauth2/token` (the refresh-token grant a run uses)
//! and v2 `POST /{tenant}/oauth2/v2.0/token` (the grants of `pc-qualify login`, and refresh).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::authorize::redeem_code;
use super::device::poll_device;
use super::DEVICE_CODE_GRANT;
use super::{bad_request, check_client, check_scope, required, wrong_resource};
use crate::simulator::state::Shared;

/// `POST /{tenant}/oauth2/token` (v1): only the refresh-token grant, for the `resource`.
pub(crate) fn token_v1(
    shared: &Shared,
    tenant: &str,
    fields: &[(String, String)],
) -> Result<Response, Response> {
    let grant_type = required(fields, "grant_type")?;
    if grant_type != "refresh_token" {
        return Err(unsupported_grant(grant_type));
    }
    check_client(shared, tenant, fields)?;
    let refresh_token = required(fields, "refresh_token")?;
    let resource = shared.settings.cloud.resource();
    match required(fields, "resource")? {
        r if r == resource => {}
        other => return Err(wrong_resource(tenant, other)),
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
    Ok((StatusCode::OK, Json(body)).into_response())
}

/// `POST /{tenant}/oauth2/v2.0/token`: the refresh-token, authorization-code and device-code
/// grants, for a `scope`.
pub(crate) fn token_v2(
    shared: &Shared,
    tenant: &str,
    fields: &[(String, String)],
) -> Result<Response, Response> {
    let grant_type = required(fields, "grant_type")?;
    let client_id = check_client(shared, tenant, fields)?;
    let scope = match grant_type {
        "refresh_token" => {
            let refresh_token = required(fields, "refresh_token")?;
            let scope = required(fields, "scope")?;
            check_refresh_token(shared, refresh_token)?;
            scope.to_string()
        }
        "authorization_code" => redeem_code(shared, client_id, fields)?,
        DEVICE_CODE_GRANT => poll_device(shared, client_id, fields)?,
        other => return Err(unsupported_grant(other)),
    };
    let offline = check_scope(shared, tenant, &scope)?;
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
    Ok((StatusCode::OK, Json(body)).into_response())
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
