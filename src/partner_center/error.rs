//! The Partner Center layer's error: what stops a command in sign-in, credentials or the HTTP
//! client's set-up, before any row is sent.

use std::path::PathBuf;

/// Why sign-in or the client could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PartnerCenterError {
    /// A flag, environment variable or config value is malformed or out of range.
    #[error("configuration: {0}")]
    Config(String),
    /// No usable credentials were given.
    #[error("credentials: {0}")]
    Credentials(String),
    /// The refresh token file (`PC_REFRESH_TOKEN_FILE`) cannot be read.
    #[error("credentials: PC_REFRESH_TOKEN_FILE {}", path.display())]
    TokenFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The token endpoint refused or failed the refresh-token grant.
    #[error("token request failed: {0}")]
    Token(String),
    /// The HTTP client could not be built (TLS set-up, for example).
    #[error("configuration: HTTP client")]
    HttpClient(#[source] reqwest::Error),
    /// A URL flag or setting does not parse as a URL. The parser's reason stays in the message
    /// where it always was (in parentheses); the cause is kept as well and not printed twice.
    #[error("configuration: {what}: {text:?} is not a URL ({source})")]
    BadUrl {
        /// The flag or setting, e.g. `--base-url`.
        what: String,
        text: String,
        #[source]
        source: url::ParseError,
    },
    /// `pc-qualify login` did not end with a saved refresh token.
    #[error("login failed")]
    Login(#[from] crate::partner_center::login::LoginError),
}
