//! The device authorization flow (RFC 8628) as Entra ID plays it: `POST /devicecode` hands out a
//! code, and the token endpoint's device-code polls answer from a script (`--device-polls`),
//! telling a client that polls too fast to slow down.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::{bad_request, opaque, Form};
use crate::partner_center::cloud::Cloud;
use crate::simulator::state::lock;

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

pub(crate) struct DeviceGrant {
    client_id: String,
    scope: String,
    expires_at: Instant,
    /// Seconds; grows by five with every slow_down.
    interval: u64,
    last_poll: Option<Instant>,
    script: VecDeque<DevicePoll>,
}

/// `POST /{tenant}/oauth2/v2.0/devicecode`.
pub(crate) fn devicecode(form: &Form) -> Result<Response, Response> {
    // The device authorization request carries no secret; the client is checked when it polls.
    let client_id = form.client_id()?;
    let scope = form.required("scope")?;
    form.check_scope(scope)?;
    let settings = &form.shared.settings;
    let device_code = opaque("sim-dc-");
    // Entra ID's user codes are nine upper-case letters and digits.
    let user_code = uuid::Uuid::new_v4().simple().to_string()[..9].to_ascii_uppercase();
    let verification_uri = match settings.cloud {
        Cloud::Public => "https://microsoft.com/devicelogin",
        // Entra ID for US Government shows its own device-login page.
        Cloud::UsGov => "https://microsoft.com/deviceloginus",
        Cloud::China => "https://microsoft.com/deviceloginchina",
    };
    lock(&form.shared.oauth.devices).insert(
        device_code.clone(),
        DeviceGrant {
            client_id: client_id.to_string(),
            scope: scope.to_string(),
            // A lifetime too large for the clock means "never" (a configured value, not a panic).
            expires_at: Instant::now()
                .checked_add(Duration::from_secs(settings.device_expires_secs))
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(365 * 86_400)),
            interval: settings.device_interval_secs,
            last_poll: None,
            script: settings.device_polls.iter().copied().collect(),
        },
    );
    let body = json!({
        "user_code": user_code,
        "device_code": device_code,
        "verification_uri": verification_uri,
        "expires_in": settings.device_expires_secs,
        "interval": settings.device_interval_secs,
        "message": format!("To sign in, use a web browser to open the page {verification_uri} and enter the code {user_code} to authenticate."),
    });
    Ok(Json(body).into_response())
}

pub(super) fn poll_device(form: &Form, client_id: &str) -> Result<String, Response> {
    let device_code = form.required("device_code")?;
    let error = |error: &str, code: u32, text: &str| Err(bad_request(error, code, text));
    let mut devices = lock(&form.shared.oauth.devices);
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
    // A client that polls before the interval is up is told to slow down, as RFC 8628 says; a
    // code past its lifetime has expired, whatever the script says.
    let early = grant.last_poll.is_some_and(|last| {
        now.saturating_duration_since(last) + POLL_TOLERANCE < Duration::from_secs(grant.interval)
    });
    grant.last_poll = Some(now);
    let answer = if now > grant.expires_at {
        Some(DevicePoll::Expired)
    } else if early {
        Some(DevicePoll::SlowDown)
    } else {
        grant.script.pop_front()
    };
    let Some(answer) = answer else {
        let scope = grant.scope.clone();
        devices.remove(device_code);
        return Ok(scope);
    };
    let denied = "The end user denied the authorization request.";
    let (name, code, text) = match answer {
        DevicePoll::Pending => (
            "authorization_pending",
            70016,
            "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
        ),
        DevicePoll::SlowDown => {
            grant.interval = grant.interval.saturating_add(SLOW_DOWN_STEP);
            let text = "The client is polling too fast; add 5 seconds to the interval.";
            ("slow_down", 70016, text)
        }
        DevicePoll::Declined => ("authorization_declined", 70000, denied),
        DevicePoll::AccessDenied => ("access_denied", 70000, denied),
        DevicePoll::Expired => (
            "expired_token",
            70020,
            "The provided value for the input parameter 'device_code' is not valid. Verification code expired.",
        ),
    };
    // Only pending and slow_down leave the sign-in open: a refusal spends the code.
    if !matches!(answer, DevicePoll::Pending | DevicePoll::SlowDown) {
        devices.remove(device_code);
    }
    error(name, code, text)
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
