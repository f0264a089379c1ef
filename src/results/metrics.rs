//! The `--metrics` file: one run's figures in the Prometheus text exposition format, for
//! node_exporter's textfile collector.
//!
//! Every metric is a gauge. The file is rewritten at the end of each run with that run's totals, so
//! its values describe the last run rather than grow for the life of a process: exposing them as
//! counters would make every run look like a counter reset to `rate()`, and the per-run figures
//! are what a nightly job alerts on.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::domain::model::Outcome;
use crate::domain::stats::Stats;

/// The metric that [`previous_success`] reads back.
const LAST_SUCCESS: &str = "pc_qualify_last_success_timestamp_seconds";

/// Facts about one finished run that are not in Stats.
pub struct RunFacts<'a> {
    /// The subcommand, used as the `command` label: `run`, `reconcile` or `refresh`.
    pub command: &'a str,
    /// Wall time of the run.
    pub duration: Duration,
    /// When the run ended.
    pub finished_at: SystemTime,
    /// The run ends with exit code 0.
    pub success: bool,
    /// Pool-wide 429 pauses.
    pub pauses: u64,
    /// The request rate's course (`None` when no run got as far as pacing requests).
    pub rate: Option<crate::partner_center::throttle::RateFigures>,
    /// The last success time from the previous file (see [`previous_success`]), written when this
    /// run failed so that a failed run does not erase when the job last worked; `None` drops it.
    pub previous_success: Option<f64>,
}

/// The file's text for one finished run.
///
/// `pc_qualify_last_success_timestamp_seconds` is written when the run succeeded, or else when
/// `facts.previous_success` carries the old value over; since the file is rewritten each run, a
/// failed run without carry-over drops the series and alerts must treat its absence as "never".
pub fn render(stats: &Stats, facts: &RunFacts) -> String {
    let mut out = Exposition {
        text: String::new(),
        command: escape_label(facts.command),
        name: "",
    };

    out.family("pc_qualify_rows", "Rows of the last run by final outcome.");
    for outcome in Outcome::ALL {
        let rows = stats.outcome(outcome) as f64;
        out.sample(&[("outcome", outcome.as_str())], rows);
    }

    let vetting = stats.vetting();
    if !vetting.is_empty() {
        out.family(
            "pc_qualify_rows_by_vetting_status",
            "Rows of the last run by the vetting status the service reported.",
        );
        for (status, count) in &vetting {
            out.sample(&[("vetting_status", status)], *count as f64);
        }
    }

    out.family(
        "pc_qualify_http_requests",
        "HTTP requests of the last run by answer status; status=\"none\" means no answer.",
    );
    for (status, count) in stats.statuses() {
        out.sample(&[("status", &status.to_string())], count as f64);
    }
    out.sample(&[("status", "none")], stats.transport_errors() as f64);

    out.family("pc_qualify_retries", "Resent calls in the last run.");
    out.sample(&[], stats.retries() as f64);
    out.family("pc_qualify_throttled", "429 answers in the last run.");
    out.sample(&[], stats.throttled() as f64);
    out.family(
        "pc_qualify_throttle_pauses",
        "Pool-wide pauses after a 429 in the last run.",
    );
    out.sample(&[], facts.pauses as f64);
    if let Some(rate) = &facts.rate {
        let figures = [("last", rate.last), ("min", rate.min), ("max", rate.max)];
        // An unlimited run that was never throttled has no rate to report.
        if figures.iter().any(|(_, v)| v.is_some()) {
            out.family(
                "pc_qualify_request_rate",
                "Requests per second the pacer allowed in the last run: at the end (last), lowest and highest; mode is fixed, unlimited or auto.",
            );
            for (which, value) in figures {
                if let Some(value) = value {
                    out.sample(&[("mode", rate.mode.name()), ("value", which)], value);
                }
            }
        }
    }

    let quantiles = [
        ("0.5", stats.latency_quantile(0.5)),
        ("0.95", stats.latency_quantile(0.95)),
    ];
    if quantiles.iter().all(|(_, q)| q.is_some()) {
        // A gauge with a quantile label rather than a summary: no _sum/_count to keep consistent.
        out.family(
            "pc_qualify_latency_seconds",
            "HTTP answer latency quantiles of the last run (quantile 1 is the slowest).",
        );
        for (q, value) in quantiles {
            out.sample(&[("quantile", q)], value.unwrap_or_default().as_secs_f64());
        }
        out.sample(&[("quantile", "1")], stats.latency_max().as_secs_f64());
    }

    out.family(
        "pc_qualify_run_duration_seconds",
        "Wall time of the last run.",
    );
    out.sample(&[], facts.duration.as_secs_f64());
    out.family(
        "pc_qualify_last_run_success",
        "1 when the last run exited 0, else 0.",
    );
    out.sample(&[], if facts.success { 1.0 } else { 0.0 });
    out.family(
        "pc_qualify_last_run_timestamp_seconds",
        "When the last run ended, in seconds since the Unix epoch.",
    );
    out.sample(&[], unix_seconds(facts.finished_at));

    let last_success = if facts.success {
        Some(unix_seconds(facts.finished_at))
    } else {
        facts.previous_success
    };
    if let Some(when) = last_success {
        out.family(
            LAST_SUCCESS,
            "When a run last exited 0, in seconds since the Unix epoch.",
        );
        out.sample(&[], when);
    }
    out.text
}

/// The last success time recorded in an earlier metrics file, if it has a readable one.
///
/// The first `pc_qualify_last_success_timestamp_seconds` sample is taken whatever its labels, since
/// each command is expected to have its own file.
pub fn previous_success(path: &Path) -> Option<f64> {
    let text = crate::domain::atomic::read_text(path, crate::domain::atomic::SMALL_FILE).ok()?;
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.strip_prefix(LAST_SUCCESS)
                .is_some_and(|rest| rest.starts_with(['{', ' ']))
        })
        // Our own files never hold `}` inside this sample's labels, so the value follows the last one.
        .filter_map(|line| {
            let value = match line.rfind('}') {
                Some(end) => &line[end + 1..],
                None => &line[LAST_SUCCESS.len()..],
            };
            value.split_whitespace().next()?.parse::<f64>().ok()
        })
        .find(|value| value.is_finite())
}

/// Replaces `path` with `text` so that a reader sees either the old file or the whole new one.
///
/// The text goes to a temporary file in the same directory (named without `.prom`, so the
/// textfile collector ignores it), is synced, made mode 0644 and renamed over `path`.
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    // 0644: node_exporter may run as another user.
    crate::domain::atomic::replace(path, 0o644, |file| file.write_all(text.as_bytes()))
}

fn unix_seconds(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Builds the exposition text family by family, adding the `command` label to every sample.
struct Exposition {
    text: String,
    command: String,
    name: &'static str,
}

impl Exposition {
    /// Starts a gauge family; its samples follow.
    fn family(&mut self, name: &'static str, help: &str) {
        self.name = name;
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} gauge");
    }

    /// One sample of the current family.
    fn sample(&mut self, labels: &[(&str, &str)], value: f64) {
        let _ = write!(self.text, "{}{{command=\"{}\"", self.name, self.command);
        for (name, value) in labels {
            let _ = write!(self.text, ",{name}=\"{}\"", escape_label(value));
        }
        let _ = writeln!(self.text, "}} {}", format_value(value));
    }
}

/// Escapes a label value as the exposition format requires: backslash, double quote, newline.
fn escape_label(value: &str) -> String {
    // Backslashes first, so that the ones the other two add stay single.
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Formats a sample value; Rust's `inf` spelling is not the format's `+Inf` (its `NaN` is).
fn format_value(value: f64) -> String {
    if value.is_infinite() {
        (if value > 0.0 { "+Inf" } else { "-Inf" }).to_string()
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashSet};

    #[test]
    fn values_are_spelled_as_the_format_spells_them() {
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(1.5), "1.5");
    }

    fn facts(success: bool) -> RunFacts<'static> {
        RunFacts {
            command: "run",
            duration: Duration::from_millis(12_500),
            finished_at: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            success,
            pauses: 2,
            rate: Some(crate::partner_center::throttle::RateFigures {
                mode: crate::partner_center::pacer::RateMode::Auto {
                    start: 5.0,
                    max: None,
                },
                last: Some(9.5),
                min: Some(5.0),
                max: Some(20.0),
                floor: 0.5,
            }),
            previous_success: None,
        }
    }

    fn busy_stats() -> Stats {
        let stats = Stats::default();
        for ms in 1..=20u64 {
            stats.record_answer(201, Duration::from_millis(ms));
        }
        stats.record_answer(429, Duration::from_millis(5));
        stats.record_answer(409, Duration::from_millis(7));
        stats.record_transport_error();
        stats.record_retry();
        stats.record_retry();
        for _ in 0..20 {
            stats.record_outcome(Outcome::Created);
        }
        stats.record_outcome(Outcome::Exists);
        stats.record_outcome(Outcome::Failed);
        stats.record_vetting(Some("InReview"));
        stats.record_vetting(Some("Approved"));
        stats.record_vetting(None);
        stats.record_vetting(Some("Odd \"status\"\\with\nnewline"));
        stats
    }

    /// One parsed sample: metric name, labels (unescaped) and value.
    type Sample = (String, BTreeMap<String, String>, f64);

    fn is_metric_name(name: &str) -> bool {
        let mut chars = name.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }

    fn is_label_name(name: &str) -> bool {
        let mut chars = name.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    }

    /// Parses `{a="x",b="y"}` from the start of `text`; returns the labels and the rest.
    fn parse_labels(text: &str) -> Result<(BTreeMap<String, String>, &str), String> {
        let mut labels = BTreeMap::new();
        let mut rest = text.strip_prefix('{').ok_or("labels must start with {")?;
        loop {
            if let Some(after) = rest.strip_prefix('}') {
                return Ok((labels, after));
            }
            let eq = rest.find('=').ok_or("label without =")?;
            let name = &rest[..eq];
            if !is_label_name(name) {
                return Err(format!("bad label name {name:?}"));
            }
            rest = rest[eq + 1..]
                .strip_prefix('"')
                .ok_or("label value must be quoted")?;
            let mut value = String::new();
            let mut chars = rest.char_indices();
            let end = loop {
                match chars.next().ok_or("unterminated label value")? {
                    (i, '"') => break i,
                    (_, '\\') => match chars.next().ok_or("dangling backslash")?.1 {
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        'n' => value.push('\n'),
                        other => return Err(format!("bad escape \\{other}")),
                    },
                    (_, '\n') => return Err("raw newline in label value".into()),
                    (_, c) => value.push(c),
                }
            };
            rest = &rest[end + 1..];
            if labels.insert(name.to_string(), value).is_some() {
                return Err(format!("label {name} repeated"));
            }
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
    }

    /// A strict reading of the text format as this module writes it: every family has HELP then
    /// TYPE before its samples, samples are `name{labels} value`, no family or series repeats.
    fn validate(text: &str) -> Result<Vec<Sample>, String> {
        if !text.ends_with('\n') {
            return Err("must end with a newline".into());
        }
        let mut samples = Vec::new();
        let mut families = HashSet::new();
        let mut series = HashSet::new();
        let mut help: Option<String> = None;
        let mut current: Option<String> = None;
        for (n, line) in text.lines().enumerate() {
            let n = n + 1;
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap_or_default();
                if !is_metric_name(name) || !families.insert(name.to_string()) {
                    return Err(format!("line {n}: bad or repeated family {name:?}"));
                }
                help = Some(name.to_string());
                current = None;
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split(' ');
                let name = parts.next().unwrap_or_default();
                if help.as_deref() != Some(name) {
                    return Err(format!("line {n}: TYPE without HELP for {name}"));
                }
                if parts.next() != Some("gauge") || parts.next().is_some() {
                    return Err(format!("line {n}: TYPE must be gauge"));
                }
                current = Some(name.to_string());
                help = None;
            } else if line.starts_with('#') || line.is_empty() {
                return Err(format!("line {n}: unexpected {line:?}"));
            } else {
                let brace = line.find('{').ok_or(format!("line {n}: no labels"))?;
                let name = &line[..brace];
                if current.as_deref() != Some(name) {
                    return Err(format!("line {n}: sample {name} outside its family"));
                }
                let (labels, rest) =
                    parse_labels(&line[brace..]).map_err(|e| format!("line {n}: {e}"))?;
                let value = rest
                    .strip_prefix(' ')
                    .ok_or(format!("line {n}: one space before the value"))?;
                let value: f64 = match value {
                    "+Inf" => f64::INFINITY,
                    "-Inf" => f64::NEG_INFINITY,
                    "NaN" => f64::NAN,
                    // Rust also parses `inf`, `nan` and a leading `+`, which the format does not allow.
                    v if v.is_empty()
                        || v.starts_with('+')
                        || !v.chars().all(|c| c.is_ascii_digit() || ".eE+-".contains(c)) =>
                    {
                        return Err(format!("line {n}: bad value {v:?}"))
                    }
                    v => v
                        .parse()
                        .map_err(|_| format!("line {n}: bad value {v:?}"))?,
                };
                if !series.insert((name.to_string(), labels.clone())) {
                    return Err(format!("line {n}: duplicate series"));
                }
                samples.push((name.to_string(), labels, value));
            }
        }
        if help.is_some() {
            return Err("HELP without TYPE at the end".into());
        }
        Ok(samples)
    }

    fn value(samples: &[Sample], name: &str, label: Option<(&str, &str)>) -> Option<f64> {
        samples
            .iter()
            .find(|(n, labels, _)| {
                n == name
                    && labels.get("command").map(String::as_str) == Some("run")
                    && label.is_none_or(|(k, v)| labels.get(k).map(String::as_str) == Some(v))
            })
            .map(|(_, _, v)| *v)
    }

    #[test]
    fn rendered_text_is_valid_and_complete() {
        let text = render(&busy_stats(), &facts(true));
        let samples = validate(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        for (_, labels, _) in &samples {
            assert_eq!(labels.get("command").map(String::as_str), Some("run"));
        }
        let get = |name, label| value(&samples, name, label);
        assert_eq!(
            get("pc_qualify_rows", Some(("outcome", "created"))),
            Some(20.0)
        );
        assert_eq!(
            get("pc_qualify_rows", Some(("outcome", "exists"))),
            Some(1.0)
        );
        assert_eq!(
            get("pc_qualify_rows", Some(("outcome", "planned"))),
            Some(0.0)
        );
        for outcome in Outcome::ALL {
            assert!(get("pc_qualify_rows", Some(("outcome", outcome.as_str()))).is_some());
        }
        let vetting = |s| {
            get(
                "pc_qualify_rows_by_vetting_status",
                Some(("vetting_status", s)),
            )
        };
        assert_eq!(vetting("InReview"), Some(1.0));
        assert_eq!(vetting("none"), Some(1.0));
        assert_eq!(vetting("Odd \"status\"\\with\nnewline"), Some(1.0));
        assert!(text.contains(r#"vetting_status="Odd \"status\"\\with\nnewline""#));
        let status = |s| get("pc_qualify_http_requests", Some(("status", s)));
        assert_eq!(status("201"), Some(20.0));
        assert_eq!(status("429"), Some(1.0));
        assert_eq!(status("none"), Some(1.0));
        assert_eq!(get("pc_qualify_retries", None), Some(2.0));
        assert_eq!(get("pc_qualify_throttled", None), Some(1.0));
        assert_eq!(get("pc_qualify_throttle_pauses", None), Some(2.0));
        assert_eq!(get("pc_qualify_run_duration_seconds", None), Some(12.5));
        assert_eq!(get("pc_qualify_last_run_success", None), Some(1.0));
        assert_eq!(
            get("pc_qualify_last_run_timestamp_seconds", None),
            Some(1_700_000_000.0)
        );
        assert_eq!(get(LAST_SUCCESS, None), Some(1_700_000_000.0));
        let quantile = |q| get("pc_qualify_latency_seconds", Some(("quantile", q)));
        let (p50, p95, max) = (quantile("0.5"), quantile("0.95"), quantile("1"));
        assert!(p50.is_some_and(|v| (0.009..=0.012).contains(&v)), "{p50:?}");
        assert!(p50 <= p95 && p95 <= max, "{p50:?} {p95:?} {max:?}");
        assert_eq!(max, Some(0.02));
    }

    #[test]
    fn validator_rejects_malformed_text() {
        let good = "# HELP a_b x\n# TYPE a_b gauge\na_b{command=\"run\"} 1\n";
        assert!(validate(good).is_ok());
        for bad in [
            "a_b{command=\"run\"} 1\n",
            "# TYPE a_b gauge\na_b{command=\"run\"} 1\n",
            "# HELP a_b x\n# TYPE a_b gauge\na_b{command=\"run\"} 1",
            "# HELP a_b x\n# TYPE a_b counter\na_b{command=\"run\"} 1\n",
            "# HELP 1ab x\n# TYPE 1ab gauge\n1ab{command=\"run\"} 1\n",
            "# HELP a_b x\n# TYPE a_b gauge\na_b{command=\"r\"un\"} 1\n",
            "# HELP a_b x\n# TYPE a_b gauge\na_b{command=\"r\\un\"} 1\n",
            "# HELP a_b x\n# TYPE a_b gauge\na_b{command=\"run\"} inf\n",
            "# HELP a_b x\n# TYPE a_b gauge\na_b{command=\"run\"}  1\n",
            "# HELP a_b x\n# TYPE a_b gauge\na_b{command=\"run\"} 1\na_b{command=\"run\"} 2\n",
            "# HELP a_b x\n# TYPE a_b gauge\nc_d{command=\"run\"} 1\n",
            "# HELP a_b x\n# TYPE a_b gauge\n# HELP a_b x\n# TYPE a_b gauge\n",
        ] {
            assert!(validate(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn empty_run_is_valid_and_has_every_outcome() {
        let text = render(&Stats::default(), &facts(true));
        let samples = validate(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let rows = samples.iter().filter(|(n, _, _)| n == "pc_qualify_rows");
        assert_eq!(rows.count(), Outcome::ALL.len());
        assert!(!text.contains("pc_qualify_latency_seconds"));
        assert!(!text.contains("pc_qualify_rows_by_vetting_status"));
    }

    #[test]
    fn failed_run_drops_or_carries_last_success() {
        let text = render(&busy_stats(), &facts(false));
        validate(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(!text.contains(LAST_SUCCESS));
        assert!(text.contains("pc_qualify_last_run_success{command=\"run\"} 0\n"));

        let carried = RunFacts {
            previous_success: Some(1_600_000_000.25),
            ..facts(false)
        };
        let text = render(&busy_stats(), &carried);
        let samples = validate(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(value(&samples, LAST_SUCCESS, None), Some(1_600_000_000.25));
    }

    #[test]
    fn previous_success_reads_back_what_render_wrote() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("pc.prom");
        assert_eq!(previous_success(&path), None);
        write_atomic(&path, &render(&busy_stats(), &facts(true))).expect("write");
        assert_eq!(previous_success(&path), Some(1_700_000_000.0));
        write_atomic(&path, &render(&busy_stats(), &facts(false))).expect("write");
        assert_eq!(previous_success(&path), None);
        std::fs::write(
            &path,
            "# HELP x\npc_qualify_last_success_timestamp_seconds 12.5\n",
        )
        .expect("write");
        assert_eq!(previous_success(&path), Some(12.5));
        std::fs::write(&path, "pc_qualify_last_success_timestamp_seconds_other 1\n")
            .expect("write");
        assert_eq!(previous_success(&path), None);
    }

    #[test]
    fn write_atomic_replaces_the_textfile_readable_by_the_collector() {
        // The temp-file-and-rename itself is domain::atomic's (tested there).
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("pc_qualify.prom");
        write_atomic(&path, "new\n").expect("write");
        write_atomic(&path, "newer\n").expect("write again");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "newer\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o644);
        }
    }

    #[test]
    fn write_atomic_reports_a_missing_directory_and_leaves_nothing() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("absent").join("pc.prom");
        assert!(write_atomic(&path, "x\n").is_err());
        assert!(write_atomic(Path::new("/"), "x\n").is_err());
        assert!(!dir.path().join("absent").exists());
    }
}
