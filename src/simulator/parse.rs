//! Text formats the simulator reads (preload CSV, fault scripts, form bodies) and the dates it writes.

use std::collections::HashSet;
use std::num::{ParseFloatError, ParseIntError};
use std::time::{Duration, SystemTime, TryFromFloatSecsError, UNIX_EPOCH};

use super::customers::CustomerProfile;
use super::{FaultAction, PreloadEntry, PreloadState, ScriptedFault, SimError};
use crate::domain::model::{CustomerId, Qualification, QualificationError, QualificationRecord};

/// The preload CSV columns, in the order the sample file uses (the last two are the customer
/// list's company profile).
const PRELOAD_COLUMNS: [&str; 7] = [
    "customer_id",
    "qualification",
    "vetting_status",
    "vetting_reason",
    "vetting_create_date",
    "company_name",
    "domain",
];

/// A preload file as read: the customers' states and the customer list's company profiles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preload {
    /// One entry per line.
    pub entries: Vec<PreloadEntry>,
    /// One profile per customer whose lines name a `company_name` or `domain` (the first such
    /// line wins; the other field is made up from the id when empty).
    pub profiles: Vec<CustomerProfile>,
}

/// Parses the preload CSV:
/// `customer_id,qualification[,vetting_status,vetting_reason,vetting_create_date,company_name,domain]`.
///
/// A qualification of `NotFound` or `NoRelationship` gives that state; a customer may appear on
/// several lines to hold several qualifications. `#` lines are comments. The one reader of the
/// file: every line's id is checked (and a bad one reported with its line) whatever it holds.
pub fn parse_preload(text: &str) -> Result<Preload, SimError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    let bad = |line: u64, reason: String| SimError::Preload { line, reason };
    let headers = reader.headers().map_err(|e| bad(1, e.to_string()))?.clone();
    // Columns are found by name so a file may leave the optional ones out; unknown names are
    // refused because a misspelt column would otherwise silently drop data.
    let mut index = [None::<usize>; 7];
    for (i, name) in headers.iter().enumerate() {
        let Some(slot) = PRELOAD_COLUMNS
            .iter()
            .position(|c| c.eq_ignore_ascii_case(name))
        else {
            let expected = PRELOAD_COLUMNS.join(",");
            return Err(bad(
                1,
                format!("unknown column {name:?}; expected {expected}"),
            ));
        };
        index[slot] = Some(i);
    }
    if index[0].is_none() || index[1].is_none() {
        let reason = "the header must name customer_id and qualification";
        return Err(bad(1, reason.into()));
    }

    let mut entries = Vec::new();
    let mut profiles = Vec::new();
    let mut profiled = HashSet::new();
    for record in reader.records() {
        let record =
            record.map_err(|e| bad(e.position().map_or(0, |p| p.line()), e.to_string()))?;
        let line = record.position().map_or(0, |p| p.line());
        let cell = |slot: usize| -> Option<&str> {
            index[slot]
                .and_then(|i| record.get(i))
                .filter(|s| !s.is_empty())
        };
        if record.iter().all(str::is_empty) {
            continue;
        }
        let id_text = cell(0).unwrap_or_default();
        let customer_id = CustomerId::parse(id_text)
            .ok_or_else(|| bad(line, format!("customer_id {id_text:?} is not a GUID")))?;
        let qualification = cell(1).ok_or_else(|| bad(line, "qualification is empty".into()))?;
        let state = if qualification.eq_ignore_ascii_case("NotFound") {
            PreloadState::NotFound
        } else if qualification.eq_ignore_ascii_case("NoRelationship") {
            PreloadState::NoRelationship
        } else {
            // Settable names are stored canonically because the service never echoes an alias;
            // anything else (e.g. Nonprofit) is kept verbatim as an existing, unsettable holding.
            let name = match Qualification::parse(qualification) {
                Ok(q) => q.as_str().to_string(),
                Err(QualificationError::NotSettable(name)) => name.to_string(),
                Err(_) => qualification.to_string(),
            };
            PreloadState::Holds(QualificationRecord {
                qualification: name,
                vetting_status: cell(2).map(str::to_string),
                vetting_reason: cell(3).map(str::to_string),
                vetting_create_date: cell(4).map(str::to_string),
            })
        };
        let (name, domain) = (cell(5), cell(6));
        if (name.is_some() || domain.is_some()) && profiled.insert(customer_id) {
            let made_up = CustomerProfile::generated(customer_id);
            profiles.push(CustomerProfile {
                customer_id,
                company_name: name.map_or(made_up.company_name, str::to_string),
                domain: domain.map_or(made_up.domain, str::to_string),
            });
        }
        entries.push(PreloadEntry { customer_id, state });
    }
    Ok(Preload { entries, profiles })
}

/// Why a fault-script line was not accepted; shown after `script line N: `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScriptError {
    /// The line is not two words.
    #[error("expected `customer_id action`")]
    Format,
    /// The first word is not a GUID.
    #[error("customer_id {0:?} is not a GUID")]
    CustomerId(String),
    /// The action is none of the named ones and does not start with a status number.
    #[error("unknown action {text:?}; expected a status like 503, 429:5, drop, delay:1500ms, late:1500ms, cut, slowbody:1500ms, html or big:BYTES")]
    ///
    /// No cause is kept: the number parser's "invalid digit found in string" about `teapot`
    /// would read, after the list of actions, as if a byte count had a bad digit.
    UnknownAction {
        /// The action as written.
        text: String,
    },
    /// A status outside 400-599: the script is for faults, not successes.
    #[error("status {0} is not an error status (400-599)")]
    NotAnErrorStatus(u16),
    /// `STATUS:` with nothing after the colon.
    #[error("{0:?}: Retry-After value is empty")]
    EmptyRetryAfter(String),
    /// `big:` with something other than a number of bytes.
    #[error("bad size {text:?}; expected a number of bytes, e.g. big:2000000")]
    Size {
        /// The size as written.
        text: String,
        /// Why it is not a number of bytes.
        #[source]
        source: ParseIntError,
    },
    /// `delay:`, `late:` or `slowbody:` with something other than a duration.
    #[error("bad delay {text:?}; expected e.g. 1500ms or 2s")]
    Delay {
        /// The duration as written.
        text: String,
        /// Why it is not a duration.
        #[source]
        source: DelayError,
    },
}

/// Why a script duration did not read: the number itself, or seconds no duration can hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DelayError {
    /// Milliseconds (`1500ms` or a bare `1500`) that are not a whole number.
    #[error(transparent)]
    Millis(#[from] ParseIntError),
    /// Seconds (`2s`) that are not a number.
    #[error(transparent)]
    Seconds(#[from] ParseFloatError),
    /// Seconds that are negative, not finite or too many.
    #[error(transparent)]
    Range(#[from] TryFromFloatSecsError),
}

/// Parses a fault script: one `customer_id action` per line, `#` comments and blank lines allowed.
///
/// Actions: `503` (a status), `429:5` (status and Retry-After, sent as written), `drop`,
/// `delay:1500ms` (or `2s`), `late:1500ms` (answer held after the write), `cut` (answer cut off
/// after the write), `cut:429:5` (a status, with Retry-After if given, its body cut off; nothing
/// written), `slowbody:MSms` (the second half of the body that much later), `html` (a
/// proxy's 200 page, nothing written), `big:BYTES` (oversized answer).
pub fn parse_script(text: &str) -> Result<Vec<ScriptedFault>, SimError> {
    let mut faults = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        let content = raw
            .split_once(" #")
            .map_or(raw, |(before, _)| before)
            .trim();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let err = |reason: ScriptError| SimError::Script { line, reason };
        let (id_text, action_text) = content
            .split_once(char::is_whitespace)
            .ok_or_else(|| err(ScriptError::Format))?;
        let customer_id = CustomerId::parse(id_text)
            .ok_or_else(|| err(ScriptError::CustomerId(id_text.to_string())))?;
        let action = parse_action(action_text.trim()).map_err(err)?;
        faults.push(ScriptedFault {
            customer_id,
            action,
        });
    }
    Ok(faults)
}

fn parse_action(text: &str) -> Result<FaultAction, ScriptError> {
    // `name:` in lower or upper case, then the value.
    let value = |name: &str| {
        text.strip_prefix(name)
            .or_else(|| text.strip_prefix(name.to_ascii_uppercase().as_str()))
            .map(str::trim)
    };
    match text.to_ascii_lowercase().as_str() {
        "drop" => return Ok(FaultAction::Drop),
        "cut" => return Ok(FaultAction::Cut),
        "html" => return Ok(FaultAction::Html),
        _ => {}
    }
    if let Some(rest) = value("cut:") {
        return match parse_action(rest)? {
            FaultAction::Status {
                status,
                retry_after,
            } => Ok(FaultAction::CutStatus {
                status,
                retry_after,
            }),
            _ => Err(ScriptError::UnknownAction {
                text: text.to_string(),
            }),
        };
    }
    if let Some(rest) = value("slowbody:") {
        return parse_duration(rest).map(FaultAction::SlowBody);
    }
    if let Some(rest) = value("big:") {
        return rest
            .parse()
            .map(FaultAction::Big)
            .map_err(|source| ScriptError::Size {
                text: rest.to_string(),
                source,
            });
    }
    if let Some(rest) = value("delay:") {
        return parse_duration(rest).map(FaultAction::Delay);
    }
    if let Some(rest) = value("late:") {
        return parse_duration(rest).map(FaultAction::SlowAnswer);
    }
    let (status_text, retry_after) = match text.split_once(':') {
        Some((s, r)) => (s.trim(), Some(r.trim().to_string())),
        None => (text, None),
    };
    let status: u16 = status_text
        .parse()
        .map_err(|_| ScriptError::UnknownAction {
            text: text.to_string(),
        })?;
    if !(400..=599).contains(&status) {
        return Err(ScriptError::NotAnErrorStatus(status));
    }
    if retry_after.as_deref() == Some("") {
        return Err(ScriptError::EmptyRetryAfter(text.to_string()));
    }
    Ok(FaultAction::Status {
        status,
        retry_after,
    })
}

/// `1500ms`, `2s`, or a bare number of milliseconds.
fn parse_duration(text: &str) -> Result<Duration, ScriptError> {
    let read = || -> Result<Duration, DelayError> {
        if let Some(ms) = text.strip_suffix("ms") {
            return Ok(Duration::from_millis(ms.trim().parse()?));
        }
        if let Some(s) = text.strip_suffix('s') {
            let secs: f64 = s.trim().parse()?;
            return Ok(Duration::try_from_secs_f64(secs)?);
        }
        Ok(Duration::from_millis(text.parse()?))
    };
    read().map_err(|source| ScriptError::Delay {
        text: text.to_string(),
        source,
    })
}

/// Decodes an `application/x-www-form-urlencoded` body or query string into pairs.
pub(crate) fn form_decode(text: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(text.as_bytes())
        .into_owned()
        .collect()
}

/// Replaces the values of secret form fields, so a recorded token request leaks nothing.
pub(crate) fn redact_form(text: &str) -> String {
    const SECRETS: [&str; 5] = [
        "client_secret",
        "refresh_token",
        "code",
        "code_verifier",
        "device_code",
    ];
    let redact = |pair: &str| {
        let (k, _) = pair.split_once('=').unwrap_or((pair, ""));
        match form_urlencoded::parse(k.as_bytes()).next() {
            Some((key, _)) if SECRETS.contains(&&*key) => format!("{k}=<redacted>"),
            _ => pair.to_string(),
        }
    };
    text.split('&').map(redact).collect::<Vec<_>>().join("&")
}

/// Formats a time as RFC 3339 UTC with whole seconds, as the service writes `vettingCreateDate`.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m as u32, d as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_format_as_rfc3339() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_607_115_264);
        assert_eq!(rfc3339(t), "2020-12-04T20:54:24Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn forms_decode_and_redact() {
        let pairs = form_decode("a=b+c&d=%2Fx%3D&e&f=%zz");
        assert_eq!(
            pairs,
            vec![
                ("a".into(), "b c".into()),
                ("d".into(), "/x=".into()),
                ("e".into(), "".into()),
                ("f".into(), "%zz".into()),
            ]
        );
        assert_eq!(
            redact_form("grant_type=refresh_token&client_secret=s3&refresh_token=r&x=1"),
            "grant_type=refresh_token&client_secret=<redacted>&refresh_token=<redacted>&x=1"
        );
    }

    #[test]
    fn preload_parses_states_and_optional_columns() {
        let text = "customer_id,qualification\n\
                    AAAAAAAA-1111-4111-8111-000000000001,education\n\
                    aaaaaaaa-1111-4111-8111-000000000001,StateOwnedEntity\n\
                    # a comment\n\
                    aaaaaaaa-1111-4111-8111-000000000002,NotFound\n\
                    aaaaaaaa-1111-4111-8111-000000000003,norelationship\n";
        let entries = parse_preload(text).expect("parses").entries;
        assert_eq!(entries.len(), 4);
        match &entries[0].state {
            PreloadState::Holds(r) => {
                assert_eq!(r.qualification, "Education");
                assert_eq!(r.vetting_status, None);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(entries[0].customer_id, entries[1].customer_id);
        assert!(matches!(entries[2].state, PreloadState::NotFound));
        assert!(matches!(entries[3].state, PreloadState::NoRelationship));
    }

    #[test]
    fn one_reader_gives_entries_and_profiles_and_reports_every_bad_id() {
        let preload = parse_preload(
            "customer_id,qualification,company_name,domain\n\
             aaaaaaaa-0000-4000-8000-000000000001,Education,\"Contoso, Ltd\",contoso.example\n\
             aaaaaaaa-0000-4000-8000-000000000001,StateOwnedEntity,Other name,\n\
             aaaaaaaa-0000-4000-8000-000000000002,Education,,\n\
             aaaaaaaa-0000-4000-8000-000000000003,NotFound,,only.domain.example\n",
        )
        .expect("parses");
        assert_eq!(preload.entries.len(), 4);
        let profiles = &preload.profiles;
        assert_eq!(profiles.len(), 2, "{profiles:?}");
        assert_eq!(profiles[0].customer_id, preload.entries[0].customer_id);
        assert_eq!(profiles[0].company_name, "Contoso, Ltd");
        assert_eq!(profiles[0].domain, "contoso.example");
        assert_eq!(profiles[1].company_name, "Customer 000000000003");
        assert_eq!(profiles[1].domain, "only.domain.example");
        let plain = parse_preload(
            "customer_id,qualification\naaaaaaaa-0000-4000-8000-000000000001,Education\n",
        )
        .expect("no profile columns");
        assert_eq!((plain.entries.len(), plain.profiles.len()), (1, 0));
        // A bad id on a line that only names a profile is reported, not skipped.
        let err = parse_preload(
            "customer_id,qualification,company_name\n\
             aaaaaaaa-0000-4000-8000-000000000001,Education,A\n\
             not-a-guid,Education,B\n",
        )
        .expect_err("bad id");
        assert!(err.to_string().contains("line 3"), "{err}");
    }

    #[test]
    fn preload_rejects_bad_rows() {
        assert!(parse_preload("customer_id,qualification\nnot-a-guid,Education\n").is_err());
        assert!(parse_preload("customer,qualification\n").is_err());
        assert!(parse_preload("customer_id,qualification,colour\n").is_err());
        let err =
            parse_preload("customer_id,qualification\naaaaaaaa-1111-4111-8111-000000000001,\n")
                .expect_err("empty qualification");
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn scripts_parse_every_action() {
        let text = "# header comment\n\n\
                    aaaaaaaa-1111-4111-8111-000000000001 503\n\
                    aaaaaaaa-1111-4111-8111-000000000001 429:5  # throttled once\n\
                    aaaaaaaa-1111-4111-8111-000000000002 drop\n\
                    aaaaaaaa-1111-4111-8111-000000000002 delay:1500ms\n\
                    aaaaaaaa-1111-4111-8111-000000000002 delay:2s\n\
                    aaaaaaaa-1111-4111-8111-000000000002 cut:429:2\n";
        let faults = parse_script(text).expect("parses");
        let actions: Vec<_> = faults.iter().map(|f| f.action.clone()).collect();
        assert_eq!(
            actions,
            vec![
                FaultAction::Status {
                    status: 503,
                    retry_after: None
                },
                FaultAction::Status {
                    status: 429,
                    retry_after: Some("5".into())
                },
                FaultAction::Drop,
                FaultAction::Delay(Duration::from_millis(1500)),
                FaultAction::Delay(Duration::from_secs(2)),
                FaultAction::CutStatus {
                    status: 429,
                    retry_after: Some("2".into())
                },
            ]
        );
        for bad in [
            "aaaaaaaa-1111-4111-8111-000000000001",
            "aaaaaaaa-1111-4111-8111-000000000001 teapot",
            "aaaaaaaa-1111-4111-8111-000000000001 200",
            "aaaaaaaa-1111-4111-8111-000000000001 cut:drop",
            "aaaaaaaa-1111-4111-8111-000000000001 429:",
            "aaaaaaaa-1111-4111-8111-000000000001 delay:soon",
            "nope 503",
        ] {
            let err = parse_script(bad).expect_err(bad);
            assert!(err.to_string().contains("line 1"), "{err}");
        }
    }

    /// The reason a bad script line gives, as its variant and as the text the user reads.
    fn script_error(line: &str) -> ScriptError {
        let text = format!("# comment\n{line}\n");
        match parse_script(&text).expect_err(line) {
            SimError::Script { line: 2, reason } => reason,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn script_errors_name_the_line_and_keep_the_cause() {
        use std::error::Error as _;
        const ID: &str = "aaaaaaaa-1111-4111-8111-000000000001";
        let err = parse_script(&format!("\n{ID} teapot\n")).expect_err("unknown action");
        // As printed (the whole chain): nothing about digits after the list of actions.
        assert_eq!(
            crate::domain::error::chain(&err),
            "script line 2: unknown action \"teapot\"; expected a status like 503, 429:5, drop, delay:1500ms, late:1500ms, cut, slowbody:1500ms, html or big:BYTES"
        );
        // A bad size keeps the number parser's reason, which is about the size.
        let err = parse_script(&format!("{ID} big:lots\n")).expect_err("bad size");
        assert!(
            matches!(err.source(), Some(reason) if reason.source().is_some()),
            "the ParseIntError is kept: {err:?}"
        );

        assert_eq!(script_error(ID), ScriptError::Format);
        assert_eq!(
            script_error("nope 503"),
            ScriptError::CustomerId("nope".into())
        );
        assert_eq!(
            script_error(&format!("{ID} 200")),
            ScriptError::NotAnErrorStatus(200)
        );
        assert_eq!(
            script_error(&format!("{ID} 200")).to_string(),
            "status 200 is not an error status (400-599)"
        );
        assert_eq!(
            script_error(&format!("{ID} 429:")),
            ScriptError::EmptyRetryAfter("429:".into())
        );
        assert_eq!(
            script_error(&format!("{ID} 429:")).to_string(),
            "\"429:\": Retry-After value is empty"
        );

        let size = script_error(&format!("{ID} big:lots"));
        assert!(
            matches!(&size, ScriptError::Size { text, .. } if text == "lots"),
            "{size:?}"
        );
        assert_eq!(
            size.to_string(),
            "bad size \"lots\"; expected a number of bytes, e.g. big:2000000"
        );

        for (action, cause) in [
            ("delay:soon", "invalid digit found in string"),
            ("late:12xms", "invalid digit found in string"),
            ("slowbody:fews", "invalid float literal"),
            (
                "delay:-1s",
                "cannot convert float seconds to Duration: value is negative",
            ),
        ] {
            let err = script_error(&format!("{ID} {action}"));
            let ScriptError::Delay { text, source } = &err else {
                panic!("{action}: {err:?}");
            };
            let (_, written) = action.split_once(':').expect("colon");
            assert_eq!(text, written, "{action}");
            assert_eq!(
                err.to_string(),
                format!("bad delay {written:?}; expected e.g. 1500ms or 2s")
            );
            assert_eq!(source.to_string(), cause, "{action}");
        }
    }
}
