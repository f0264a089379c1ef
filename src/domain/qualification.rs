//! The qualifications this call can set, defined by one table ([`TABLE`]): names, spellings,
//! the fields each needs per contract, exclusivity, and what a 403 means. Everything else asks
//! the table; a new qualification is a variant, its row, the simulator's state, the docs and the
//! `run` help's literal (a test in `cli/args.rs` compares it with [`listing`]).

use std::fmt::{self, Write as _};

use serde::{Deserialize, Serialize};

use super::model::{folded, ApiContract, SHORT_KEY};

/// A qualification that this call can set; its rules are its row in [`TABLE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Qualification {
    /// Education (irreversible once set).
    Education,
    /// Government Community Cloud.
    GovernmentCommunityCloud,
    /// State-owned entity.
    StateOwnedEntity,
}

/// A field a row may carry besides its customer and qualification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `education_segment`: K12 or HigherEducation (sent under the 2022 contract only).
    Segment,
    /// `website` (sent under the 2022 contract only).
    Website,
    /// `validation_code`: text (the 2022 body's `validationCode`, the 2021 `?code=`).
    ValidationCode,
}

/// One qualification's row in [`TABLE`].
#[derive(Debug)]
pub struct Spec {
    /// The variant this row defines (rows are in variant order).
    pub qualification: Qualification,
    /// The canonical spelling the API uses (letters only, so folding leaves it whole).
    pub name: &'static str,
    /// Other spellings accepted in cells, as help texts show them (letters only, any case).
    pub aliases: &'static [&'static str],
    /// The fields its rows carry, each with the contracts that require it; others are dropped.
    pub fields: &'static [(Field, &'static [ApiContract])],
    /// What a customer should not also be given (`validate` warns; the service decides).
    pub excludes: &'static [Qualification],
    /// What a 403 on it most likely means, appended to the row's message.
    pub forbidden_note: Option<&'static str>,
}

/// Every settable qualification, in variant order.
pub const TABLE: &[Spec] = &[
    Spec {
        qualification: Qualification::Education,
        name: "Education",
        aliases: &[],
        fields: &[(Field::Segment, &[ApiContract::V2022]), (Field::Website, &[])],
        // Microsoft's SDK samples say Education and GovernmentCommunityCloud cannot be combined.
        excludes: &[Qualification::GovernmentCommunityCloud],
        forbidden_note: None,
    },
    Spec {
        qualification: Qualification::GovernmentCommunityCloud,
        name: "GovernmentCommunityCloud",
        aliases: &["GCC"],
        fields: &[(Field::ValidationCode, &[ApiContract::V2021, ApiContract::V2022])],
        excludes: &[Qualification::Education],
        // Partner Center's GDAP guidance, which the service's own 403 text does not give.
        forbidden_note: Some("GovernmentCommunityCloud needs GDAP roles on the customer: Directory Reader or Directory Writer, License Administrator or User Administrator"),
    },
    Spec {
        qualification: Qualification::StateOwnedEntity,
        name: "StateOwnedEntity",
        aliases: &[],
        fields: &[],
        excludes: &[],
        forbidden_note: None,
    },
];

/// Names Partner Center knows but this call cannot set (refused with their own message).
pub const NOT_SETTABLE: [&str; 2] = ["None", "Nonprofit"];

/// Why a qualification cell was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QualificationError {
    /// The cell was empty.
    #[error("empty")]
    Empty,
    /// The API knows the value but this call cannot set it ([`NOT_SETTABLE`]).
    #[error("{0} exists in Partner Center but cannot be set through this call; expected {names}", names = listing(false))]
    NotSettable(&'static str),
    /// Not a qualification at all.
    #[error("unknown qualification; expected {names}", names = listing(true))]
    Unknown,
}

/// The names as messages list them, `A, B or C`, with each one's aliases in brackets if asked.
pub fn listing(aliases: bool) -> String {
    let mut out = String::new();
    for (n, spec) in TABLE.iter().enumerate() {
        if n > 0 {
            out.push_str(if n + 1 == TABLE.len() { " or " } else { ", " });
        }
        out.push_str(spec.name);
        if aliases && !spec.aliases.is_empty() {
            let _ = write!(out, " ({})", spec.aliases.join(", "));
        }
    }
    out
}

impl Qualification {
    /// How many there are: the size of arrays indexed by [`Qualification::index`].
    pub const COUNT: usize = TABLE.len();

    /// All settable values, in table order (used for metrics and indexes).
    pub const ALL: [Qualification; Self::COUNT] = [
        Qualification::Education,
        Qualification::GovernmentCommunityCloud,
        Qualification::StateOwnedEntity,
    ];

    /// This qualification's row in [`TABLE`].
    pub fn spec(self) -> &'static Spec {
        &TABLE[usize::from(self.index())]
    }

    /// The canonical spelling the API uses.
    pub fn as_str(&self) -> &'static str {
        self.spec().name
    }

    /// A small stable number below [`Qualification::COUNT`], for compact indexes.
    pub fn index(&self) -> u8 {
        *self as u8
    }

    /// The qualification with exactly this canonical name (the service accepts no other).
    pub fn named(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|q| q.as_str() == text)
    }

    /// Whether its rows carry `field` (those of other qualifications drop it).
    pub fn carries(self, field: Field) -> bool {
        self.spec().fields.iter().any(|&(f, _)| f == field)
    }

    /// Whether a row must give `field` under `contract`.
    pub fn requires(self, field: Field, contract: ApiContract) -> bool {
        let mut fields = self.spec().fields.iter();
        fields.any(|(f, under)| *f == field && under.contains(&contract))
    }

    /// Parses a cell case-insensitively, accepting aliases (`GCC`) and ignoring `-`, `_` and spaces.
    pub fn parse(text: &str) -> Result<Self, QualificationError> {
        let mut buf = [0u8; SHORT_KEY];
        let key = folded(text, &mut buf);
        if key.is_empty() {
            return Err(QualificationError::Empty);
        }
        // Table spellings are letters only, so comparing them without case matches their folds.
        let same = |spelling: &&str| spelling.eq_ignore_ascii_case(key);
        if let Some(spec) = TABLE
            .iter()
            .find(|s| std::iter::once(&s.name).chain(s.aliases).any(same))
        {
            return Ok(spec.qualification);
        }
        match NOT_SETTABLE.into_iter().find(same) {
            Some(name) => Err(QualificationError::NotSettable(name)),
            None => Err(QualificationError::Unknown),
        }
    }
}

impl fmt::Display for Qualification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_one_row_per_variant_in_order() {
        // Exhaustive, so a new variant does not compile until it is counted here and has a row.
        let position = |q| match q {
            Qualification::Education => 0,
            Qualification::GovernmentCommunityCloud => 1,
            Qualification::StateOwnedEntity => 2,
        };
        assert_eq!(Qualification::COUNT, 3);
        for (n, spec) in TABLE.iter().enumerate() {
            assert_eq!(position(spec.qualification), n, "{}", spec.name);
            assert_eq!(usize::from(spec.qualification.index()), n);
            assert_eq!(Qualification::ALL[n], spec.qualification);
            assert_eq!(spec.qualification.spec().name, spec.name);
        }
    }

    #[test]
    fn every_spelling_parses_to_its_qualification() {
        for spec in TABLE {
            let q = spec.qualification;
            assert_eq!(Qualification::named(spec.name), Some(q));
            assert_eq!(Qualification::parse(spec.name), Ok(q));
            for spelling in std::iter::once(&spec.name).chain(spec.aliases) {
                // Letters only: what parse compares must be what folding leaves.
                assert_eq!(
                    folded(spelling, &mut [0; SHORT_KEY]),
                    spelling.to_ascii_lowercase(),
                    "{spelling}"
                );
                for form in [
                    spelling.to_string(),
                    spelling.to_ascii_lowercase(),
                    format!(" {}\t", spelling.to_ascii_uppercase()),
                    spelling.chars().flat_map(|c| [c, '-']).collect(),
                ] {
                    assert_eq!(Qualification::parse(&form), Ok(q), "{form:?}");
                }
            }
            // Aliases are for cells only: the service takes the canonical name.
            for alias in spec.aliases {
                assert_eq!(Qualification::named(alias), None);
            }
        }
        for name in NOT_SETTABLE {
            assert_eq!(Qualification::named(name), None);
            assert_eq!(
                Qualification::parse(&name.to_ascii_uppercase()),
                Err(QualificationError::NotSettable(name))
            );
        }
    }

    #[test]
    fn required_fields_per_contract() {
        use ApiContract::{V2021, V2022};
        use Field::{Segment, ValidationCode, Website};
        use Qualification::*;
        let cases = [
            (Education, Segment, [true, true], [false, true]),
            (Education, Website, [true, true], [false, false]),
            (Education, ValidationCode, [false, false], [false, false]),
            (
                GovernmentCommunityCloud,
                ValidationCode,
                [true, true],
                [true, true],
            ),
            (
                GovernmentCommunityCloud,
                Segment,
                [false, false],
                [false, false],
            ),
            (
                GovernmentCommunityCloud,
                Website,
                [false, false],
                [false, false],
            ),
        ];
        for (q, field, carried, required) in cases {
            for (n, contract) in [V2021, V2022].into_iter().enumerate() {
                assert_eq!(q.carries(field), carried[n], "{q} {field:?}");
                assert_eq!(
                    q.requires(field, contract),
                    required[n],
                    "{q} {field:?} {contract}"
                );
            }
        }
        for field in [Segment, Website, ValidationCode] {
            assert!(!StateOwnedEntity.carries(field));
        }
    }

    #[test]
    fn exclusions_go_both_ways_and_never_to_itself() {
        for spec in TABLE {
            for other in spec.excludes {
                assert_ne!(*other, spec.qualification);
                assert!(
                    other.spec().excludes.contains(&spec.qualification),
                    "{}",
                    spec.name
                );
            }
        }
        assert_eq!(
            Qualification::Education.spec().excludes,
            [Qualification::GovernmentCommunityCloud]
        );
    }

    #[test]
    fn messages_list_the_names_from_the_table() {
        assert_eq!(
            listing(true),
            "Education, GovernmentCommunityCloud (GCC) or StateOwnedEntity"
        );
        assert_eq!(
            QualificationError::NotSettable("None").to_string(),
            "None exists in Partner Center but cannot be set through this call; expected Education, GovernmentCommunityCloud or StateOwnedEntity"
        );
        assert_eq!(
            QualificationError::Unknown.to_string(),
            "unknown qualification; expected Education, GovernmentCommunityCloud (GCC) or StateOwnedEntity"
        );
    }
}
