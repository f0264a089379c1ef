//! App+User access tokens: a fixed bearer, or refresh-token redemption with single-flight renewal.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::partner_center::http::{post_form, PostError};
use crate::partner_center::retry::Schedule;
use crate::partner_center::PartnerCenterError;

/// The resource Partner Center tokens are issued for (public cloud; see `config::Cloud`).
pub const RESOURCE: &str = "https://api.partnercenter.microsoft.com";

/// Where tokens come from (`Debug` shows no secret: `secrecy` redacts them).
#[derive(Debug)]
pub enum Credentials {
    /// `PC_ACCESS_TOKEN`: used as is, never renewed.
    Static(SecretString),
    /// The refresh-token grant against the authority.
    Refresh(RefreshCredentials),
}

/// What the refresh-token grant needs.
#[derive(Debug)]
pub struct RefreshCredentials {
    /// e.g. `https://login.microsoftonline.com`, no trailing slash.
    pub authority: String,
    /// The partner's tenant id or domain.
    pub tenant: String,
    /// The app registration's client id.
    pub client_id: String,
    /// The app's secret; `None` for a public client, whose grants carry no `client_secret`.
    pub client_secret: Option<SecretString>,
    /// The resource the token is for (`https://api.partnercenter.microsoft.com`, or China's).
    pub resource: String,
    /// The refresh token to start from.
    pub refresh_token: SecretString,
    /// Where the newest refresh token is kept between runs (`PC_REFRESH_TOKEN_FILE`).
    pub token_file: Option<PathBuf>,
}

/// One access token and when to stop using it.
pub struct AccessToken {
    /// `Bearer <token>`, built once and marked sensitive (never printed by `Debug`); `None` when
    /// the token holds bytes a header cannot carry.
    pub header: Option<HeaderValue>,
    refresh_at: Option<Instant>,
    /// Increases with every redemption, so a 401 only invalidates the token it was sent with.
    pub generation: u64,
}

impl AccessToken {
    fn new(secret: SecretString, refresh_at: Option<Instant>, generation: u64) -> Self {
        let mut header = HeaderValue::from_str(&format!("Bearer {}", secret.expose_secret())).ok();
        header
            .iter_mut()
            .for_each(|value| value.set_sensitive(true));
        AccessToken {
            header,
            refresh_at,
            generation,
        }
    }
}

/// Hands out access tokens to any number of workers, renewing one at a time.
pub struct TokenProvider {
    http: reqwest::Client,
    credentials: Credentials,
    current: RwLock<Option<Arc<AccessToken>>>,
    /// Held across the token call on purpose: the single-flight guard, and the rotated refresh token.
    refresh: tokio::sync::Mutex<Option<SecretString>>,
    generation: AtomicU64,
    redemptions: AtomicU64,
    token_file_failed: AtomicBool,
    /// The longest `Retry-After` of a throttled token request that is waited out
    /// (`--max-retry-after`, at most [`TOKEN_MAX_RETRY_AFTER`]); a longer one fails the request.
    max_retry_after: Duration,
}

/// A token endpoint's answer (v1 or v2.0; `login` reads it too): a token, or an OAuth error.
#[derive(Deserialize, Default)]
pub(crate) struct TokenAnswer {
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
    pub expires_in: Option<serde_json::Value>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// The first line of an `error_description`: Entra ID appends trace and correlation ids below it.
pub(crate) fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("").trim()
}

/// An environment variable's value, trimmed; unset or blank reads as `None`.
pub(crate) fn env_text(name: &str) -> Option<String> {
    let value = std::env::var(name).ok()?;
    Some(value.trim().to_string()).filter(|v| !v.is_empty())
}

impl TokenProvider {
    /// A provider over `credentials`, calling the authority through `http`; a throttled token
    /// request waits out a `Retry-After` of up to `max_retry_after`.
    pub fn new(http: reqwest::Client, credentials: Credentials, max_retry_after: Duration) -> Self {
        let (current, refresh) = match &credentials {
            Credentials::Static(token) => (
                Some(Arc::new(AccessToken::new(token.clone(), None, 0))),
                None,
            ),
            Credentials::Refresh(r) => (None, Some(r.refresh_token.clone())),
        };
        TokenProvider {
            http,
            credentials,
            current: RwLock::new(current),
            refresh: tokio::sync::Mutex::new(refresh),
            generation: AtomicU64::new(0),
            redemptions: AtomicU64::new(0),
            token_file_failed: AtomicBool::new(false),
            max_retry_after: max_retry_after.min(TOKEN_MAX_RETRY_AFTER),
        }
    }

    /// Whether a 401 can be answered by fetching a new token.
    pub fn can_refresh(&self) -> bool {
        matches!(self.credentials, Credentials::Refresh(_))
    }

    /// How many times the refresh token was redeemed.
    pub fn redemptions(&self) -> u64 {
        self.redemptions.load(Ordering::Relaxed)
    }

    /// Whether writing the rotated refresh token back to its file failed at least once.
    pub fn token_file_failed(&self) -> bool {
        self.token_file_failed.load(Ordering::Relaxed)
    }

    /// The current token, while it is fresh.
    fn cached(&self) -> Option<Arc<AccessToken>> {
        let current = self.current.read().ok().and_then(|c| c.clone());
        current.filter(|token| token.refresh_at.is_none_or(|at| Instant::now() < at))
    }

    /// A token that is valid for a while yet, renewing it first when it is close to expiry.
    pub async fn token(&self) -> Result<Arc<AccessToken>, PartnerCenterError> {
        if let Some(token) = self.cached() {
            return Ok(token);
        }
        let mut refresh = self.refresh.lock().await;
        // Another worker may have renewed it while this one queued for the lock.
        if let Some(token) = self.cached() {
            return Ok(token);
        }
        let Credentials::Refresh(creds) = &self.credentials else {
            return Err(PartnerCenterError::Credentials(
                "the access token has expired and cannot be renewed".into(),
            ));
        };
        let Some(refresh_token) = refresh.as_ref() else {
            return Err(PartnerCenterError::Credentials("no refresh token".into()));
        };
        let (token, rotated) = self.redeem(creds, refresh_token).await?;
        if let Some(rotated) = rotated {
            if let Some(path) = &creds.token_file {
                if let Err(err) = write_token_file(path, rotated.expose_secret()) {
                    self.token_file_failed.store(true, Ordering::Relaxed);
                    tracing::error!(
                        path = %path.display(),
                        error = %err,
                        "could not save the rotated refresh token; the next run will use the older one"
                    );
                }
            }
            *refresh = Some(rotated);
        }
        let token = Arc::new(token);
        if let Ok(mut current) = self.current.write() {
            *current = Some(token.clone());
        }
        Ok(token)
    }

    /// Drops the token a request was refused with, so the next `token()` renews it.
    pub fn invalidate(&self, generation: u64) {
        if let Ok(mut current) = self.current.write() {
            let sent_with = current.as_ref().is_some_and(|t| t.generation == generation);
            if sent_with && self.can_refresh() {
                *current = None;
            }
        }
    }

    async fn redeem(
        &self,
        creds: &RefreshCredentials,
        refresh_token: &SecretString,
    ) -> Result<(AccessToken, Option<SecretString>), PartnerCenterError> {
        let url = format!("{}/{}/oauth2/token", creds.authority, creds.tenant);
        // The v1 endpoint with `resource`, as Partner Center's App+User documentation shows; a
        // public client sends no `client_secret` at all (an empty one would be refused).
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose_secret()),
            ("client_id", creds.client_id.as_str()),
        ];
        if let Some(secret) = &creds.client_secret {
            form.push(("client_secret", secret.expose_secret()));
        }
        form.push(("resource", creds.resource.as_str()));
        form.push(("scope", "openid"));
        let mut schedule = Schedule::new(Duration::from_millis(500), Duration::from_secs(5));
        let mut attempt = 0;
        let (status, body) = loop {
            attempt += 1;
            let wait = match post_form(&self.http, &url, &form).await {
                // Entra ID throttles an app that asks too often (or is overloaded) with 429 and a
                // Retry-After: a wait, not a refusal of the credentials, so it is retried within
                // the same tries, after the figure it asks for.
                Ok(answer) if answer.status == 429 && attempt < TOKEN_TRIES => {
                    match answer.retry_after {
                        Some(hint) if hint.wait > self.max_retry_after => {
                            return Err(PartnerCenterError::Token(format!(
                                "token endpoint answered 429 and asked to wait Retry-After: {} (seconds or a date), longer than the {} s a token request waits (--max-retry-after, at most 60 s)",
                                hint.raw,
                                self.max_retry_after.as_secs_f64()
                            )));
                        }
                        hint => {
                            let wait = schedule.next_wait(hint.map(|h| h.wait));
                            tracing::info!(
                                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                                "token endpoint throttled (429): retrying after its wait"
                            );
                            wait
                        }
                    }
                }
                Ok(answer) if answer.status >= 500 && attempt < TOKEN_TRIES => {
                    schedule.next_wait(None)
                }
                Ok(answer) => break (answer.status, answer.body),
                Err(PostError::Unreachable(reason) | PostError::Unreadable { reason, .. })
                    if attempt >= TOKEN_TRIES =>
                {
                    return Err(PartnerCenterError::Token(format!(
                        "token endpoint {url} unreachable: {reason}"
                    )));
                }
                Err(_) => schedule.next_wait(None),
            };
            tokio::time::sleep(wait).await;
        };
        self.redemptions.fetch_add(1, Ordering::Relaxed);
        let Ok(answer) = serde_json::from_slice::<TokenAnswer>(&body) else {
            return Err(PartnerCenterError::Token(format!(
                "token endpoint answered {status} with a body that is not a token answer"
            )));
        };
        if let Some(error) = &answer.error {
            let description = first_line(answer.error_description.as_deref().unwrap_or(""));
            return Err(PartnerCenterError::Token(format!(
                "{error} (HTTP {status}): {description}"
            )));
        }
        let Some(access) = answer.access_token.filter(|_| (200..300).contains(&status)) else {
            return Err(PartnerCenterError::Token(format!(
                "token endpoint answered {status} without an access token"
            )));
        };
        // Clamped: the service issues tokens for about an hour, and a figure like u64::MAX
        // would overflow the clock arithmetic below.
        let lifetime = seconds(answer.expires_in.as_ref(), 3600).min(MAX_LIFETIME_SECS);
        let lifetime = Duration::from_secs(lifetime);
        // Renew with a margin scaled to the lifetime: 5 minutes for the usual hour, less for short
        // ones; but keep it at least MIN_REUSE, however small the figure.
        let margin = (lifetime / 10).min(Duration::from_secs(300));
        let keep = lifetime.saturating_sub(margin).max(MIN_REUSE);
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::debug!(
            lifetime_s = lifetime.as_secs(),
            generation,
            "access token obtained"
        );
        let token = AccessToken::new(
            SecretString::from(access),
            Instant::now().checked_add(keep),
            generation,
        );
        Ok((token, answer.refresh_token.map(SecretString::from)))
    }
}

/// Tries of one token request: transport failures, 5xx and 429 are tried again up to this.
const TOKEN_TRIES: u32 = 3;

/// The longest `Retry-After` a throttled token request waits out, whatever `--max-retry-after`
/// allows the API calls. Entra ID asks for 60 s (MSAL's notes on its throttling). Every worker
/// waits on the one renewal mid-run: two waits of 60 s keep that of the order of three tries
/// timing out (30 s each), and a longer wait is better met by the stop and `--resume`.
const TOKEN_MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// The shortest time a token is kept before it is renewed, whatever its `expires_in`. Without it
/// `expires_in: 0` (or 1) put the renewal time at once, so every API call fetched a token of its
/// own (30 rows, 31 token requests). Entra ID issues access tokens for 10 minutes at the least,
/// so a figure under 10 s is not a lifetime it gave; and if a token does expire sooner, the first
/// 401 drops it (`invalidate`) and the 401 path renews it once and resends: at most the requests
/// in flight then are refused once each. 10 s holds the token requests to six a minute, far
/// below what Entra ID throttles, and is short enough that a token which really is that short
/// costs little.
const MIN_REUSE: Duration = Duration::from_secs(10);

/// The longest access-token lifetime believed (a day); longer figures are treated as a day.
const MAX_LIFETIME_SECS: u64 = 86_400;

/// `expires_in` (and the device flow's `interval`) arrives as a number (v2.0) or a string (v1);
/// anything else, a negative or a fractional figure included, reads as `default`.
pub(crate) fn seconds(value: Option<&serde_json::Value>, default: u64) -> u64 {
    let secs = match value {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    secs.unwrap_or(default)
}

/// Reads a refresh token file (whitespace trimmed).
pub fn read_token_file(path: &Path) -> Result<SecretString, PartnerCenterError> {
    let text = crate::domain::atomic::read_text(path, crate::domain::atomic::SMALL_FILE).map_err(
        |source| PartnerCenterError::TokenFile {
            path: path.to_path_buf(),
            source,
        },
    )?;
    #[cfg(unix)]
    keep_private(path);
    let token = text.trim();
    if token.is_empty() {
        return Err(PartnerCenterError::Credentials(format!(
            "PC_REFRESH_TOKEN_FILE {} is empty",
            path.display()
        )));
    }
    Ok(SecretString::from(token.to_string()))
}

/// A token file other users can read hands them the partner user's sign-in: it is made the
/// owner's alone (0600) at once, with a warning, rather than at the first rotation (which may
/// never come, or fail).
#[cfg(unix)]
fn keep_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let Ok(mode) = std::fs::metadata(path).map(|m| m.permissions().mode() & 0o777) else {
        return;
    };
    if mode & 0o077 == 0 {
        return;
    }
    let mode = format!("{mode:o}");
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
        Ok(()) => tracing::warn!(
            path = %path.display(),
            mode,
            "the refresh token file was open to other users (mode {mode}); it is now 0600 (owner only)"
        ),
        Err(error) => tracing::warn!(
            path = %path.display(),
            mode,
            %error,
            "the refresh token file is open to other users (mode {mode}) and could not be made 0600: chmod 600 it"
        ),
    }
}

/// The folder the token file is replaced in (its temporary file goes there too): through a
/// symbolic link, the folder of the file it points to.
fn token_dir(path: &Path) -> PathBuf {
    let target = crate::domain::atomic::link_target(path);
    let dir = target.parent().filter(|p| !p.as_os_str().is_empty());
    dir.unwrap_or(Path::new(".")).to_path_buf()
}

/// Proves that [`write_token_file`] can replace `path`: a temporary file is created in its
/// folder and removed again, and `path` is not a folder. Run before an interactive sign-in, so
/// a missing or read-only folder is reported before the user signs in, not after.
pub fn check_token_file_writable(path: &Path) -> std::io::Result<()> {
    if path.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::IsADirectory,
            "the path is a folder",
        ));
    }
    let dir = token_dir(path);
    if !dir.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("the folder {} does not exist", dir.display()),
        ));
    }
    let probe = tempfile::Builder::new()
        .prefix(".pc-qualify-token")
        .suffix(".tmp")
        .tempfile_in(&dir)?;
    probe.close()
}

/// Creates the token file's folder when it is missing, readable by its owner only (it will hold
/// a sign-in): `login --token-file ~/.config/pc-qualify/refresh-token` on a fresh machine.
pub fn create_token_folder(path: &Path) -> std::io::Result<()> {
    let dir = token_dir(path);
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Replaces the token file atomically (a temporary file in the same directory, persisted over
/// the old one), readable by its owner only: a crash leaves the old token or the new, never half.
/// Through a symbolic link, the file it points to is replaced and the link stays.
pub fn write_token_file(path: &Path, token: &str) -> std::io::Result<()> {
    let target = crate::domain::atomic::link_target(path);
    // 0600: the refresh token is the partner user's sign-in.
    crate::domain::atomic::replace(&target, 0o600, |file| {
        file.write_all(token.as_bytes())?;
        file.write_all(b"\n")
    })
}

/// Reads the credentials from the environment: `PC_ACCESS_TOKEN`, or the refresh-token set.
/// `PC_CLIENT_SECRET` is optional: without it the app is used as a public client.
pub fn credentials_from_env(
    authority: &str,
    resource: &str,
) -> Result<Credentials, PartnerCenterError> {
    if let Some(token) = env_text("PC_ACCESS_TOKEN") {
        return Ok(Credentials::Static(SecretString::from(token)));
    }
    let token_file = std::env::var("PC_REFRESH_TOKEN_FILE")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(PathBuf::from);
    let tenant = env_text("PC_TENANT_ID");
    let client_id = env_text("PC_CLIENT_ID");
    let client_secret = env_text("PC_CLIENT_SECRET");
    let refresh_token = env_text("PC_REFRESH_TOKEN");
    let no_token = token_file.is_none() && refresh_token.is_none();
    let missing = missing([
        (tenant.is_none(), "PC_TENANT_ID"),
        (client_id.is_none(), "PC_CLIENT_ID"),
        (no_token, "PC_REFRESH_TOKEN"),
    ]);
    if !missing.is_empty() {
        let nothing_set = token_file.is_none() && missing.len() == 3;
        return Err(PartnerCenterError::Credentials(
            if nothing_set && client_secret.is_none() {
                "no credentials: set PC_ACCESS_TOKEN, or PC_TENANT_ID, PC_CLIENT_ID and PC_REFRESH_TOKEN or PC_REFRESH_TOKEN_FILE (written by `pc-qualify login`), plus PC_CLIENT_SECRET for a confidential client; or try --sandbox".to_string()
            } else {
                format!("incomplete credentials: {} not set", missing.join(", "))
            },
        ));
    }
    let refresh_token = match &token_file {
        Some(path) => read_token_file(path)?,
        None => SecretString::from(refresh_token.unwrap_or_default()),
    };
    Ok(Credentials::Refresh(RefreshCredentials {
        authority: authority.to_string(),
        tenant: tenant.unwrap_or_default(),
        client_id: client_id.unwrap_or_default(),
        client_secret: client_secret.map(SecretString::from),
        resource: resource.to_string(),
        refresh_token,
        token_file,
    }))
}

/// The names of the settings that are absent, in order (`login` checks its flags the same way).
pub(crate) fn missing(settings: [(bool, &str); 3]) -> Vec<&str> {
    let absent = settings.into_iter().filter(|(absent, _)| *absent);
    absent.map(|(_, name)| name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_parse_from_strings_and_numbers() {
        let read = |value: serde_json::Value| seconds(Some(&value), 7);
        assert_eq!(read(serde_json::json!("3599")), 3599);
        assert_eq!(read(serde_json::json!(60)), 60);
        assert_eq!(read(serde_json::json!("soon")), 7);
        assert_eq!(read(serde_json::json!(-1)), 7);
        assert_eq!(read(serde_json::json!(1e300)), 7);
        assert_eq!(read(serde_json::json!(true)), 7);
        assert_eq!(seconds(None, 7), 7);
    }

    #[test]
    fn debug_never_prints_secrets() {
        let creds = Credentials::Refresh(RefreshCredentials {
            authority: "https://login.example".into(),
            tenant: "t".into(),
            client_id: "c".into(),
            client_secret: Some(SecretString::from("top-secret-value".to_string())),
            resource: RESOURCE.into(),
            refresh_token: SecretString::from("refresh-secret-value".to_string()),
            token_file: None,
        });
        let text = format!("{creds:?}");
        assert!(
            !text.contains("top-secret-value") && !text.contains("refresh-secret-value"),
            "{text}"
        );
        let text = format!(
            "{:?}",
            Credentials::Static(SecretString::from("bearer-secret".to_string()))
        );
        assert!(!text.contains("bearer-secret"));
    }

    #[test]
    fn token_files_are_replaced_atomically_and_private() {
        let dir = std::env::temp_dir().join(format!("pcq-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("refresh-token");
        std::fs::write(&path, "old\n").expect("seed");
        write_token_file(&path, "new-token").expect("write");
        assert_eq!(
            read_token_file(&path).expect("read").expose_secret(),
            "new-token"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .expect("ls")
            .filter_map(|e| e.ok())
            .collect();
        assert_eq!(leftovers.len(), 1, "no temp file left behind");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(unix)]
    #[test]
    fn a_token_file_others_can_read_is_made_private_when_read() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("refresh-token");
        std::fs::write(&path, "token\n").expect("seed");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        read_token_file(&path).expect("read");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[cfg(unix)]
    #[test]
    fn a_token_file_behind_a_link_is_replaced_at_its_target() {
        let dir = tempfile::tempdir().expect("dir");
        let (target, link) = (dir.path().join("real"), dir.path().join("link"));
        std::fs::write(&target, "old\n").expect("seed");
        std::os::unix::fs::symlink("real", &link).expect("symlink");
        write_token_file(&link, "new").expect("write");
        assert!(std::fs::symlink_metadata(&link)
            .expect("meta")
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read_to_string(&target).expect("read"), "new\n");
        // A link to a file not there yet: the file is created at the link's target.
        let (later, dangling) = (dir.path().join("later"), dir.path().join("dangling"));
        std::os::unix::fs::symlink("later", &dangling).expect("symlink");
        write_token_file(&dangling, "first").expect("write");
        assert_eq!(std::fs::read_to_string(&later).expect("read"), "first\n");
    }
}
