//! `pc-qualify login`: the interactive sign-in that produces the first refresh token. This file
//! holds what both flows share: the flags and their checks, the errors, the token endpoint's
//! answer and the token file; the flows are `browser` (PKCE on a loopback redirect) and `device`
//! (RFC 8628), both on the v2.0 endpoints asking for `{resource}/user_impersonation offline_access`.
//!
//! The refresh token goes to the token file (atomically, its user's alone) and nowhere else.

mod browser;
mod device;

use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::partner_center::api::sanitize;
use crate::partner_center::auth::{self, first_line, TokenAnswer};
use crate::partner_center::cloud::{checked_url, Cloud};
use crate::partner_center::http::{post_form, FormAnswer, PostError};
use crate::partner_center::PartnerCenterError;

/// The grant type of a device-code poll (RFC 8628 section 3.4); the simulator answers it too.
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
    #[arg(long, env = "PC_TENANT_ID", hide_env_values = true)] // clap shows it as <TENANT>
    pub tenant: Option<String>,
    /// The app registration's client id
    #[arg(long, env = "PC_CLIENT_ID", hide_env_values = true, value_name = "ID")]
    pub client_id: Option<String>,
    /// Token authority [default: https://login.microsoftonline.com, or the --cloud's]
    #[arg(long, env = "PC_AUTHORITY", hide_env_values = true, value_name = "URL")]
    pub authority: Option<String>,
    /// Which Partner Center: public, china or usgov (sets the authority and the token resource) [default: public]
    #[arg(long, value_enum, value_name = "CLOUD")]
    pub cloud: Option<Cloud>,
    /// Where to write the refresh token (replaced atomically, readable by you only)
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
    Declined { error: String },
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
        endpoint: &'static str,
        status: u16,
        /// The OAuth `error`.
        error: String,
        /// `error_description`, first line.
        description: String,
    },
    /// An answer that is not what the protocol says.
    #[error("{endpoint} answered HTTP {status} with {what}")]
    Unexpected {
        endpoint: &'static str,
        status: u16,
        /// What was wrong with it.
        what: &'static str,
    },
    /// The token answer had no refresh token (the app or tenant does not allow `offline_access`).
    #[error("the token answer holds no refresh token: the app registration must allow offline_access; nothing was saved")]
    NoRefreshToken,
    /// The identity platform could not be reached, or its answer could not be read.
    #[error("{url} {error}")]
    Post { url: String, error: PostError },
    #[error("cannot listen on a loopback port for the sign-in redirect")]
    Loopback(#[source] std::io::Error),
    #[error("cannot write the token file {}", .path.display())]
    TokenFile {
        path: PathBuf,
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
        let tenant = present(args.tenant);
        let client_id = present(args.client_id);
        let token_file = args.token_file.filter(|p| !p.as_os_str().is_empty());
        let missing = auth::missing([
            (tenant.is_none(), "--tenant (or PC_TENANT_ID)"),
            (client_id.is_none(), "--client-id (or PC_CLIENT_ID)"),
            (
                token_file.is_none(),
                "--token-file (or PC_REFRESH_TOKEN_FILE)",
            ),
        ])
        .join(", ");
        let (Some(tenant), Some(client_id), Some(token_file)) = (tenant, client_id, token_file)
        else {
            return Err(LoginError::Config(format!("{missing} not given")));
        };
        let cloud = args.cloud.unwrap_or_default();
        let authority = checked_url(
            "--authority",
            args.authority.as_deref().unwrap_or(cloud.authority()),
        )
        .map_err(|e| LoginError::Setting(Box::new(e)))?;
        Ok(Login {
            authority,
            tenant,
            client_id,
            client_secret: auth::env_text("PC_CLIENT_SECRET").map(SecretString::from),
            resource: cloud.resource().to_string(),
            token_file,
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
        let resource = self.resource.trim_end_matches('/');
        format!("{resource}/user_impersonation offline_access")
    }

    /// Signs the user in and saves the refresh token; returns the token file's path.
    pub async fn run(&self) -> Result<&Path, LoginError> {
        let local = crate::partner_center::cloud::is_loopback(&self.authority);
        let http = crate::partner_center::client::http_client(Duration::from_secs(30), 1, local)
            .map_err(LoginError::HttpClient)?;
        let unwritable = |source| LoginError::TokenFile {
            path: self.token_file.clone(),
            source,
        };
        // Before anyone signs in: a token that cannot be saved would waste the (MFA) sign-in.
        auth::create_token_folder(&self.token_file).map_err(unwritable)?;
        auth::check_token_file_writable(&self.token_file).map_err(unwritable)?;
        let refresh = match self.flow {
            Flow::DeviceCode => self.device_code(&http).await?,
            Flow::Browser { open } => self.browser(&http, open).await?,
        };
        auth::write_token_file(&self.token_file, refresh.expose_secret()).map_err(unwritable)?;
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
    ) -> Result<FormAnswer, LoginError> {
        let error = |error| LoginError::Post {
            url: url.to_string(),
            error,
        };
        post_form(http, url, form).await.map_err(error)
    }
}

/// The refresh token of a successful answer, or why there is none.
fn refresh_token_of(
    status: u16,
    answer: TokenAnswer,
    body: &[u8],
) -> Result<SecretString, LoginError> {
    if !(200..300).contains(&status) || answer.error.is_some() || answer.access_token.is_none() {
        return Err(refusal("token endpoint", status, body, "no access token"));
    }
    answer
        .refresh_token
        .filter(|t| !t.trim().is_empty())
        .map(|t| SecretString::from(t.trim().to_string()))
        .ok_or(LoginError::NoRefreshToken)
}

/// An OAuth error answer as a [`LoginError::Refused`]; any other body as
/// [`LoginError::Unexpected`], `what` saying what was wrong with it.
fn refusal(endpoint: &'static str, status: u16, body: &[u8], what: &'static str) -> LoginError {
    match serde_json::from_slice::<TokenAnswer>(body) {
        Ok(TokenAnswer {
            error: Some(error),
            error_description,
            ..
        }) => LoginError::Refused {
            endpoint,
            status,
            error: sanitize(&error),
            description: sanitize(first_line(error_description.as_deref().unwrap_or(""))),
        },
        _ => LoginError::Unexpected {
            endpoint,
            status,
            what,
        },
    }
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
