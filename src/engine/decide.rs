//! What a worker does with one row: post it (`run`), read first and post only what is missing
//! (`reconcile`), or plan it (`--dry-run`); and how the deciding call is described in the results.

use std::sync::Arc;
use std::time::Instant;

use uuid::Uuid;

use crate::domain::model::{
    ApiContract, CustomerId, Outcome, Qualification, QualificationRecord, ResultRow, Row,
};
use crate::partner_center::api;
use crate::partner_center::client::{Client, Exchange, Reply};

/// Which job the workers do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Post every valid row.
    Run,
    /// Read each customer's qualifications first; post only the missing ones.
    Reconcile {
        /// Post again where vetting was Denied (spends one of the customer's three vetting requests).
        retry_denied: bool,
    },
}

/// One row handed to a worker.
pub struct Work {
    /// The validated row.
    pub row: Row,
    /// The row's `MS-RequestId` for its create call: already in the journal, or carried over
    /// from an interrupted run (see [`crate::results::resume`]).
    pub request_id: Uuid,
}

/// Everything a worker shares with the others.
pub struct Worker {
    /// The API client; `None` for a `run --dry-run`, which sends nothing.
    pub client: Option<Arc<Client>>,
    /// Request contract for creates.
    pub contract: ApiContract,
    /// Run or reconcile.
    pub mode: Mode,
    /// Plan writes instead of sending them.
    pub dry_run: bool,
    /// Where a create's retry request ids are journalled before they are sent (`None`: no
    /// journal, e.g. results to standard output).
    pub journal: Option<crate::results::resume::Appender>,
}

impl Worker {
    /// Processes one row to its results row; never fails (failures are outcomes).
    pub async fn process(&self, work: &Work) -> ResultRow {
        let started = Instant::now();
        let (row, request_id) = (&work.row, work.request_id);
        let mut result = base_row(row);
        match (&self.client, self.mode) {
            (Some(client), Mode::Reconcile { retry_denied }) => {
                self.reconcile(client, row, request_id, retry_denied, &mut result)
                    .await
            }
            (Some(client), Mode::Run) if !self.dry_run => {
                self.create(client, row, request_id, &mut result).await
            }
            _ => result.outcome = Some(Outcome::Planned),
        }
        if let Some(note) = row.qualification.spec().forbidden_note {
            explain_forbidden(&mut result, note);
        }
        result.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        log_row(&result);
        result
    }

    /// Reads the customer's qualifications, then decides: exists, planned, or create.
    async fn reconcile(
        &self,
        client: &Client,
        row: &Row,
        request_id: Uuid,
        retry_denied: bool,
        result: &mut ResultRow,
    ) {
        let read = read_list(client, row.customer_id).await;
        let held = read_record(&read, row.qualification);
        let decision = held
            .as_ref()
            .map(|held| reconcile_decision(held.as_ref(), retry_denied, self.dry_run));
        let outcome = match decision {
            Ok(ReconcileDecision::Create) => {
                return self.create(client, row, request_id, result).await
            }
            Ok(ReconcileDecision::Exists) => Outcome::Exists,
            Ok(ReconcileDecision::Plan) => Outcome::Planned,
            Err(_) => Outcome::Failed,
        };
        describe_call(result, &read);
        result.outcome = Some(outcome);
        if let (Outcome::Exists, Ok(Some(record))) = (outcome, held) {
            set_vetting(result, record);
        }
    }

    /// Posts the row; a 409 becomes `exists` with the vetting status read back.
    async fn create(&self, client: &Client, row: &Row, request_id: Uuid, result: &mut ResultRow) {
        let request = api::create_request(row, self.contract);
        let note = |id| match &self.journal {
            Some(journal) => journal.append(row, id).map_err(|e| e.to_string()),
            None => Ok(()),
        };
        let exchange = client.send_noted(&request, request_id, &note).await;
        describe_call(result, &exchange);
        match &exchange.reply {
            Reply::Answer { status, body } if (200..300).contains(status) => {
                if let Some(vetting) = api::parse_create_answer(body, row.qualification) {
                    result.outcome = Some(Outcome::Created);
                    set_vetting(result, vetting);
                } else {
                    // A 2xx that is not Partner Center's answer for this qualification (a proxy's
                    // sign-in page, a body cut short, a record of another qualification) proves
                    // nothing: only the customer's list can.
                    self.confirm(client, row, *status, result).await;
                }
            }
            Reply::Answer { status: 409, .. } => {
                result.outcome = Some(Outcome::Exists);
                result.error_code = None;
                // The conflict answer says nothing about vetting; the customer's list does.
                let read = read_list(client, row.customer_id).await;
                result.error_message = match read_record(&read, row.qualification) {
                    Ok(Some(record)) => {
                        set_vetting(result, record);
                        None
                    }
                    Ok(None) => Some("the service answered 409 but the customer's list does not show the qualification".into()),
                    Err(reason) => Some(format!("vetting status not read: {reason}")),
                };
            }
            _ => result.outcome = Some(Outcome::Failed),
        }
        // Failed on an answer: its id is spent, and nothing of this row is in doubt. A nil id
        // after it in the journal says so to a resume, which would otherwise send the answered
        // id again (and a service keying idempotency on it answers with the same failure), even
        // once an earlier resume has dropped this failed row from the results file.
        if let (Some(Outcome::Failed), Some(_), Some(journal)) =
            (result.outcome, exchange.answered, &self.journal)
        {
            if let Err(e) = journal.append(row, Uuid::nil()) {
                tracing::warn!(row = row.index, error = %e, "the journal could not note that the row's request id was answered");
            }
        }
    }

    /// After a 2xx whose body does not show the posted qualification: `created` only when the
    /// customer's list shows it, else `failed` with `error_code` `unconfirmed`.
    async fn confirm(&self, client: &Client, row: &Row, status: u16, result: &mut ResultRow) {
        match read_record(&read_list(client, row.customer_id).await, row.qualification) {
            Ok(Some(record)) => {
                result.outcome = Some(Outcome::Created);
                set_vetting(result, record);
                result.error_message = Some(format!(
                    "the service answered {status} with a body that does not show {}; the customer's list confirms it", row.qualification.as_str()
                ));
            }
            other => {
                result.outcome = Some(Outcome::Failed);
                result.error_code = Some("unconfirmed".into());
                let qualification = row.qualification.as_str();
                result.error_message = Some(match other {
                    Err(reason) => format!(
                        "the answer was {status} with a body that does not show {qualification}, and the customer's list could not be read to confirm it: {reason}"
                    ),
                    _ => format!(
                        "the answer was {status} with a body that does not show {qualification} (a proxy page? another qualification's record?), and the customer's list does not show it either: not created"
                    ),
                });
            }
        }
    }
}

/// What `reconcile` does with a row once the customer's qualifications are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReconcileDecision {
    /// Held already: nothing is posted.
    Exists,
    /// Would be posted, but this is a dry run.
    Plan,
    /// Post it.
    Create,
}

/// The reconcile decision matrix, apart from any I/O: a held qualification is left alone (a
/// Denied one too, unless `retry_denied`: each vetting request is one of the customer's three).
pub(crate) fn reconcile_decision(
    held: Option<&QualificationRecord>,
    retry_denied: bool,
    dry_run: bool,
) -> ReconcileDecision {
    let denied = held.is_some_and(|r| {
        r.vetting_status
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("Denied"))
    });
    match held {
        Some(_) if !(denied && retry_denied) => ReconcileDecision::Exists,
        _ if dry_run => ReconcileDecision::Plan,
        _ => ReconcileDecision::Create,
    }
}

/// A 403 usually means something the service's own text does not say (for GCC: the GDAP roles
/// the partner user lacks on that customer); the qualification's note in the table says it.
fn explain_forbidden(result: &mut ResultRow, note: &str) {
    if result.http_status != Some(403) {
        return;
    }
    result.error_message = Some(match result.error_message.take() {
        Some(message) if !message.is_empty() => format!("{message} ({note})"),
        _ => note.to_string(),
    });
}

/// Fills the columns that describe the deciding call, and its error for a failure.
pub fn describe_call(result: &mut ResultRow, exchange: &Exchange) {
    result.attempts = exchange.attempts;
    result.correlation_id = exchange.correlation_id;
    result.request_id = Some(exchange.request_id);
    let attempts = exchange.attempts;
    let (status, code, message) = match &exchange.reply {
        Reply::Answer { status, .. } if (200..300).contains(status) => (Some(*status), None, None),
        Reply::Answer { status, body } => {
            let error = api::parse_error_body(body);
            let message = error
                .message
                .unwrap_or_else(|| format!("HTTP {status} after {attempts} attempt(s)"));
            (Some(*status), error.code, Some(message))
        }
        Reply::Transport(reason) => (
            None,
            Some("transport".into()),
            Some(format!("{reason} (after {attempts} attempt(s))")),
        ),
        // Ended before a resend: the status is the answer the deciding request id got, if any
        // (a 429 or 503 it was waiting after), so that `--resume` sees that id is spent.
        Reply::Token(reason) => {
            let reason = Some(api::sanitize(reason));
            (exchange.answered, Some("token".into()), reason)
        }
        Reply::Stopped(reason) => {
            let reason = Some(api::sanitize(reason));
            (exchange.answered, Some("stopped".into()), reason)
        }
    };
    (result.http_status, result.error_code) = (status, code);
    // Why the client gave up on an answer it would otherwise retry says more than the answer.
    result.error_message = exchange.note.as_deref().map(api::sanitize).or(message);
}

/// Reads the customer's qualifications (a call of its own, with its own request id).
pub(crate) async fn read_list(client: &Client, customer: CustomerId) -> Exchange {
    let request_id = crate::partner_center::client::new_uuid();
    client.send(&api::list_request(customer), request_id).await
}

/// The customer's record for `qualification` from a list read (`Ok(None)`: not held), or why
/// the read did not tell, as text for a results cell.
pub fn read_record(
    exchange: &Exchange,
    qualification: Qualification,
) -> Result<Option<QualificationRecord>, String> {
    match &exchange.reply {
        Reply::Answer { status, body } if (200..300).contains(status) => {
            let list = api::parse_qualification_list(body).map_err(|e| e.to_string())?;
            Ok(api::find_qualification(list, qualification))
        }
        Reply::Answer { status, body } => {
            let message = api::parse_error_body(body).message;
            let message = message.map(|m| format!(": {m}")).unwrap_or_default();
            Err(format!("GET answered {status}{message}"))
        }
        Reply::Transport(reason) | Reply::Token(reason) | Reply::Stopped(reason) => {
            Err(api::sanitize(reason))
        }
    }
}

/// Copies vetting fields into the results row, made safe for one CSV cell.
pub fn set_vetting(result: &mut ResultRow, record: QualificationRecord) {
    result.vetting_status = record.vetting_status.map(api::sanitize_owned);
    result.vetting_reason = record.vetting_reason.map(api::sanitize_owned);
    result.vetting_create_date = record.vetting_create_date.map(api::sanitize_owned);
}

/// A row's results row before any call is made for it.
pub(crate) fn base_row(row: &Row) -> ResultRow {
    ResultRow {
        row: row.index,
        customer_id: row.customer_id.to_lower_string(),
        qualification: row.qualification.as_str().to_string(),
        ..ResultRow::default()
    }
}

/// A text field of a row event, empty when absent (borrowed: this runs once per row).
fn text(field: &Option<String>) -> &str {
    field.as_deref().unwrap_or("")
}

fn display_id(id: Option<Uuid>) -> tracing::field::DisplayValue<String> {
    tracing::field::display(id.map(|id| id.to_string()).unwrap_or_default())
}

/// Log target of the one-event-per-row lines, so text logs can leave them out by default
/// while `--log-format json` keeps them for log shippers.
pub const ROW_LOG_TARGET: &str = "pc_qualify::rows";

/// One log event per finished row: a warning for failures, info otherwise.
pub fn log_row(result: &ResultRow) {
    let outcome = result.outcome.map_or("", |o| o.as_str());
    // tracing's levels are fixed per call site: one event, written at two levels with the
    // fields each outcome has (docs/operations.md).
    macro_rules! row_event {
        ($level:ident, $message:literal, $($fields:tt)*) => {
            tracing::$level!(
                target: ROW_LOG_TARGET,
                row = result.row,
                customer_id = %result.customer_id,
                outcome,
                http_status = result.http_status,
                $($fields)*
                request_id = display_id(result.request_id),
                correlation_id = display_id(result.correlation_id),
                $message
            )
        };
    }
    match result.outcome {
        Some(Outcome::Failed) => row_event!(
            warn,
            "row failed",
            error_code = text(&result.error_code),
            error = text(&result.error_message),
        ),
        _ => row_event!(
            info,
            "row done",
            vetting_status = text(&result.vetting_status),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(status: Option<&str>) -> QualificationRecord {
        QualificationRecord {
            qualification: Qualification::Education.as_str().to_string(),
            vetting_status: status.map(str::to_string),
            ..QualificationRecord::default()
        }
    }

    /// Regression (with `--resume`): a call stopped while waiting to resend after a 429 left
    /// `http_status` empty, so a resume took its spent request id for one in doubt and sent it
    /// again; the row now carries the status that id was answered with.
    #[test]
    fn a_call_stopped_after_an_answer_reports_that_answers_status() {
        let exchange = |reply: Reply, answered: Option<u16>| Exchange {
            reply,
            attempts: 1,
            correlation_id: None,
            request_id: uuid::Uuid::from_u128(1),
            answered,
            note: None,
        };
        let mut row = ResultRow::default();
        let stopped = Reply::Stopped("not sent again: the run was stopped".into());
        describe_call(&mut row, &exchange(stopped.clone(), Some(429)));
        assert_eq!(
            (row.http_status, row.error_code.as_deref()),
            (Some(429), Some("stopped"))
        );
        // Stopped before its first send, or after a send that got no answer: nothing to report.
        describe_call(&mut row, &exchange(stopped, None));
        assert_eq!(row.http_status, None);
    }

    #[test]
    fn the_reconcile_decision_matrix() {
        use ReconcileDecision::*;
        let approved = held(Some("Approved"));
        let in_review = held(Some("InReview"));
        let no_status = held(None);
        let denied = held(Some("Denied"));
        let denied_lower = held(Some("denied"));
        // (held, retry_denied, dry_run) -> decision
        let cases: [(Option<&QualificationRecord>, bool, bool, ReconcileDecision); 16] = [
            (None, false, false, Create),
            (None, true, false, Create),
            (None, false, true, Plan),
            (None, true, true, Plan),
            (Some(&approved), false, false, Exists),
            (Some(&approved), true, false, Exists),
            (Some(&approved), false, true, Exists),
            (Some(&in_review), true, true, Exists),
            (Some(&no_status), true, false, Exists),
            (Some(&denied), false, false, Exists),
            (Some(&denied), false, true, Exists),
            (Some(&denied), true, false, Create),
            (Some(&denied), true, true, Plan),
            (Some(&denied_lower), true, false, Create),
            (Some(&denied_lower), false, false, Exists),
            (Some(&no_status), false, true, Exists),
        ];
        for (record, retry_denied, dry_run, expected) in cases {
            assert_eq!(
                reconcile_decision(record, retry_denied, dry_run),
                expected,
                "held {:?}, retry_denied {retry_denied}, dry_run {dry_run}",
                record.map(|r| r.vetting_status.clone())
            );
        }
    }

    #[test]
    fn only_json_naming_the_posted_qualification_counts_as_a_create_answer() {
        use crate::domain::model::Qualification::{Education, StateOwnedEntity};
        for (body, posted) in [
            (
                &br#"{"qualification":"StateOwnedEntity","vettingStatus":"Approved"}"#[..],
                StateOwnedEntity,
            ),
            (br#"{"Qualification":"Education"}"#, Education),
            (
                br#"{"qualifications":[{"qualification":"Education"}]}"#,
                Education,
            ),
            (br#"{"items":[{"Qualification":"Education"}]}"#, Education),
            (br#"[{"qualification":"Education"}]"#, Education),
        ] {
            assert!(
                api::parse_create_answer(body, posted).is_some(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        for (body, posted) in [
            (&b""[..], Education),
            (b"<html><body>Sign in</body></html>", Education),
            (br#"{"statusCode":200}"#, Education),
            (br#"{"qualification":"Educ"#, Education),
            (b"null", Education),
            (br#"[]"#, Education),
            // Another qualification's record does not answer this create.
            (
                br#"{"qualification":"StateOwnedEntity","vettingStatus":"Approved"}"#,
                Education,
            ),
            (br#"[{"qualification":"Education"}]"#, StateOwnedEntity),
        ] {
            assert!(
                api::parse_create_answer(body, posted).is_none(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
