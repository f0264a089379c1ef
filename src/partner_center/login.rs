//! `pc-qualify login`: the interactive sign-in that produces the first refresh token.
//!
//! Two flows against the Microsoft identity platform's v2.0 endpoints
//! (`{authority}/{tenant}/oauth2/v2.0/{authorize,devicecode,token}`), both asking for
//! `{resource}/user_impersonation offline_access`:
//! - authorization code with PKCE (S256) on a loopback redirect `http://localhost:PORT`, with the
//!   `state` checked (RFC 6749, RFC 7636, RFC 8252);
//! - device authorization (RFC 8628), for machines without a browser.
//!
//! The refresh token goes to the token file (atomically, mode 0600) and nowhere else.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::Digest as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::partner_center::api::sanitize;
use crate::partner_center::cloud::checked_url;
use crate::partner_center::cloud::Cloud;
use crate::partner_center::retry::describe_transport_error;
use crate::partner_center::PartnerCenterError;

/// How long the browser flow waits for the redirect back before giving up.
const BROWSER_WAIT: Duration = Duration::from_secs(600);
/// Polling interval when the device authorization answer names none (RFC 8628 section 3.2).
const DEFAULT_INTERVAL: u64 = 5;
/// RFC 8628 section 3.5: each `slow_down` adds five seconds.
const SLOW_DOWN_STEP: u64 = 5;
/// A polling interval or code lifetime beyond these is the service's mistake; it is capped.
const MAX_INTERVAL: u64 = 300;
const MAX_EXPIRES: u64 = 24 * 3600;
/// Network failures in a row tolerated while polling before giving up.
const MAX_POLL_FAILURES: u32 = 3;
/// Request heads on the loopback listener larger than this are not a browser's redirect.
const MAX_REQUEST_HEAD: usize = 16 * 1024;

/// The grant type of a device-code poll (RFC 8628 section 3.4).
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Flags of `login`.
#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// Sign in with a code entered on another device (RFC 8628 device authorization) instead of a browser on this machine
    #[arg(long)]
    pub device_code: bool,
    /// Print the sign-in address on stderr but do not open a browser
    #[arg(long)]
    pub no_browser: bool,
    /// The partner's tenant id or domain
    #[arg(
        long,
        env = "PC_TENANT_ID",
        hide_env_values = true,
        value_name = "TENANT"
    )]
    pub tenant: Option<String>,
    /// The app registration's client id
    #[arg(long, env = "PC_CLIENT_ID", hide_env_values = true, value_name = "ID")]
    pub client_id: Option<String>,
    /// Token authority [default: https://login.microsoftonline.com, or the --cloud's]
    #[arg(long, env = "PC_AUTHORITY", hide_env_values = true, value_name = "URL")]
    pub authority: Option<String>,
    /// Which Partner Center: public or china (sets the authority and the token resource) [default: public]
    #[arg(long, value_enum, value_name = "CLOUD")]
    pub cloud: Option<Cloud>,
    /// Where to write the refresh token (replaced atomically, mode 0600)
    #[arg(
        long,
        env = "PC_REFRESH_TOKEN_FILE",
        hide_env_values = true,
        value_name = "FILE"
    )]
    pub token_file: Option<PathBuf>,
}

/// Why a sign-in ended without a saved refresh token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoginError {
    /// A required setting is missing or malformed.
    #[error("{0}")]
    Config(String),
    /// A setting failed the run's own check (`--authority` as a URL); that error is kept whole.
    #[error(transparent)]
    Setting(Box<PartnerCenterError>),
    /// The HTTP client could not be built (TLS set-up, for example).
    #[error("HTTP client")]
    HttpClient(#[source] reqwest::Error),
    /// The authorize address built from `--authority` does not parse as a URL.
    #[error("--authority")]
    AuthorizeUrl(#[source] url::ParseError),
    /// The user refused at the sign-in page (`authorization_declined`, `access_denied`).
    #[error("the sign-in was declined ({error}); nothing was saved. Run `pc-qualify login` again to retry")]
    Declined {
        /// The service's error code.
        error: String,
    },
    /// The device code ran out before the user finished (`expired_token`).
    #[error("the code expired before the sign-in was finished ({error}); nothing was saved. Run `pc-qualify login --device-code` again for a new code")]
    Expired {
        /// The service's error code, or `timeout` when the client's own clock ran out.
        error: String,
    },
    /// The redirect came back with a `state` other than the one sent: not our sign-in.
    #[error("the redirect back from the sign-in page carried a different `state` than was sent (a stale browser tab, or a forged request); nothing was saved. Run `pc-qualify login` again")]
    StateMismatch,
    /// The sign-in page sent the browser back with an error.
    #[error("the sign-in page answered {error}: {description}")]
    Authorize {
        /// `error` from the redirect.
        error: String,
        /// `error_description`, first line.
        description: String,
    },
    /// Nobody came back to the loopback address in time.
    #[error("no sign-in came back within {} minutes; nothing was saved. Run `pc-qualify login` again", .0.as_secs() / 60)]
    BrowserTimeout(Duration),
    /// The token or devicecode endpoint refused.
    #[error("{endpoint} answered HTTP {status} {error}: {description}")]
    Refused {
        /// Which endpoint.
        endpoint: &'static str,
        /// HTTP status.
        status: u16,
        /// The OAuth `error`.
        error: String,
        /// `error_description`, first line.
        description: String,
    },
    /// An answer that is not what the protocol says.
    #[error("{endpoint} answered HTTP {status} with {what}")]
    Unexpected {
        /// Which endpoint.
        endpoint: &'static str,
        /// HTTP status.
        status: u16,
        /// What was wrong with it.
        what: &'static str,
    },
    /// The token answer had no refresh token (the app or tenant does not allow `offline_access`).
    #[error("the token answer holds no refresh token: the app registration must allow offline_access; nothing was saved")]
    NoRefreshToken,
    /// The identity platform could not be reached.
    #[error("{url} unreachable: {reason}")]
    Unreachable {
        /// The URL called.
        url: String,
        /// What the transport said.
        reason: String,
    },
    /// The answer's body could not be read (cut off, or larger than the cap).
    #[error("{url} answered HTTP {status}, but its body could not be read: {reason}")]
    Unreadable {
        /// The URL called.
        url: String,
        /// HTTP status.
        status: u16,
        /// Why.
        reason: String,
    },
    /// The loopback listener for the redirect could not be opened.
    #[error("cannot listen on a loopback port for the sign-in redirect")]
    Loopback(#[source] std::io::Error),
    /// The token file could not be written.
    #[error("cannot write the token file {}", .path.display())]
    TokenFile {
        /// The token file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Which flow signs the user in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Authorization code with PKCE on a loopback redirect.
    Browser {
        /// Open the system browser at the sign-in address.
        open: bool,
    },
    /// RFC 8628 device authorization.
    DeviceCode,
}

/// Everything a sign-in needs, validated.
pub struct Login {
    /// `https://login.microsoftonline.com` or another authority, no trailing slash.
    pub authority: String,
    /// The partner's tenant.
    pub tenant: String,
    /// The app registration.
    pub client_id: String,
    /// `PC_CLIENT_SECRET` for a confidential client; `None` for a public one.
    pub client_secret: Option<SecretString>,
    /// The Partner Center resource of the chosen cloud.
    pub resource: String,
    /// Where the refresh token goes.
    pub token_file: PathBuf,
    /// Which flow.
    pub flow: Flow,
}

impl Login {
    /// Checks the flags (and `PC_CLIENT_SECRET` from the environment) into a sign-in.
    pub fn from_args(args: LoginArgs) -> Result<Login, LoginError> {
        let present = |v: Option<String>| v.map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let mut missing = Vec::new();
        let tenant = present(args.tenant);
        if tenant.is_none() {
            missing.push("--tenant (or PC_TENANT_ID)");
        }
        let client_id = present(args.client_id);
        if client_id.is_none() {
            missing.push("--client-id (or PC_CLIENT_ID)");
        }
        let token_file = args.token_file.filter(|p| !p.as_os_str().is_empty());
        if token_file.is_none() {
            missing.push("--token-file (or PC_REFRESH_TOKEN_FILE)");
        }
        if !missing.is_empty() {
            return Err(LoginError::Config(format!(
                "{} not given",
                missing.join(", ")
            )));
        }
        let cloud = args.cloud.unwrap_or_default();
        let authority = checked_url(
            "--authority",
            args.authority.as_deref().unwrap_or(cloud.authority()),
        )
        .map_err(|e| LoginError::Setting(Box::new(e)))?;
        let client_secret = std::env::var("PC_CLIENT_SECRET")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .map(SecretString::from);
        Ok(Login {
            authority,
            tenant: tenant.unwrap_or_default(),
            client_id: client_id.unwrap_or_default(),
            client_secret,
            resource: cloud.resource().to_string(),
            token_file: token_file.unwrap_or_default(),
            flow: if args.device_code {
                Flow::DeviceCode
            } else {
                Flow::Browser {
                    open: !args.no_browser,
                }
            },
        })
    }

    fn endpoint(&self, name: &str) -> String {
        format!("{}/{}/oauth2/v2.0/{name}", self.authority, self.tenant)
    }

    /// `{resource}/user_impersonation offline_access`: Partner Center as the user, plus a
    /// refresh token.
    pub fn scope(&self) -> String {
        format!(
            "{}/user_impersonation offline_access",
            self.resource.trim_end_matches('/')
        )
    }

    /// Signs the user in and saves the refresh token; returns the token file's path.
    pub async fn run(&self) -> Result<&Path, LoginError> {
        let local = reqwest::Url::parse(&self.authority)
            .is_ok_and(|url| crate::partner_center::cloud::is_loopback(&url));
        let http = crate::partner_center::client::http_client(Duration::from_secs(30), 1, local)
            .map_err(LoginError::HttpClient)?;
        // Before anyone signs in: a token that cannot be saved would waste the (MFA) sign-in.
        crate::partner_center::auth::check_token_file_writable(&self.token_file).map_err(
            |source| LoginError::TokenFile {
                path: self.token_file.clone(),
                source,
            },
        )?;
        let refresh = match self.flow {
            Flow::DeviceCode => self.device_code(&http).await?,
            Flow::Browser { open } => self.browser(&http, open).await?,
        };
        crate::partner_center::auth::write_token_file(&self.token_file, refresh.expose_secret())
            .map_err(|source| LoginError::TokenFile {
                path: self.token_file.clone(),
                source,
            })?;
        Ok(&self.token_file)
    }

    /// The form fields every token request of this app carries.
    fn client_fields(&self) -> Vec<(&'static str, String)> {
        let mut form = vec![("client_id", self.client_id.clone())];
        // A public client must not send a secret at all; a confidential one must.
        if let Some(secret) = &self.client_secret {
            form.push(("client_secret", secret.expose_secret().to_string()));
        }
        form
    }

    async fn post(
        &self,
        http: &reqwest::Client,
        url: &str,
        form: &[(&'static str, String)],
    ) -> Result<(u16, bytes::Bytes), LoginError> {
        let unreachable = |e: reqwest::Error| LoginError::Unreachable {
            url: url.to_string(),
            reason: describe_transport_error(&e),
        };
        let response = http
            .post(url)
            .form(form)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status().as_u16();
        // Capped like every other answer: an identity endpoint (or a proxy in its place) may
        // not make the tool hold an unbounded body.
        let body = crate::partner_center::client::read_capped(response)
            .await
            .map_err(|err| LoginError::Unreadable {
                url: url.to_string(),
                status,
                reason: err.describe(),
            })?;
        Ok((status, body))
    }

    // ---- device authorization (RFC 8628) ----

    async fn device_code(&self, http: &reqwest::Client) -> Result<SecretString, LoginError> {
        let url = self.endpoint("devicecode");
        let form = vec![
            ("client_id", self.client_id.clone()),
            ("scope", self.scope()),
        ];
        let (status, body) = self.post(http, &url, &form).await?;
        let answer: DeviceAnswer = match serde_json::from_slice(&body) {
            Ok(answer) => answer,
            Err(_) => {
                return Err(refusal("devicecode endpoint", status, &body).unwrap_or(
                    LoginError::Unexpected {
                        endpoint: "devicecode endpoint",
                        status,
                        what: "a body that is not a device authorization answer",
                    },
                ))
            }
        };
        let (Some(device_code), true) = (answer.device_code, (200..300).contains(&status)) else {
            return Err(refusal("devicecode endpoint", status, &body).unwrap_or(
                LoginError::Unexpected {
                    endpoint: "devicecode endpoint",
                    status,
                    what: "no device_code",
                },
            ));
        };
        let device_code = SecretString::from(device_code);
        let message = answer.message.map(|m| sanitize(&m)).unwrap_or_else(|| {
            format!(
                "To sign in, open {} and enter the code {}.",
                answer
                    .verification_uri
                    .as_deref()
                    .unwrap_or("the verification page"),
                answer
                    .user_code
                    .as_deref()
                    .unwrap_or("shown by the service"),
            )
        });
        eprintln!("{message}");
        eprintln!("pc-qualify: waiting for the sign-in to finish (Ctrl-C to give up)...");
        let mut interval = answer
            .interval
            .as_ref()
            .and_then(crate::partner_center::auth::lifetime_secs)
            .unwrap_or(DEFAULT_INTERVAL)
            .clamp(1, MAX_INTERVAL);
        let expires = answer
            .expires_in
            .as_ref()
            .and_then(crate::partner_center::auth::lifetime_secs)
            .unwrap_or(900)
            .min(MAX_EXPIRES);
        let deadline = Instant::now().checked_add(Duration::from_secs(expires));
        let token_url = self.endpoint("token");
        let mut form = self.client_fields();
        form.push(("grant_type", DEVICE_CODE_GRANT.to_string()));
        form.push(("device_code", device_code.expose_secret().to_string()));
        let mut failures = 0;
        loop {
            tokio::time::sleep(Duration::from_secs(interval)).await;
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(LoginError::Expired {
                    error: format!("the code's {expires} s ran out"),
                });
            }
            let (status, body) = match self.post(http, &token_url, &form).await {
                Ok(answer) => {
                    failures = 0;
                    answer
                }
                Err(err) => {
                    failures += 1;
                    if failures >= MAX_POLL_FAILURES {
                        return Err(err);
                    }
                    tracing::warn!(error = %err, "polling the token endpoint failed; trying again");
                    continue;
                }
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
                Some(_) => {
                    return Err(refusal("token endpoint", status, &body).unwrap_or(
                        LoginError::Unexpected {
                            endpoint: "token endpoint",
                            status,
                            what: "an error",
                        },
                    ))
                }
            }
        }
    }

    // ---- authorization code with PKCE on a loopback redirect ----

    async fn browser(
        &self,
        http: &reqwest::Client,
        open: bool,
    ) -> Result<SecretString, LoginError> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(LoginError::Loopback)?;
        let port = listener.local_addr().map_err(LoginError::Loopback)?.port();
        // `localhost` may resolve to ::1 first in the browser; listen there too when possible.
        let listener_v6 = TcpListener::bind(("::1", port)).await.ok();
        let redirect_uri = format!("http://localhost:{port}");
        let verifier = random_urlsafe();
        let challenge = pkce_challenge(&verifier);
        let state = random_urlsafe();
        let mut url =
            reqwest::Url::parse(&self.endpoint("authorize")).map_err(LoginError::AuthorizeUrl)?;
        url.query_pairs_mut()
            .append_pair("client_id", &self.client_id)
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", &redirect_uri)
            .append_pair("response_mode", "query")
            .append_pair("scope", &self.scope())
            .append_pair("state", state.expose_secret())
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        eprintln!("pc-qualify: sign in with your browser at this address:\n\n  {url}\n");
        if open {
            if let Err(e) = webbrowser::open(url.as_str()) {
                eprintln!(
                    "pc-qualify: could not open a browser ({e}); open the address above yourself"
                );
            }
        }
        eprintln!("pc-qualify: waiting for the sign-in to come back to {redirect_uri} (Ctrl-C to give up)...");
        let code = tokio::time::timeout(
            BROWSER_WAIT,
            wait_for_redirect(&listener, listener_v6.as_ref(), &state),
        )
        .await
        .map_err(|_| LoginError::BrowserTimeout(BROWSER_WAIT))??;
        let mut form = self.client_fields();
        form.push(("grant_type", "authorization_code".to_string()));
        form.push(("code", code.expose_secret().to_string()));
        form.push(("redirect_uri", redirect_uri));
        form.push(("code_verifier", verifier.expose_secret().to_string()));
        form.push(("scope", self.scope()));
        let (status, body) = self.post(http, &self.endpoint("token"), &form).await?;
        let answer: TokenAnswer = serde_json::from_slice(&body).unwrap_or_default();
        refresh_token_of(status, answer, &body)
    }
}

#[derive(Deserialize)]
struct DeviceAnswer {
    device_code: Option<String>,
    user_code: Option<String>,
    verification_uri: Option<String>,
    expires_in: Option<serde_json::Value>,
    interval: Option<serde_json::Value>,
    message: Option<String>,
}

#[derive(Deserialize, Default)]
struct TokenAnswer {
    access_token: Option<String>,
    refresh_token: Option<String>,
    error: Option<String>,
}

/// The refresh token of a successful answer, or why there is none.
fn refresh_token_of(
    status: u16,
    answer: TokenAnswer,
    body: &[u8],
) -> Result<SecretString, LoginError> {
    if !(200..300).contains(&status) || answer.error.is_some() || answer.access_token.is_none() {
        return Err(
            refusal("token endpoint", status, body).unwrap_or(LoginError::Unexpected {
                endpoint: "token endpoint",
                status,
                what: "no access token",
            }),
        );
    }
    answer
        .refresh_token
        .filter(|t| !t.trim().is_empty())
        .map(|t| SecretString::from(t.trim().to_string()))
        .ok_or(LoginError::NoRefreshToken)
}

/// An OAuth error answer as a [`LoginError::Refused`], when the body is one.
fn refusal(endpoint: &'static str, status: u16, body: &[u8]) -> Option<LoginError> {
    #[derive(Deserialize)]
    struct ErrorAnswer {
        error: String,
        error_description: Option<String>,
    }
    let answer: ErrorAnswer = serde_json::from_slice(body).ok()?;
    Some(LoginError::Refused {
        endpoint,
        status,
        error: sanitize(&answer.error),
        description: first_line(answer.error_description.as_deref().unwrap_or("")),
    })
}

fn first_line(text: &str) -> String {
    sanitize(text.lines().next().unwrap_or("").trim())
}

/// 32 bytes from the operating system's generator (two v4 UUIDs: 244 random bits), base64url:
/// 43 characters, RFC 7636's minimum verifier length, and plenty for `state`.
fn random_urlsafe() -> SecretString {
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    SecretString::from(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// RFC 7636 S256: `BASE64URL(SHA256(ASCII(code_verifier)))`.
fn pkce_challenge(verifier: &SecretString) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.expose_secret().as_bytes()))
}

/// What one request to the loopback listener came to.
enum Redirect {
    /// Not the redirect (a favicon, a probe): answered 404, keep waiting.
    Other,
    /// The redirect, with its outcome.
    Done(Result<SecretString, LoginError>),
}

/// Serves the loopback listeners until the redirect arrives.
async fn wait_for_redirect(
    v4: &TcpListener,
    v6: Option<&TcpListener>,
    state: &SecretString,
) -> Result<SecretString, LoginError> {
    loop {
        let accepted = match v6 {
            Some(v6) => tokio::select! {
                a = v4.accept() => a,
                a = v6.accept() => a,
            },
            None => v4.accept().await,
        };
        let Ok((stream, _)) = accepted else {
            continue;
        };
        // A stalled connection must not block the real redirect for long.
        match tokio::time::timeout(Duration::from_secs(10), answer_redirect(stream, state)).await {
            Ok(Redirect::Done(result)) => return result,
            Ok(Redirect::Other) | Err(_) => continue,
        }
    }
}

async fn answer_redirect(mut stream: TcpStream, state: &SecretString) -> Redirect {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return Redirect::Other,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > MAX_REQUEST_HEAD {
            return Redirect::Other;
        }
    }
    let text = String::from_utf8_lossy(&head);
    let target = text
        .lines()
        .next()
        .and_then(|line| {
            let mut parts = line.split(' ');
            match (parts.next(), parts.next()) {
                (Some("GET"), Some(target)) => Some(target.to_string()),
                _ => None,
            }
        })
        .unwrap_or_default();
    let Ok(url) = reqwest::Url::parse(&format!("http://localhost{target}")) else {
        respond(&mut stream, 400, "Bad request.").await;
        return Redirect::Other;
    };
    if url.path() != "/" {
        respond(&mut stream, 404, "Not found.").await;
        return Redirect::Other;
    }
    let param = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let (code, error) = (param("code"), param("error"));
    if code.is_none() && error.is_none() {
        respond(&mut stream, 404, "Not found.").await;
        return Redirect::Other;
    }
    // RFC 6749 section 10.12: only the redirect answering our own request is accepted.
    if param("state").as_deref() != Some(state.expose_secret()) {
        respond(
            &mut stream,
            400,
            "This sign-in did not start here (state mismatch). Nothing was saved; close this tab.",
        )
        .await;
        return Redirect::Done(Err(LoginError::StateMismatch));
    }
    if let Some(error) = error {
        respond(
            &mut stream,
            400,
            "The sign-in did not succeed; see the terminal. You can close this tab.",
        )
        .await;
        return Redirect::Done(Err(if error == "access_denied" {
            LoginError::Declined { error }
        } else {
            LoginError::Authorize {
                error: sanitize(&error),
                description: first_line(&param("error_description").unwrap_or_default()),
            }
        }));
    }
    respond(
        &mut stream,
        200,
        "Signed in. pc-qualify is saving the refresh token; you can close this tab.",
    )
    .await;
    Redirect::Done(Ok(SecretString::from(code.unwrap_or_default())))
}

async fn respond(stream: &mut TcpStream, status: u16, text: &str) {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Bad Request",
    };
    let body = format!(
        "<!doctype html><html><head><title>pc-qualify</title></head><body><p>{text}</p></body></html>"
    );
    let answer = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::error::ChainExt;

    #[test]
    fn a_bad_authority_keeps_the_url_parsers_error() {
        use std::error::Error as _;
        let args = LoginArgs {
            device_code: false,
            no_browser: true,
            tenant: Some("t".into()),
            client_id: Some("c".into()),
            authority: Some("::".into()),
            cloud: None,
            token_file: Some("token".into()),
        };
        let Err(err) = Login::from_args(args) else {
            panic!("`::` is not a URL");
        };
        assert!(err.source().is_some(), "{err:?}");
        assert_eq!(
            PartnerCenterError::Login(err).chain(),
            "login failed: configuration: --authority: \"::\" is not a URL (relative URL without a base)"
        );
        let authorize = LoginError::AuthorizeUrl(url::Url::parse("::").expect_err("not a URL"));
        assert!(authorize.source().is_some());
        assert_eq!(
            PartnerCenterError::Login(authorize).chain(),
            "login failed: --authority: relative URL without a base"
        );
    }

    #[test]
    fn the_pkce_challenge_is_rfc_7636_s256() {
        // Expected value computed independently:
        // base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=") in Python.
        let verifier =
            SecretString::from("dBjftJeZ4CVP-mJ92IZD-uR4MzZqUE2mBMXD6ku8NuM".to_string());
        assert_eq!(
            pkce_challenge(&verifier),
            "pD5jntlL_5vszsQvXUQ2EkuB8jXw4v9OAMMaJURpDuI"
        );
        let a = random_urlsafe();
        let b = random_urlsafe();
        assert_eq!(a.expose_secret().len(), 43);
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert!(a
            .expose_secret()
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }

    #[test]
    fn the_scope_names_the_clouds_resource() {
        let login = Login {
            authority: "https://login.chinacloudapi.cn".into(),
            tenant: "t".into(),
            client_id: "c".into(),
            client_secret: None,
            resource: Cloud::China.resource().into(),
            token_file: PathBuf::from("x"),
            flow: Flow::DeviceCode,
        };
        assert_eq!(
            login.scope(),
            "https://partner.partnercenterapi.microsoftonline.cn/user_impersonation offline_access"
        );
        assert_eq!(
            login.endpoint("devicecode"),
            "https://login.chinacloudapi.cn/t/oauth2/v2.0/devicecode"
        );
    }
}
