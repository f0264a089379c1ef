//! Settings for the working commands: one struct that clap and serde both fill, merged as
//! flags > environment > file > defaults, then validated into a [`RunConfig`].

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::domain::atomic;
use crate::domain::model::{ApiContract, EducationSegment};
use crate::engine::JobError;
use crate::partner_center::client::DEFAULT_LOCALE;
use crate::partner_center::cloud::{checked_url, Cloud};
use crate::partner_center::pacer::RateMode;
use crate::partner_center::retry::RetryPolicy;

/// How input rows become requests: the settings `validate` needs as well as the working commands.
/// Every field optional so that the layers (flags, file, defaults) can be merged.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
pub struct InputSettings {
    /// Request contract: 2022 (qualification + educationSegment/website/validationCode) or 2021 ({"Qualification"} + ?code=) [default: 2022]
    #[arg(long, value_name = "YEAR")]
    pub api_contract: Option<ApiContract>,

    /// Education segment for Education rows that leave it empty: K12 or HigherEducation
    #[arg(long, value_name = "SEGMENT")]
    pub education_segment: Option<EducationSegment>,

    /// GovernmentCommunityCloud validation code for rows that leave it empty: the code as text, or `auto` to read the partner's codes
    #[arg(long, value_name = "CODE|auto")]
    pub validation_code: Option<String>,

    /// With `--validation-code auto` and several codes: the organization name whose code to use
    #[arg(long, value_name = "NAME")]
    pub validation_org: Option<String>,
}

/// `Self` with each listed field taken from `upper`, or from `lower` where `upper` leaves it
/// unset: the one merge rule of the settings; the fields after the second `;` are given as they are.
macro_rules! or_fields {
    ($upper:ident, $lower:ident; $($field:ident),*; $($given:tt)*) => {
        Self { $($field: $upper.$field.or($lower.$field),)* $($given)* }
    };
}

impl InputSettings {
    /// Fills every field this layer leaves unset from `lower`.
    pub fn or(self, lower: InputSettings) -> InputSettings {
        or_fields!(self, lower; api_contract, education_segment, validation_code, validation_org;)
    }
}

/// The keys a settings file may hold: the ids of the flags of [`Settings`] and
/// [`InputSettings`], which are their fields' names. (`serde(flatten)` cannot be combined with
/// `deny_unknown_fields`, so unknown keys are refused by name.)
fn settings_keys() -> Vec<String> {
    use clap::Args as _;
    Settings::augment_args(clap::Command::new("settings"))
        .get_arguments()
        .map(|arg| arg.get_id().to_string())
        .collect()
}

/// The settings of the working commands (run, reconcile, refresh, export): the input settings
/// plus how to reach the service and how hard to push it. Secrets are deliberately absent: they
/// come from the environment only.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
pub struct Settings {
    /// Which Partner Center: public, china or usgov (sets base URL, authority and token resource; --base-url/--authority still win) [default: public]
    #[arg(long, value_enum, value_name = "CLOUD")]
    pub cloud: Option<Cloud>,

    /// Language of the service's messages, sent as X-Locale on every API call [default: en-US]
    #[arg(long, value_name = "LOCALE")]
    pub locale: Option<String>,

    /// Partner Center API base URL [default: https://api.partnercenter.microsoft.com]
    #[arg(long, env = "PC_BASE_URL", hide_env_values = true, value_name = "URL")]
    pub base_url: Option<String>,

    /// Token authority for the refresh-token grant [default: https://login.microsoftonline.com]
    #[arg(long, env = "PC_AUTHORITY", hide_env_values = true, value_name = "URL")]
    pub authority: Option<String>,

    /// How rows become requests (the flags `validate` takes too).
    #[command(flatten)]
    #[serde(flatten)]
    pub input: InputSettings,

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

    /// Longest single wait the tool chooses between attempts, in seconds; the service's Retry-After is obeyed beyond it [default: 60]
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    pub max_backoff: Option<f64>,

    /// Longest Retry-After obeyed, in seconds; a longer one fails the row with the service's figure [default: 300]
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    pub max_retry_after: Option<f64>,

    /// Seconds in-flight requests get to finish after SIGINT/SIGTERM [default: 10]
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    pub shutdown_grace: Option<f64>,
}

impl Settings {
    /// Fills every field this layer leaves unset from `lower`.
    pub fn or(self, mut lower: Settings) -> Settings {
        // A cloud chosen in this layer replaces the URLs a lower layer gives (a config file that
        // spells out the public URLs must not send `--cloud china` to the public service); URLs
        // given in this same layer (`--base-url`, `PC_BASE_URL`) still win over the cloud.
        if self.cloud.is_some() {
            (lower.base_url, lower.authority) = (None, None);
        }
        let input = self.input.or(lower.input);
        or_fields!(self, lower; cloud, locale, base_url, authority, rate, rate_start, rate_max,
            burst, concurrency, timeout, max_attempts, max_backoff, max_retry_after, shutdown_grace;
            input)
    }

    /// Reads a TOML settings file; secrets in it are refused with a pointer to the environment.
    pub fn from_file(path: &Path) -> Result<Settings, JobError> {
        let err = |reason: String| JobError::ConfigFile {
            path: path.to_path_buf(),
            reason,
        };
        let text = atomic::read_text(path, atomic::SMALL_FILE).map_err(|source| {
            JobError::ConfigFileIo {
                path: path.to_path_buf(),
                source,
            }
        })?;
        if let Ok(table) = text.parse::<toml::Table>() {
            let keys = settings_keys();
            for key in table.keys() {
                if is_secret_key(key) {
                    return Err(err(format!(
                        "`{key}` is a secret and is read from the environment only (see docs/auth.md)"
                    )));
                }
                if !keys.contains(key) {
                    return Err(err(format!(
                        "unknown setting `{key}`; the settings are: {}",
                        keys.join(", ")
                    )));
                }
            }
        }
        toml::from_str(&text).map_err(|e| JobError::ConfigFileSyntax {
            path: path.to_path_buf(),
            source: TomlError::from(e),
        })
    }
}

/// A TOML parse error shown by its one-line message: the parser's own `Display` adds a
/// multi-line excerpt of the file, which does not fit the one-line error the binary prints.
/// Only the message is kept, not the parser's error: its `Debug` holds the whole file, and a
/// settings file may hold a client secret (secrets are refused only in a file that parses).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
#[non_exhaustive]
pub struct TomlError {
    /// The parser's one-line reason.
    pub message: String,
}

impl From<toml::de::Error> for TomlError {
    fn from(error: toml::de::Error) -> Self {
        TomlError {
            message: error.message().to_string(),
        }
    }
}

/// The `--rate` value as given: a number, or `auto` (flag and file alike).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "RateValue")]
pub enum RateArg {
    /// Requests per second; 0 = unlimited.
    PerSecond(f64),
    /// Discover the quota.
    Auto,
}

/// Why a `--rate` value (flag or settings file) was not accepted: neither `auto` nor a number.
/// The range is checked later, with the other settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected a number of requests per second or `auto`; got {text:?}")]
#[non_exhaustive]
pub struct RateArgError {
    /// The value as given (trimmed).
    pub text: String,
    /// Why it is not a number.
    #[source]
    pub source: std::num::ParseFloatError,
}

impl std::str::FromStr for RateArg {
    type Err = RateArgError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("auto") {
            return Ok(RateArg::Auto);
        }
        text.parse::<f64>()
            .map(RateArg::PerSecond)
            .map_err(|source| RateArgError {
                text: text.to_string(),
                source,
            })
    }
}

/// `rate =` in a settings file: a number, or text that must parse as a [`RateArg`].
#[derive(Deserialize)]
#[serde(
    untagged,
    expecting = "expected a number of requests per second or \"auto\""
)]
enum RateValue {
    Number(f64),
    Text(String),
}

impl TryFrom<RateValue> for RateArg {
    type Error = RateArgError;

    fn try_from(value: RateValue) -> Result<Self, Self::Error> {
        match value {
            RateValue::Number(rate) => Ok(RateArg::PerSecond(rate)),
            RateValue::Text(text) => text.parse(),
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
    /// The cloud chosen (`--cloud`, `cloud =`), public by default.
    pub cloud: Cloud,
    /// The resource tokens are requested for (follows `--cloud`).
    pub resource: String,
    /// `X-Locale` of every API call.
    pub locale: String,
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
    /// What the Partner Center client needs of these settings.
    pub fn endpoint(&self) -> crate::partner_center::client::Endpoint<'_> {
        crate::partner_center::client::Endpoint {
            base_url: &self.base_url,
            authority: &self.authority,
            locale: &self.locale,
            timeout: self.timeout,
            concurrency: self.concurrency,
            retry: self.retry,
        }
    }

    /// Applies defaults to merged settings and rejects out-of-range values.
    pub fn from_settings(s: Settings) -> Result<RunConfig, JobError> {
        let rate = rate_mode(&s)?;
        let burst = positive("--burst", s.burst.unwrap_or(1), u32::MAX as i64)?;
        let concurrency = positive("--concurrency", s.concurrency.unwrap_or(5), 4096)?;
        let max_attempts = positive("--max-attempts", s.max_attempts.unwrap_or(6), 100)?;
        let timeout = seconds("--timeout", s.timeout.unwrap_or(30.0))?;
        let max_backoff = seconds("--max-backoff", s.max_backoff.unwrap_or(60.0))?;
        let max_retry_after = seconds("--max-retry-after", s.max_retry_after.unwrap_or(300.0))?;
        let shutdown_grace = match s.shutdown_grace.unwrap_or(10.0) {
            g if (0.0..1e9).contains(&g) => {
                Duration::try_from_secs_f64(g).unwrap_or(Duration::ZERO)
            }
            g => {
                return Err(JobError::Config(format!(
                    "--shutdown-grace must be from 0 to 999999999 seconds; got {g}"
                )))
            }
        };
        // A validation code is text (Partner Center's own are not all digits): trimmed, any.
        let code = s.input.validation_code.as_deref().map(str::trim);
        let validation_code_auto = code.is_some_and(|c| c.eq_ignore_ascii_case("auto"));
        let default_validation_code = code
            .filter(|c| !c.is_empty() && !validation_code_auto)
            .map(str::to_string);
        let locale = s.locale.as_deref().map_or(DEFAULT_LOCALE, str::trim);
        // A language tag (en-US, fr-FR, zh-Hans-CN): letters, digits and hyphens.
        let tag = |t: &str| {
            (2..=35).contains(&t.len())
                && t.split('-')
                    .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric()))
        };
        if !tag(locale) {
            return Err(JobError::Config(format!(
                "--locale must be a language tag such as en-US; got {locale:?}"
            )));
        }
        // The cloud fills in what is not given explicitly; an explicit URL (flag, environment or
        // file) wins, so a simulator can play the China cloud on a loopback address.
        let cloud = s.cloud.unwrap_or_default();
        let base_url = checked_url(
            "--base-url",
            s.base_url.as_deref().unwrap_or(cloud.base_url()),
        )?;
        let authority = checked_url(
            "PC_AUTHORITY",
            s.authority.as_deref().unwrap_or(cloud.authority()),
        )?;
        Ok(RunConfig {
            base_url,
            authority,
            cloud,
            resource: cloud.resource().to_string(),
            locale: locale.to_string(),
            contract: s.input.api_contract.unwrap_or_default(),
            default_segment: s.input.education_segment,
            default_validation_code,
            validation_code_auto,
            validation_org: s.input.validation_org.filter(|o| !o.trim().is_empty()),
            rate,
            burst: burst as u32,
            concurrency: concurrency as usize,
            timeout,
            retry: RetryPolicy {
                max_attempts: max_attempts as u32,
                max_backoff,
                max_retry_after,
                ..RetryPolicy::default()
            },
            shutdown_grace,
        })
    }
}

/// Requests per second above which a rate is refused as a typo: no service is paced this fast.
const MAX_RATE: f64 = 1e6;

fn rate_mode(s: &Settings) -> Result<RateMode, JobError> {
    let per_second = |flag: &str, value: f64| {
        if value.is_finite() && value > 0.0 && value <= MAX_RATE {
            Ok(value)
        } else {
            Err(JobError::Config(format!(
                "{flag} must be a number of requests per second above 0 (at most {MAX_RATE}); got {value}"
            )))
        }
    };
    let auto_only = |flag: &str| JobError::Config(format!("{flag} only applies with --rate auto"));
    match s.rate.unwrap_or(RateArg::PerSecond(5.0)) {
        RateArg::Auto => {
            let start = per_second("--rate-start", s.rate_start.unwrap_or(5.0))?;
            let max = s.rate_max.map(|m| per_second("--rate-max", m)).transpose()?;
            if let Some(max) = max.filter(|m| *m < start) {
                return Err(JobError::Config(format!(
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
        RateArg::PerSecond(rate) => Err(JobError::Config(format!(
            "--rate must be a number of requests per second, 0 or more (0 = unlimited), or `auto`; got {rate}"
        ))),
    }
}

fn positive(flag: &str, value: i64, max: i64) -> Result<i64, JobError> {
    if (1..=max).contains(&value) {
        Ok(value)
    } else {
        Err(JobError::Config(format!(
            "{flag} must be a whole number from 1 to {max}; got {value}"
        )))
    }
}

/// A flag's seconds, from a millisecond up: `--timeout 1e-12` is above 0 but rounds to a zero
/// `Duration`, which would fail every attempt at once.
fn seconds(flag: &str, value: f64) -> Result<Duration, JobError> {
    match Duration::try_from_secs_f64(value) {
        Ok(duration) if duration >= Duration::from_millis(1) && value < 1e9 => Ok(duration),
        _ => Err(JobError::Config(format!(
            "{flag} must be a number of seconds from 0.001 up to (not including) 1e9; got {value}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::error::ChainExt;
    use crate::partner_center::cloud::{
        CHINA_AUTHORITY, CHINA_BASE_URL, DEFAULT_AUTHORITY, DEFAULT_BASE_URL,
    };
    use crate::partner_center::PartnerCenterError;

    #[test]
    fn an_unreadable_or_malformed_config_file_keeps_its_cause() {
        use std::error::Error as _;
        let dir = tempfile::tempdir().expect("dir");
        let missing = dir.path().join("missing.toml");
        let err = Settings::from_file(&missing).expect_err("no such file");
        assert!(matches!(err, JobError::ConfigFileIo { .. }), "{err:?}");
        assert!(err.source().is_some());
        let text = err.chain();
        let io = std::fs::read(&missing).expect_err("no such file");
        assert_eq!(text, format!("config file {}: {io}", missing.display()));

        // Regression: a settings path naming a huge file (a log, say) was read whole.
        let huge = dir.path().join("huge.toml");
        let comment = format!("# {}\n", "x".repeat(1 << 20));
        std::fs::write(&huge, comment).expect("write");
        let err = Settings::from_file(&huge).expect_err("too large");
        assert!(matches!(err, JobError::ConfigFileIo { .. }), "{err:?}");
        assert!(
            err.chain().ends_with("larger than 1048576 bytes"),
            "{}",
            err.chain()
        );

        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "rate = \n").expect("write");
        let err = Settings::from_file(&bad).expect_err("no value");
        assert!(matches!(err, JobError::ConfigFileSyntax { .. }), "{err:?}");
        assert!(err.source().is_some());
        // The parser's one-line message, as before the cause was kept.
        let parsed = toml::from_str::<Settings>("rate = \n").expect_err("no value");
        assert_eq!(
            err.chain(),
            format!("config file {}: {}", bad.display(), parsed.message())
        );
    }

    #[test]
    fn a_url_that_does_not_parse_keeps_the_parsers_error() {
        use std::error::Error as _;
        let err = checked_url("--base-url", "::").expect_err("not a URL");
        assert!(matches!(err, PartnerCenterError::BadUrl { .. }), "{err:?}");
        assert!(err.source().is_some());
        assert_eq!(
            err.chain(),
            "configuration: --base-url: \"::\" is not a URL (relative URL without a base)"
        );
    }

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
                locale: Some("en US".into()),
                ..Default::default()
            },
        ] {
            assert!(RunConfig::from_settings(s).is_err());
        }
    }

    #[test]
    fn huge_or_odd_durations_are_refused_not_panicked_on() {
        for value in [1e20, f64::MAX, f64::INFINITY, f64::NAN, -1.0, 1e9] {
            let grace = Settings {
                shutdown_grace: Some(value),
                ..Default::default()
            };
            assert!(RunConfig::from_settings(grace).is_err(), "{value}");
        }
        // Regression: 1e-12 is above 0 but rounds to a zero timeout, every attempt failing at
        // once; under a millisecond is refused.
        for value in [
            1e20,
            f64::MAX,
            f64::INFINITY,
            f64::NAN,
            -1.0,
            1e9,
            1e-12,
            1e-4,
        ] {
            let timeout = Settings {
                timeout: Some(value),
                ..Default::default()
            };
            assert!(RunConfig::from_settings(timeout).is_err(), "{value}");
        }
        let zero = Settings {
            shutdown_grace: Some(0.0),
            ..Default::default()
        };
        assert_eq!(
            RunConfig::from_settings(zero)
                .expect("valid")
                .shutdown_grace,
            Duration::ZERO
        );
    }

    #[test]
    fn the_cloud_sets_base_authority_and_resource_and_explicit_urls_win() {
        let china = Settings {
            cloud: Some(Cloud::China),
            ..Settings::default()
        };
        let cfg = RunConfig::from_settings(china.clone()).expect("valid");
        assert_eq!(cfg.base_url, CHINA_BASE_URL);
        assert_eq!(cfg.authority, CHINA_AUTHORITY);
        assert_eq!(cfg.resource, CHINA_BASE_URL);
        let public = RunConfig::from_settings(Settings::default()).expect("valid");
        assert_eq!(
            (public.base_url.as_str(), public.authority.as_str()),
            (DEFAULT_BASE_URL, DEFAULT_AUTHORITY)
        );
        assert_eq!(public.resource, crate::partner_center::auth::RESOURCE);
        let explicit = Settings {
            base_url: Some("http://127.0.0.1:9".into()),
            authority: Some("http://127.0.0.1:8".into()),
            ..china
        };
        let cfg = RunConfig::from_settings(explicit).expect("valid");
        assert_eq!(cfg.base_url, "http://127.0.0.1:9");
        assert_eq!(cfg.authority, "http://127.0.0.1:8");
        assert_eq!(
            cfg.resource, CHINA_BASE_URL,
            "the resource still follows the cloud"
        );
        let file: Settings = toml::from_str("cloud = \"china\"\n").expect("toml");
        assert_eq!(file.cloud, Some(Cloud::China));
        // --cloud china over a file that spells out the public URLs goes to China.
        let public_file: Settings = toml::from_str(
            "base_url = \"https://api.partnercenter.microsoft.com\"\nauthority = \"https://login.microsoftonline.com\"\n",
        )
        .expect("toml");
        let flags = Settings {
            cloud: Some(Cloud::China),
            ..Settings::default()
        };
        let cfg = RunConfig::from_settings(flags.or(public_file.clone())).expect("valid");
        assert_eq!(
            (cfg.base_url.as_str(), cfg.authority.as_str()),
            (CHINA_BASE_URL, CHINA_AUTHORITY)
        );
        // A URL from the higher layer wins over a cloud from the lower one.
        let flags = Settings {
            base_url: Some("http://127.0.0.1:9".into()),
            ..Settings::default()
        };
        let cfg = RunConfig::from_settings(flags.or(file)).expect("valid");
        assert_eq!(cfg.base_url, "http://127.0.0.1:9");
        assert_eq!(cfg.authority, CHINA_AUTHORITY);
        assert!(toml::from_str::<Settings>("cloud = \"mars\"\n").is_err());
    }

    #[test]
    fn every_settings_key_is_read_from_a_file_and_an_unknown_one_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("all.toml");
        std::fs::write(
            &path,
            "api_contract = \"2021\"\neducation_segment = \"K12\"\nvalidation_code = \"7\"\n\
             validation_org = \"Org\"\ncloud = \"china\"\nbase_url = \"https://b.example\"\n\
             authority = \"https://a.example\"\nrate = \"auto\"\nrate_start = 2\nrate_max = 9\n\
             burst = 3\nconcurrency = 4\n\
             timeout = 5\nmax_attempts = 6\nmax_backoff = 7\nmax_retry_after = 8\n\
             shutdown_grace = 9\nlocale = \"fr-FR\"\n",
        )
        .expect("write");
        let s = Settings::from_file(&path).expect("every key is known");
        assert_eq!(s.input.validation_org.as_deref(), Some("Org"));
        assert_eq!(s.input.education_segment, Some(EducationSegment::K12));
        assert_eq!(s.shutdown_grace, Some(9.0));
        assert_eq!(s.base_url.as_deref(), Some("https://b.example"));
        assert_eq!(s.locale.as_deref(), Some("fr-FR"));
        let keys = std::fs::read_to_string(&path)
            .expect("read")
            .lines()
            .filter_map(|l| l.split(" = ").next().map(str::to_string))
            .collect::<Vec<_>>();
        assert_eq!(
            keys.len(),
            settings_keys().len(),
            "the test names every key"
        );
        std::fs::write(&path, "rate = 2\nrates = 3\n").expect("write");
        let err = Settings::from_file(&path).expect_err("a typo is refused");
        assert!(err.to_string().contains("unknown setting `rates`"), "{err}");
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
        let err = toml::from_str::<Settings>("rate = true\n").expect_err("not a rate");
        assert!(
            err.message()
                .contains(r#"number of requests per second or "auto""#),
            "{err}"
        );
        let err = toml::from_str::<Settings>("rate = \"fast\"\n").expect_err("not a rate");
        assert!(
            err.message()
                .contains(r#"expected a number of requests per second or `auto`; got "fast""#),
            "{err}"
        );
    }

    #[test]
    fn a_rate_that_is_not_a_number_keeps_the_parse_error() {
        assert_eq!("auto".parse::<RateArg>(), Ok(RateArg::Auto));
        assert_eq!(" 2.5 ".parse::<RateArg>(), Ok(RateArg::PerSecond(2.5)));
        let err = " fast ".parse::<RateArg>().expect_err("not a rate");
        assert_eq!(err.text, "fast");
        assert_eq!(Some(&err.source), "fast".parse::<f64>().err().as_ref());
        assert_eq!(
            err.to_string(),
            r#"expected a number of requests per second or `auto`; got "fast""#
        );
        let cause = std::error::Error::source(&err).expect("the float error is kept");
        assert_eq!(cause.to_string(), "invalid float literal");
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
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "client_secret = \"hunter2\"\n").expect("write");
        let err = Settings::from_file(&path).expect_err("refused").to_string();
        assert!(
            err.contains("environment") && !err.contains("hunter2"),
            "{err}"
        );
    }

    #[test]
    fn a_file_that_does_not_parse_keeps_no_copy_of_its_text() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("c.toml");
        // Not TOML, so the secret check cannot run: the error must not carry the file.
        std::fs::write(&path, "client_secret = \"hunter2\"\nrate = \n").expect("write");
        let err = Settings::from_file(&path).expect_err("not TOML");
        assert!(matches!(err, JobError::ConfigFileSyntax { .. }), "{err:?}");
        for shown in [err.chain(), format!("{err:?}")] {
            assert!(!shown.contains("hunter2"), "{shown}");
        }
    }
}
