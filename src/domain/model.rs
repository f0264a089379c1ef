//! The domain vocabulary shared by every stage: customers, qualifications, rows and outcomes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use super::qualification::{Qualification, QualificationError};

/// A customer's tenant id; always displayed lower-case and hyphenated, as the API expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CustomerId(pub Uuid);

impl CustomerId {
    /// Parses a GUID in any case, with or without braces; rejects anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let inner = text
            .strip_prefix('{')
            .and_then(|t| t.strip_suffix('}'))
            .unwrap_or(text);
        // Only the canonical 8-4-4-4-12 form: a bare 32-hex string is far more likely a typo.
        if inner.len() != 36 {
            return None;
        }
        Uuid::parse_str(inner).ok().map(CustomerId)
    }

    /// The id as a 128-bit integer, for compact indexes.
    pub fn as_u128(&self) -> u128 {
        self.0.as_u128()
    }

    /// The lower-case hyphenated form, written without the formatting machinery (once per row).
    pub fn to_lower_string(&self) -> String {
        let mut buf = Uuid::encode_buffer();
        self.0.hyphenated().encode_lower(&mut buf).to_owned()
    }
}

impl fmt::Display for CustomerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

/// Longest folded cell [`folded`] keeps: every value the enums accept is shorter.
pub(crate) const SHORT_KEY: usize = 32;

/// A cell lower-cased (ASCII) without `-`, `_`, spaces or tabs, so spellings like `K-12` and
/// `k12` compare equal; into a stack buffer, for the cells parsed on every row. `"\u{0}"` (which
/// matches nothing) when the folded text is longer than any accepted value or not ASCII.
pub(crate) fn folded<'a>(text: &str, buf: &'a mut [u8; SHORT_KEY]) -> &'a str {
    let mut len = 0;
    for &b in text.trim().as_bytes() {
        if matches!(b, b'-' | b'_' | b' ' | b'\t') {
            continue;
        }
        if !b.is_ascii() || len == SHORT_KEY {
            return "\u{0}";
        }
        buf[len] = b.to_ascii_lowercase();
        len += 1;
    }
    std::str::from_utf8(&buf[..len]).unwrap_or("\u{0}")
}

/// The education segment the 2022 contract requires for Education.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EducationSegment {
    /// Primary and secondary schools.
    K12,
    /// Universities and colleges.
    HigherEducation,
}

impl EducationSegment {
    /// The canonical spelling the API uses.
    pub fn as_str(&self) -> &'static str {
        match self {
            EducationSegment::K12 => "K12",
            EducationSegment::HigherEducation => "HigherEducation",
        }
    }

    /// Parses `K12`/`K-12` or `HigherEducation`/`Higher Education`, case-insensitively.
    pub fn parse(text: &str) -> Option<Self> {
        let mut buf = [0u8; SHORT_KEY];
        match folded(text, &mut buf) {
            "k12" => Some(EducationSegment::K12),
            "highereducation" => Some(EducationSegment::HigherEducation),
            _ => None,
        }
    }
}

impl fmt::Display for EducationSegment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an education segment or API contract setting (`--education-segment`, `--api-contract`
/// or the settings file) was not accepted. The text given is kept as written so that the
/// message shows what the user typed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SettingValueError {
    /// Not K12 or HigherEducation (in any of their spellings).
    #[error("unknown education segment {0:?}; expected K12 or HigherEducation")]
    EducationSegment(String),
    /// Not 2021 or 2022.
    #[error("unknown API contract {0:?}; expected 2021 or 2022")]
    ApiContract(String),
}

impl FromStr for EducationSegment {
    type Err = SettingValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EducationSegment::parse(s).ok_or_else(|| SettingValueError::EducationSegment(s.to_string()))
    }
}

/// Which request contract to speak when creating a qualification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ApiContract {
    /// `{"Qualification": "..."}` with `?code=` for GCC (the original 2021 page).
    #[serde(rename = "2021")]
    V2021,
    /// `{"qualification", "educationSegment", "website", "validationCode"}` (current docs).
    #[default]
    #[serde(rename = "2022")]
    V2022,
}

impl FromStr for ApiContract {
    type Err = SettingValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "2021" => Ok(ApiContract::V2021),
            "2022" => Ok(ApiContract::V2022),
            other => Err(SettingValueError::ApiContract(other.to_string())),
        }
    }
}

impl fmt::Display for ApiContract {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ApiContract::V2021 => "2021",
            ApiContract::V2022 => "2022",
        })
    }
}

/// One validated input row, ready to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// 1-based index of the data record (header and blank lines not counted).
    pub index: u64,
    /// The customer's tenant id.
    pub customer_id: CustomerId,
    /// The qualification to set.
    pub qualification: Qualification,
    /// GCC validation code (text), when the row or `--validation-code` gives one.
    pub validation_code: Option<String>,
    /// Education segment, from the row or the `--education-segment` default.
    pub segment: Option<EducationSegment>,
    /// The school's website, Education only.
    pub website: Option<String>,
}

impl Row {
    /// The key used to spot duplicate rows.
    pub fn key(&self) -> (u128, u8) {
        (self.customer_id.as_u128(), self.qualification.index())
    }
}

/// What became of one input row; the `outcome` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// The qualification was created (vetting requested).
    Created,
    /// The customer already held the qualification.
    Exists,
    /// The service refused the row, or retries ran out.
    Failed,
    /// The row itself is malformed; nothing was sent.
    Invalid,
    /// An earlier row has the same customer and qualification; nothing was sent.
    Duplicate,
    /// Dry run: the row would be posted.
    Planned,
}

impl Outcome {
    /// Every outcome, in the order summaries list them.
    pub const ALL: [Outcome; 6] = [
        Outcome::Created,
        Outcome::Exists,
        Outcome::Failed,
        Outcome::Invalid,
        Outcome::Duplicate,
        Outcome::Planned,
    ];

    /// The spelling in the results file.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Exists => "exists",
            Outcome::Failed => "failed",
            Outcome::Invalid => "invalid",
            Outcome::Duplicate => "duplicate",
            Outcome::Planned => "planned",
        }
    }

    /// Parses the results-file spelling.
    pub fn parse(text: &str) -> Option<Self> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == text.trim())
    }

    /// Whether the row is done for good, so a resume must not send it again.
    pub fn is_settled(&self) -> bool {
        matches!(self, Outcome::Created | Outcome::Exists)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of the results file, in column order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResultRow {
    /// 1-based data record index.
    pub row: u64,
    /// Lower-case id when it parsed, else the cell as given.
    pub customer_id: String,
    /// Canonical name when it parsed, else the cell as given.
    pub qualification: String,
    /// What happened (None only while a row is being built).
    pub outcome: Option<Outcome>,
    /// Final HTTP status of the deciding call.
    pub http_status: Option<u16>,
    /// Vetting status from the service.
    pub vetting_status: Option<String>,
    /// Vetting reason from the service.
    pub vetting_reason: Option<String>,
    /// Vetting creation date from the service.
    pub vetting_create_date: Option<String>,
    /// Sends of the deciding call.
    pub attempts: u32,
    /// MS-CorrelationId of the final send.
    pub correlation_id: Option<Uuid>,
    /// MS-RequestId of the deciding call.
    pub request_id: Option<Uuid>,
    /// Service error code, or a local one for invalid rows.
    pub error_code: Option<String>,
    /// Human-readable error.
    pub error_message: Option<String>,
    /// Wall time spent on the row.
    pub elapsed_ms: u64,
}

/// One qualification record as `GET …/qualifications` returns it (every field but the name
/// optional). Read from the wire by `partner_center::api` (which takes both date spellings);
/// serialized by the simulator.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QualificationRecord {
    /// The qualification's name, verbatim.
    pub qualification: String,
    /// Vetting status, an open set kept verbatim.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vetting_status: Option<String>,
    /// Why vetting ended as it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vetting_reason: Option<String>,
    /// When vetting was requested (`vettingCreateDate` or `vettingCreatedDate` on the wire).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vetting_create_date: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_ids_parse_in_any_case_and_display_lower() {
        let id = CustomerId::parse(" 0E1F2A3B-4C5D-6E7F-8091-A2B3C4D5E6F7 ").expect("valid");
        assert_eq!(id.to_string(), "0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7");
        assert_eq!(id.to_lower_string(), id.to_string());
        assert!(CustomerId::parse("{0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7}").is_some());
        assert!(CustomerId::parse("0e1f2a3b4c5d6e7f8091a2b3c4d5e6f7").is_none());
        assert!(CustomerId::parse("not-a-guid").is_none());
    }

    #[test]
    fn qualifications_parse_with_aliases() {
        assert_eq!(
            Qualification::parse("gcc"),
            Ok(Qualification::GovernmentCommunityCloud)
        );
        assert_eq!(
            Qualification::parse(" EDUCATION "),
            Ok(Qualification::Education)
        );
        assert_eq!(
            Qualification::parse("State Owned Entity"),
            Ok(Qualification::StateOwnedEntity)
        );
        assert_eq!(
            Qualification::parse("Nonprofit"),
            Err(QualificationError::NotSettable("Nonprofit"))
        );
        assert_eq!(
            Qualification::parse("none"),
            Err(QualificationError::NotSettable("None"))
        );
        assert_eq!(Qualification::parse(""), Err(QualificationError::Empty));
        assert_eq!(
            Qualification::parse("school"),
            Err(QualificationError::Unknown)
        );
        // Longer than any accepted value, non-ASCII, or only separators.
        assert_eq!(
            Qualification::parse(&"education".repeat(5)),
            Err(QualificationError::Unknown)
        );
        assert_eq!(
            Qualification::parse("Éducation"),
            Err(QualificationError::Unknown)
        );
        assert_eq!(Qualification::parse(" -_ "), Err(QualificationError::Empty));
        assert_eq!(
            Qualification::parse("g-C_c\t"),
            Ok(Qualification::GovernmentCommunityCloud)
        );
    }

    #[test]
    fn segments_parse_with_aliases() {
        assert_eq!(EducationSegment::parse("K-12"), Some(EducationSegment::K12));
        assert_eq!(
            EducationSegment::parse("higher education"),
            Some(EducationSegment::HigherEducation)
        );
        assert_eq!(EducationSegment::parse("college"), None);
    }

    #[test]
    fn segment_and_contract_settings_name_what_was_given() {
        assert_eq!(" K-12 ".parse(), Ok(EducationSegment::K12));
        let err = "college"
            .parse::<EducationSegment>()
            .expect_err("not a segment");
        assert_eq!(err, SettingValueError::EducationSegment("college".into()));
        assert_eq!(
            err.to_string(),
            r#"unknown education segment "college"; expected K12 or HigherEducation"#
        );

        assert_eq!(" 2021 ".parse(), Ok(ApiContract::V2021));
        assert_eq!("2022".parse(), Ok(ApiContract::V2022));
        let err = " 2023 ".parse::<ApiContract>().expect_err("not a contract");
        assert_eq!(err, SettingValueError::ApiContract("2023".into()));
        assert_eq!(
            err.to_string(),
            r#"unknown API contract "2023"; expected 2021 or 2022"#
        );
    }

    #[test]
    fn outcomes_are_listed_in_declaration_order() {
        // Stats counts outcomes by `Outcome as usize`.
        for (n, outcome) in Outcome::ALL.into_iter().enumerate() {
            assert_eq!(outcome as usize, n, "{outcome}");
        }
    }

    #[test]
    fn records_keep_their_wire_names() {
        let record = QualificationRecord {
            qualification: "Education".into(),
            vetting_status: Some("Approved".into()),
            vetting_reason: Some("ok".into()),
            vetting_create_date: Some("x".into()),
        };
        assert_eq!(
            serde_json::to_string(&record).expect("json"),
            r#"{"qualification":"Education","vettingStatus":"Approved","vettingReason":"ok","vettingCreateDate":"x"}"#
        );
        let bare = QualificationRecord {
            qualification: "Education".into(),
            ..QualificationRecord::default()
        };
        assert_eq!(
            serde_json::to_string(&bare).expect("json"),
            r#"{"qualification":"Education"}"#
        );
    }
}
