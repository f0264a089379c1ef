//! The device authorization flow of `pc-qualify login` (RFC 8628), for machines without a
//! browser: ask for a code, show it, then poll the token endpoint until the user has signed in.

use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{refresh_token_of, refusal, Login, LoginError, TokenAnswer, DEVICE_CODE_GRANT};
use crate::partner_center::api::sanitize;
use crate::partner_center::auth::seconds;
use crate::partner_center::http::FormAnswer;

/// Polling interval when the device authorization answer names none (RFC 8628 section 3.2).
const DEFAULT_INTERVAL: u64 = 5;
/// RFC 8628 section 3.5: each `slow_down` adds five seconds.
const SLOW_DOWN_STEP: u64 = 5;
/// A polling interval or code lifetime beyond these is the service's mistake; it is capped.
const MAX_INTERVAL: u64 = 300;
const MAX_EXPIRES: u64 = 24 * 3600;
/// Failures in a row tolerated while polling before giving up: no answer, or a throttled (429)
/// or failing (5xx) token endpoint. Neither says anything about the sign-in in the browser.
const MAX_POLL_FAILURES: u32 = 3;

#[derive(Deserialize)]
struct DeviceAnswer {
    device_code: Option<String>,
    user_code: Option<String>,
    verification_uri: Option<String>,
    expires_in: Option<serde_json::Value>,
    interval: Option<serde_json::Value>,
    message: Option<String>,
}

impl Login {
    pub(super) async fn device_code(
        &self,
        http: &reqwest::Client,
    ) -> Result<SecretString, LoginError> {
        let url = self.endpoint("devicecode");
        let form = vec![
            ("client_id", self.client_id.clone()),
            ("scope", self.scope()),
        ];
        let FormAnswer { status, body, .. } = self.post(http, &url, &form).await?;
        let refused = |what| refusal("devicecode endpoint", status, &body, what);
        let answer: DeviceAnswer = serde_json::from_slice(&body)
            .map_err(|_| refused("a body that is not a device authorization answer"))?;
        let (Some(device_code), true) = (answer.device_code, (200..300).contains(&status)) else {
            return Err(refused("no device_code"));
        };
        let device_code = SecretString::from(device_code);
        let (uri, code) = (answer.verification_uri, answer.user_code);
        let uri = uri.as_deref().unwrap_or("the verification page");
        let code = code.as_deref().unwrap_or("shown by the service");
        let message = answer.message.map(|m| sanitize(&m));
        let message =
            message.unwrap_or_else(|| format!("To sign in, open {uri} and enter the code {code}."));
        eprintln!("{message}");
        eprintln!("pc-qualify: waiting for the sign-in to finish (Ctrl-C to give up)...");
        let interval = seconds(answer.interval.as_ref(), DEFAULT_INTERVAL);
        let mut interval = interval.clamp(1, MAX_INTERVAL);
        let expires = seconds(answer.expires_in.as_ref(), 900).min(MAX_EXPIRES);
        let deadline = Instant::now().checked_add(Duration::from_secs(expires));
        let token_url = self.endpoint("token");
        let mut form = self.client_fields();
        form.push(("grant_type", DEVICE_CODE_GRANT.to_string()));
        form.push(("device_code", device_code.expose_secret().to_string()));
        let mut failures = 0;
        // What the last throttled poll's Retry-After asked for.
        let mut asked: Option<Duration> = None;
        loop {
            let wait = Duration::from_secs(interval).max(asked.take().unwrap_or_default());
            // Never past the code's expiry: the check below then ends the sign-in on time.
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            tokio::time::sleep(left.map_or(wait, |left| wait.min(left))).await;
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(LoginError::Expired {
                    error: format!("the code's {expires} s ran out"),
                });
            }
            let answer = self.post(http, &token_url, &form).await;
            let passing = match &answer {
                Err(_) => true,
                Ok(answer) => answer.status == 429 || answer.status >= 500,
            };
            failures = if passing { failures + 1 } else { 0 };
            let (status, body) = match answer {
                Err(err) if failures >= MAX_POLL_FAILURES => return Err(err),
                Ok(answer) if passing && failures >= MAX_POLL_FAILURES => {
                    let what = "an error";
                    return Err(refusal("token endpoint", answer.status, &answer.body, what));
                }
                Err(err) => {
                    tracing::warn!(error = %err, "polling the token endpoint failed; trying again");
                    continue;
                }
                Ok(answer) if passing => {
                    // A throttled (or unavailable) endpoint's Retry-After is honoured when it
                    // asks for longer than the interval: polling sooner would only be refused
                    // again and count towards the failures that end the sign-in. It is capped
                    // like an interval; the code's own expiry still ends the wait.
                    let status = answer.status;
                    let cap = Duration::from_secs(MAX_INTERVAL);
                    asked = answer.retry_after.map(|hint| hint.wait.min(cap));
                    tracing::warn!(
                        status,
                        retry_after_s = asked.map(|a| a.as_secs()),
                        "the token endpoint answered a poll with {status}; trying again"
                    );
                    continue;
                }
                Ok(answer) => (answer.status, answer.body),
            };
            let answer: TokenAnswer = serde_json::from_slice(&body).unwrap_or_default();
            match answer.error.as_deref() {
                None => return refresh_token_of(status, answer, &body),
                Some("authorization_pending") => {
                    tracing::debug!("authorization pending");
                }
                Some("slow_down") => {
                    interval = interval.saturating_add(SLOW_DOWN_STEP).min(MAX_INTERVAL);
                    tracing::info!(
                        interval_s = interval,
                        "the service asked to poll less often"
                    );
                }
                Some(error @ ("authorization_declined" | "access_denied")) => {
                    return Err(LoginError::Declined {
                        error: error.to_string(),
                    })
                }
                Some(error @ ("expired_token" | "code_expired")) => {
                    return Err(LoginError::Expired {
                        error: error.to_string(),
                    })
                }
                Some(_) => return Err(refusal("token endpoint", status, &body, "an error")),
            }
        }
    }
}
