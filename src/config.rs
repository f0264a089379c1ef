//! Settings for the working commands: one struct that clap and serde both fill, merged as
//! flags > environment > file > defaults, then validated into a [`RunConfig`].

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use crate::auth::{read_token_file, Credentials, RefreshCredentials};
use crate::error::ErrorKind;
use crate::model::{ApiContract, EducationSegment};
use crate::retry::RetryPolicy;

/// The production Partner Center API.
pub const DEFAULT_BASE_URL: &str = "https://api.partnercenter.microsoft.com";
/// The Microsoft Entra ID authority that redeems refresh tokens.
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";

/// Tunables shared by `run` (and the later working commands); every field optional so that the
/// layers can be merged. Secrets are deliberately absent: they come from the environment only.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Partner Center API base URL [default: https://api.partnercenter.microsoft.com]
    #[arg(long, env = "PC_BASE_URL", hide_env_values = true, value_name = "URL")]
    pub base_url: Option<String>,

    /// Token authority for the refresh-token grant [default: https://login.microsoftonline.com]
    #[arg(long, env = "PC_AUTHORITY", hide_env_values = true, value_name = "URL")]
    pub authority: Option<String>,

    /// Request contract: 2022 (qualification + educationSegment/website/validationCode) or 2021 ({"Qualification"} + ?code=) [default: 2022]
    #[arg(long, value_name = "YEAR")]
    pub api_contract: Option<ApiContract>,

    /// Education segment for Education rows that leave it empty: K12 or HigherEducation
    #[arg(long, value_name = "SEGMENT")]
    pub education_segment: Option<EducationSegment>,

    /// GovernmentCommunityCloud validation code for rows that leave it empty: digits, or `auto` to read the partner's codes
    #[arg(long, value_name = "CODE|auto")]
    pub validation_code: Option<String>,

    /// With `--validation-code auto` and several codes: the organization name whose code to use
    #[arg(long, value_name = "NAME")]
    pub validation_org: Option<String>,

    /// Most HTTP requests per second across all workers, retries and reads included; 0 = unlimited; `auto` discovers the service's quota (docs/throttling.md) [default: 5]
    #[arg(long, value_name = "N|auto", allow_negative_numbers = true)]
    pub rate: Option<RateArg>,

    /// With `--rate auto`: the rate to start from, in requests per second [default: 5]
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub rate_start: Option<f64>,

    /// With `--rate auto`: never go above this many requests per second [default: none]
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub rate_max: Option<f64>,

    /// Requests that may go out at once before the rate applies [default: 1]
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub burst: Option<i64>,

    /// Requests in flight at once [default: 5]
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub concurrency: Option<i64>,

    /// Seconds one HTTP attempt may take [default: 30]
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    pub timeout: Option<f64>,

    /// Sends of one call, the first included [default: 6]
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub max_attempts: Option<i64>,

    /// Longest single wait between attempts, in seconds [default: 60]
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    pub max_backoff: Option<f64>,

    /// Seconds in-flight requests get to finish after SIGINT/SIGTERM [default: 10]
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    pub shutdown_grace: Option<f64>,
}

impl Settings {
    /// Fills every field this layer leaves unset from `lower`.
    pub fn or(self, lower: Settings) -> Settings {
        Settings {
            base_url: self.base_url.or(lower.base_url),
            authority: self.authority.or(lower.authority),
            api_contract: self.api_contract.or(lower.api_contract),
            education_segment: self.education_segment.or(lower.education_segment),
            validation_code: self.validation_code.or(lower.validation_code),
            validation_org: self.validation_org.or(lower.validation_org),
            rate: self.rate.or(lower.rate),
            rate_start: self.rate_start.or(lower.rate_start),
            rate_max: self.rate_max.or(lower.rate_max),
            burst: self.burst.or(lower.burst),
            concurrency: self.concurrency.or(lower.concurrency),
            timeout: self.timeout.or(lower.timeout),
            max_attempts: self.max_attempts.or(lower.max_attempts),
            max_backoff: self.max_backoff.or(lower.max_backoff),
            shutdown_grace: self.shutdown_grace.or(lower.shutdown_grace),
        }
    }

    /// Reads a TOML settings file; secrets in it are refused with a pointer to the environment.
    pub fn from_file(path: &Path) -> Result<Settings, ErrorKind> {
        let err = |reason: String| ErrorKind::ConfigFile {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        if let Ok(table) = text.parse::<toml::Table>() {
            for key in table.keys() {
                if is_secret_key(key) {
                    return Err(err(format!(
                        "`{key}` is a secret and is read from the environment only (see the README's Auth section)"
                    )));
                }
            }
        }
        toml::from_str(&text).map_err(|e| err(e.message().to_string()))
    }
}

/// The `--rate` value as given: a number, or `auto` (flag and file alike).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RateArg {
    /// Requests per second; 0 = unlimited.
    PerSecond(f64),
    /// Discover the quota.
    Auto,
}

impl std::str::FromStr for RateArg {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("auto") {
            return Ok(RateArg::Auto);
        }
        text.parse::<f64>().map(RateArg::PerSecond).map_err(|_| {
            format!("expected a number of requests per second or `auto`; got {text:?}")
        })
    }
}

impl<'de> Deserialize<'de> for RateArg {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RateArg;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number of requests per second or \"auto\"")
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<RateArg, E> {
                Ok(RateArg::PerSecond(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RateArg, E> {
                // Whole numbers far beyond any rate lose precision here, which changes nothing.
                Ok(RateArg::PerSecond(v as f64))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RateArg, E> {
                Ok(RateArg::PerSecond(v as f64))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RateArg, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// How the request rate is chosen: the `--rate` setting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RateMode {
    /// `--rate N`: at most N requests/s; lowered after 429s, back to N once they stop.
    Fixed(f64),
    /// `--rate 0`: no limit until the first 429, then paced like `auto` without a cap.
    Unlimited,
    /// `--rate auto`: discover the service's quota, starting at `start`, never above `max`.
    Auto {
        /// `--rate-start`.
        start: f64,
        /// `--rate-max`.
        max: Option<f64>,
    },
}

impl RateMode {
    /// The name shown in the summary and the metrics.
    pub fn name(&self) -> &'static str {
        match self {
            RateMode::Fixed(_) => "fixed",
            RateMode::Unlimited => "unlimited",
            RateMode::Auto { .. } => "auto",
        }
    }
}

fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["secret", "token", "password"]
        .iter()
        .any(|s| key.contains(s))
}

/// Everything a run needs, validated.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// API base URL, no trailing slash.
    pub base_url: String,
    /// Token authority, no trailing slash.
    pub authority: String,
    /// Request contract.
    pub contract: ApiContract,
    /// Default segment for Education rows.
    pub default_segment: Option<EducationSegment>,
    /// Default GCC validation code.
    pub default_validation_code: Option<String>,
    /// `--validation-code auto`: read the partner's codes before the run.
    pub validation_code_auto: bool,
    /// Organization whose code `auto` picks when there are several.
    pub validation_org: Option<String>,
    /// How the request rate is chosen.
    pub rate: RateMode,
    /// Burst size.
    pub burst: u32,
    /// In-flight requests.
    pub concurrency: usize,
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// Retry tunables.
    pub retry: RetryPolicy,
    /// Grace after a stop signal.
    pub shutdown_grace: Duration,
}

impl RunConfig {
    /// Applies defaults to merged settings and rejects out-of-range values.
    pub fn from_settings(s: Settings) -> Result<RunConfig, ErrorKind> {
        let bad = |msg: String| ErrorKind::Config(msg);
        let rate = rate_mode(&s)?;
        let burst = positive("--burst", s.burst.unwrap_or(1), u32::MAX as i64)?;
        let concurrency = positive("--concurrency", s.concurrency.unwrap_or(5), 4096)?;
        let max_attempts = positive("--max-attempts", s.max_attempts.unwrap_or(6), 100)?;
        let timeout = seconds("--timeout", s.timeout.unwrap_or(30.0))?;
        let max_backoff = seconds("--max-backoff", s.max_backoff.unwrap_or(60.0))?;
        let shutdown_grace = match s.shutdown_grace.unwrap_or(10.0) {
            g if g.is_finite() && g >= 0.0 => Duration::from_secs_f64(g),
            g => {
                return Err(bad(format!(
                    "--shutdown-grace must be 0 or more seconds; got {g}"
                )))
            }
        };
        let validation_code_auto = s
            .validation_code
            .as_deref()
            .is_some_and(|c| c.trim().eq_ignore_ascii_case("auto"));
        let default_validation_code = match s.validation_code {
            Some(code) if code.trim().is_empty() || validation_code_auto => None,
            Some(code) if code.trim().bytes().all(|b| b.is_ascii_digit()) => {
                Some(code.trim().to_string())
            }
            Some(code) => {
                return Err(bad(format!(
                    "--validation-code must be digits or `auto`; got {code:?}"
                )))
            }
            None => None,
        };
        let base_url = checked_url(
            "--base-url",
            s.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL),
        )?;
        let authority = checked_url(
            "PC_AUTHORITY",
            s.authority.as_deref().unwrap_or(DEFAULT_AUTHORITY),
        )?;
        Ok(RunConfig {
            base_url,
            authority,
            contract: s.api_contract.unwrap_or_default(),
            default_segment: s.education_segment,
            default_validation_code,
            validation_code_auto,
            validation_org: s.validation_org.filter(|o| !o.trim().is_empty()),
            rate,
            burst: burst as u32,
            concurrency: concurrency as usize,
            timeout,
            retry: RetryPolicy {
                max_attempts: max_attempts as u32,
                max_backoff,
                ..RetryPolicy::default()
            },
            shutdown_grace,
        })
    }
}

/// Requests per second above which a rate is refused as a typo: no service is paced this fast.
const MAX_RATE: f64 = 1e6;

fn rate_mode(s: &Settings) -> Result<RateMode, ErrorKind> {
    let per_second = |flag: &str, value: f64| {
        if value.is_finite() && value > 0.0 && value <= MAX_RATE {
            Ok(value)
        } else {
            Err(ErrorKind::Config(format!(
                "{flag} must be a number of requests per second above 0 (at most {MAX_RATE}); got {value}"
            )))
        }
    };
    let auto_only = |flag: &str| ErrorKind::Config(format!("{flag} only applies with --rate auto"));
    match s.rate.unwrap_or(RateArg::PerSecond(5.0)) {
        RateArg::Auto => {
            let start = per_second("--rate-start", s.rate_start.unwrap_or(5.0))?;
            let max = s.rate_max.map(|m| per_second("--rate-max", m)).transpose()?;
            if let Some(max) = max.filter(|m| *m < start) {
                return Err(ErrorKind::Config(format!(
                    "--rate-max ({max}) is below --rate-start ({start})"
                )));
            }
            Ok(RateMode::Auto { start, max })
        }
        RateArg::PerSecond(_) if s.rate_start.is_some() => Err(auto_only("--rate-start")),
        RateArg::PerSecond(_) if s.rate_max.is_some() => Err(auto_only("--rate-max")),
        RateArg::PerSecond(0.0) => Ok(RateMode::Unlimited),
        RateArg::PerSecond(rate) if rate.is_finite() && rate > 0.0 && rate <= MAX_RATE => {
            Ok(RateMode::Fixed(rate))
        }
        RateArg::PerSecond(rate) => Err(ErrorKind::Config(format!(
            "--rate must be a number of requests per second, 0 or more (0 = unlimited), or `auto`; got {rate}"
        ))),
    }
}

fn positive(flag: &str, value: i64, max: i64) -> Result<i64, ErrorKind> {
    if (1..=max).contains(&value) {
        Ok(value)
    } else {
        Err(ErrorKind::Config(format!(
            "{flag} must be a whole number from 1 to {max}; got {value}"
        )))
    }
}

fn seconds(flag: &str, value: f64) -> Result<Duration, ErrorKind> {
    if value.is_finite() && value > 0.0 && value < 1e9 {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(ErrorKind::Config(format!(
            "{flag} must be a number of seconds above 0; got {value}"
        )))
    }
}

/// Whether `url` names this machine (`localhost`, 127.0.0.0/8 or `::1`): the sandbox's address.
pub fn is_loopback(url: &reqwest::Url) -> bool {
    url.host_str().is_some_and(|host| {
        host.eq_ignore_ascii_case("localhost")
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    })
}

/// Accepts `https://` anywhere and `http://` only for loopback hosts; returns it without a trailing `/`.
pub fn checked_url(what: &str, text: &str) -> Result<String, ErrorKind> {
    let url = reqwest::Url::parse(text.trim())
        .map_err(|e| ErrorKind::Config(format!("{what}: {text:?} is not a URL ({e})")))?;
    let loopback = is_loopback(&url);
    match url.scheme() {
        "https" if url.host().is_some() => {}
        "http" if loopback => {}
        "http" => {
            return Err(ErrorKind::Config(format!(
                "{what}: plain http:// is refused except to a loopback address (use https://); got {text}"
            )))
        }
        _ => {
            return Err(ErrorKind::Config(format!(
                "{what}: expected an https:// URL; got {text}"
            )))
        }
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ErrorKind::Config(format!(
            "{what}: must not carry a query or fragment; got {text}"
        )));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// Reads the credentials from the environment: `PC_ACCESS_TOKEN`, or the refresh-token set.
pub fn credentials_from_env(authority: &str) -> Result<Credentials, ErrorKind> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    if let Some(token) = var("PC_ACCESS_TOKEN") {
        return Ok(Credentials::Static(SecretString::from(
            token.trim().to_string(),
        )));
    }
    let token_file = var("PC_REFRESH_TOKEN_FILE").map(PathBuf::from);
    let mut missing = Vec::new();
    let mut need = |name: &'static str| {
        let value = var(name);
        if value.is_none() {
            missing.push(name);
        }
        value
    };
    let tenant = need("PC_TENANT_ID");
    let client_id = need("PC_CLIENT_ID");
    let client_secret = need("PC_CLIENT_SECRET");
    let refresh_token = match &token_file {
        Some(_) => None,
        None => need("PC_REFRESH_TOKEN"),
    };
    if !missing.is_empty() {
        let nothing_set = missing.len() == 4 || (token_file.is_none() && missing.len() >= 3);
        return Err(ErrorKind::Credentials(if nothing_set && tenant.is_none() {
            "no credentials: set PC_ACCESS_TOKEN, or PC_TENANT_ID, PC_CLIENT_ID, PC_CLIENT_SECRET and PC_REFRESH_TOKEN (or PC_REFRESH_TOKEN_FILE); or try --sandbox".to_string()
        } else {
            format!("incomplete credentials: {} not set", missing.join(", "))
        }));
    }
    let refresh_token = match (&token_file, refresh_token) {
        (Some(path), _) => read_token_file(path)?,
        (None, Some(token)) => SecretString::from(token.trim().to_string()),
        (None, None) => return Err(ErrorKind::Credentials("PC_REFRESH_TOKEN not set".into())),
    };
    Ok(Credentials::Refresh(RefreshCredentials {
        authority: authority.to_string(),
        tenant: tenant.unwrap_or_default().trim().to_string(),
        client_id: client_id.unwrap_or_default().trim().to_string(),
        client_secret: SecretString::from(client_secret.unwrap_or_default()),
        refresh_token,
        token_file,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_defaults_fill_the_rest() {
        let flags = Settings {
            rate: Some(RateArg::PerSecond(2.5)),
            ..Settings::default()
        };
        let file: Settings = toml::from_str("rate = 9\nconcurrency = 7\n").expect("toml");
        let cfg = RunConfig::from_settings(flags.or(file)).expect("valid");
        assert_eq!(cfg.rate, RateMode::Fixed(2.5));
        assert_eq!(cfg.concurrency, 7);
        assert_eq!(cfg.burst, 1);
        assert_eq!(cfg.retry.max_attempts, 6);
        assert_eq!(cfg.base_url, DEFAULT_BASE_URL);
    }

    #[test]
    fn out_of_range_values_are_refused() {
        for s in [
            Settings {
                rate: Some(RateArg::PerSecond(-1.0)),
                ..Default::default()
            },
            Settings {
                rate: Some(RateArg::PerSecond(f64::NAN)),
                ..Default::default()
            },
            Settings {
                rate: Some(RateArg::Auto),
                rate_start: Some(0.0),
                ..Default::default()
            },
            Settings {
                rate: Some(RateArg::Auto),
                rate_start: Some(10.0),
                rate_max: Some(5.0),
                ..Default::default()
            },
            Settings {
                rate: Some(RateArg::PerSecond(5.0)),
                rate_max: Some(50.0),
                ..Default::default()
            },
            Settings {
                concurrency: Some(0),
                ..Default::default()
            },
            Settings {
                burst: Some(0),
                ..Default::default()
            },
            Settings {
                max_attempts: Some(0),
                ..Default::default()
            },
            Settings {
                timeout: Some(0.0),
                ..Default::default()
            },
            Settings {
                validation_code: Some("12a".into()),
                ..Default::default()
            },
        ] {
            assert!(RunConfig::from_settings(s).is_err());
        }
    }

    #[test]
    fn rate_auto_from_the_file_or_the_flag() {
        let file: Settings =
            toml::from_str("rate = \"auto\"\nrate_start = 2\nrate_max = 40.5\n").expect("toml");
        let cfg = RunConfig::from_settings(Settings::default().or(file.clone())).expect("valid");
        assert_eq!(
            cfg.rate,
            RateMode::Auto {
                start: 2.0,
                max: Some(40.5)
            }
        );
        // A number on the command line wins over `auto` in the file, and then the file's
        // auto-only keys are refused rather than silently ignored.
        let flags = Settings {
            rate: Some("7".parse().expect("number")),
            ..Settings::default()
        };
        assert!(RunConfig::from_settings(flags.or(file)).is_err());
        let auto = Settings {
            rate: Some(" AUTO ".parse().expect("auto")),
            ..Settings::default()
        };
        assert_eq!(
            RunConfig::from_settings(auto).expect("valid").rate,
            RateMode::Auto {
                start: 5.0,
                max: None
            }
        );
        let zero: Settings = toml::from_str("rate = 0\n").expect("toml");
        assert_eq!(
            RunConfig::from_settings(zero).expect("valid").rate,
            RateMode::Unlimited
        );
        assert!(toml::from_str::<Settings>("rate = \"fast\"\n").is_err());
        assert!("fast".parse::<RateArg>().is_err());
    }

    #[test]
    fn plain_http_only_to_loopback() {
        assert!(checked_url("x", "http://127.0.0.1:8080/").is_ok());
        assert!(checked_url("x", "http://localhost:1").is_ok());
        assert!(checked_url("x", "http://[::1]:1").is_ok());
        assert!(checked_url("x", "http://api.example.com").is_err());
        assert!(checked_url("x", "ftp://api.example.com").is_err());
        assert_eq!(
            checked_url("x", "https://api.example.com/").expect("ok"),
            "https://api.example.com"
        );
    }

    #[test]
    fn the_shipped_config_files_load_and_validate() {
        for name in ["default.toml", "nightly.toml"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("config")
                .join(name);
            let settings = Settings::from_file(&path).expect("shipped config parses");
            RunConfig::from_settings(settings).expect("shipped config is valid");
        }
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml");
        let cfg =
            RunConfig::from_settings(Settings::from_file(&path).expect("parses")).expect("ok");
        let defaults = RunConfig::from_settings(Settings::default()).expect("ok");
        assert_eq!(
            format!("{cfg:?}"),
            format!("{defaults:?}"),
            "default.toml states the defaults"
        );
    }

    #[test]
    fn secrets_in_the_file_are_refused() {
        let dir = std::env::temp_dir().join(format!("pcq-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("c.toml");
        std::fs::write(&path, "client_secret = \"hunter2\"\n").expect("write");
        let err = Settings::from_file(&path).expect_err("refused").to_string();
        assert!(
            err.contains("environment") && !err.contains("hunter2"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
