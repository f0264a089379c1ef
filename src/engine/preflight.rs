//! Checks made before the first row is sent: which GCC validation code to use, whether it has
//! creates left for every GCC row, and what a dry run shows of the request it would send.

use crate::engine::JobError;
use crate::partner_center::api::{self, Request, ValidationCode};
use crate::partner_center::client::{Client, Reply};

/// Reads the partner's validation codes and picks one: the only one, or the one of `org`.
pub async fn validation_code(
    client: &Client,
    org: Option<&str>,
) -> Result<ValidationCode, JobError> {
    let request_id = crate::partner_center::client::new_uuid();
    let exchange = client.send(&api::validations_request(), request_id).await;
    let reason = match &exchange.reply {
        Reply::Answer { status, body } if (200..300).contains(status) => {
            let codes = api::parse_validations(body).map_err(JobError::ValidationCodes)?;
            return choose_code(codes, org);
        }
        Reply::Answer { status: 404, .. } => no_codes("404"),
        Reply::Answer { status, body } => {
            let message = api::parse_error_body(body).message;
            let message = message.map(|m| format!(": {m}")).unwrap_or_default();
            format!("reading validation codes answered {status}{message}")
        }
        Reply::Transport(reason) | Reply::Token(reason) | Reply::Stopped(reason) => {
            format!("reading validation codes failed: {reason}")
        }
    };
    Err(JobError::Preflight(reason))
}

/// Why no code could be read, and what to do: Microsoft's "Get a partner's validation codes"
/// (which applies to Partner Center for Microsoft Cloud for US Government) lists codes only after
/// the partner's validation is confirmed through the GCC Eligibility Intake Form.
fn no_codes(answer: &str) -> String {
    format!(
        "--validation-code auto: the validation codes endpoint answered {answer}: the partner has no GovernmentCommunityCloud validation codes. Codes exist only once the Government Community Cloud Eligibility Intake Form is approved, and the endpoint serves Partner Center for Microsoft Cloud for US Government; set --validation-code to a code you were given, or leave the GCC rows out"
    )
}

/// The rule behind `--validation-code auto`, apart from the network.
pub fn choose_code(
    mut codes: Vec<ValidationCode>,
    org: Option<&str>,
) -> Result<ValidationCode, JobError> {
    let listing = |codes: &[ValidationCode]| {
        codes
            .iter()
            .map(|c| format!("{:?} ({})", c.organization_name, c.validation_id))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(org) = org {
        let wanted = org.trim();
        let mut matches = codes
            .iter()
            .filter(|c| c.organization_name.trim().eq_ignore_ascii_case(wanted));
        return match (matches.next(), matches.next()) {
            (Some(code), None) => Ok(code.clone()),
            (Some(_), Some(_)) => Err(JobError::Preflight(format!(
                "several validation codes belong to {wanted:?}; set --validation-code to one of: {}",
                listing(&codes)
            ))),
            (None, _) => Err(JobError::Preflight(format!(
                "no validation code belongs to {wanted:?}; the partner's codes are: {}",
                listing(&codes)
            ))),
        };
    }
    match codes.len() {
        0 => Err(JobError::Preflight(no_codes("an empty list"))),
        1 => Ok(codes.swap_remove(0)),
        _ => Err(JobError::Preflight(format!(
            "--validation-code auto found several codes; pick one with --validation-org NAME: {}",
            listing(&codes)
        ))),
    }
}

/// Refuses a run whose GCC rows cannot all succeed with the code's remaining creates.
pub fn check_remaining_creates(code: &ValidationCode, rows: u64) -> Result<(), JobError> {
    match code.remaining_creates {
        Some(remaining) if rows > remaining => Err(JobError::Preflight(format!(
            "{rows} GovernmentCommunityCloud row(s) need validation code {} ({}), which has only {remaining} create(s) left",
            code.validation_id, code.organization_name
        ))),
        _ => Ok(()),
    }
}

/// The request a dry run would send, as text, with the token masked.
pub fn describe_request(base_url: &str, request: &Request) -> String {
    let mut text = format!(
        "{} {base_url}{}\n{}",
        request.method,
        request.path_and_query,
        concat!(
            "Authorization: Bearer ***\n",
            "Accept: application/json\n",
            "Content-Type: application/json\n",
            "MS-RequestId: <a new UUID per row, and per retry after an answer>\n",
            "MS-CorrelationId: <a new UUID per send>\n",
            "MS-Contract-Version: v1\n",
            "X-Locale: <--locale, en-US by default>\n",
            "MS-PartnerCenter-Application: pc-qualify/",
            env!("CARGO_PKG_VERSION"),
            "\n",
        )
    );
    if let Some(body) = &request.body {
        text.push('\n');
        text.push_str(&String::from_utf8_lossy(body));
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(id: &str, org: &str, remaining: Option<u64>) -> ValidationCode {
        ValidationCode {
            validation_id: id.into(),
            organization_name: org.into(),
            remaining_creates: remaining,
        }
    }

    #[test]
    fn auto_picks_the_only_code_or_the_named_organization() {
        assert_eq!(
            choose_code(vec![code("1", "A", None)], None)
                .expect("one")
                .validation_id,
            "1"
        );
        let two = vec![code("1", "A", None), code("2", "B", Some(4))];
        let err = choose_code(two.clone(), None)
            .expect_err("ambiguous")
            .to_string();
        assert!(
            err.contains("\"A\" (1)") && err.contains("\"B\" (2)"),
            "{err}"
        );
        assert_eq!(
            choose_code(two.clone(), Some("b"))
                .expect("b")
                .validation_id,
            "2"
        );
        assert!(choose_code(two, Some("C")).is_err());
        assert!(choose_code(vec![], None).is_err());
    }

    #[test]
    fn remaining_creates_must_cover_the_rows() {
        assert!(check_remaining_creates(&code("1", "A", Some(2)), 2).is_ok());
        assert!(check_remaining_creates(&code("1", "A", Some(2)), 3).is_err());
        assert!(check_remaining_creates(&code("1", "A", None), 1000).is_ok());
    }
}
