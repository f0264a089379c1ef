//! Qualifications one customer should not be given together: Microsoft's SDK samples say
//! Education and GovernmentCommunityCloud cannot be combined. `validate` warns about such pairs;
//! they are not invalid rows (the service decides), so the exit code does not change.

use std::collections::HashMap;

use crate::domain::model::{CustomerId, Qualification, Row};

/// Remembers, per customer, the first Education and the first GovernmentCommunityCloud row.
#[derive(Debug, Default)]
pub(crate) struct ExclusiveCheck {
    seen: HashMap<CustomerId, [Option<u64>; 2]>,
}

impl ExclusiveCheck {
    /// The warning for `row` when it completes an Education + GovernmentCommunityCloud pair for
    /// its customer (once per pair: later rows of the same customer stay quiet).
    pub(crate) fn observe(&mut self, row: &Row) -> Option<String> {
        let slot = match row.qualification {
            Qualification::Education => 0,
            Qualification::GovernmentCommunityCloud => 1,
            Qualification::StateOwnedEntity => return None,
        };
        let rows = self.seen.entry(row.customer_id).or_default();
        if rows[slot].is_some() {
            return None;
        }
        rows[slot] = Some(row.index);
        let other = rows[1 - slot]?;
        Some(format!(
            "customer {} has both an Education row (row {}) and a GovernmentCommunityCloud row (row {}); Microsoft's SDK samples say the two cannot be combined, so one of them is likely to be refused",
            row.customer_id.to_lower_string(),
            if slot == 0 { row.index } else { other },
            if slot == 1 { row.index } else { other },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(index: u64, customer: &str, qualification: Qualification) -> Row {
        Row {
            index,
            customer_id: CustomerId::parse(customer).expect("id"),
            qualification,
            validation_code: None,
            segment: None,
            website: None,
        }
    }

    #[test]
    fn one_warning_per_customer_with_both() {
        let a = "aaaaaaaa-0000-4000-8000-000000000001";
        let b = "aaaaaaaa-0000-4000-8000-000000000002";
        let mut check = ExclusiveCheck::default();
        assert_eq!(check.observe(&row(1, a, Qualification::Education)), None);
        assert_eq!(check.observe(&row(2, b, Qualification::Education)), None);
        assert_eq!(
            check.observe(&row(3, b, Qualification::StateOwnedEntity)),
            None
        );
        let warning = check
            .observe(&row(4, a, Qualification::GovernmentCommunityCloud))
            .expect("a warning");
        assert!(warning.contains(a) && warning.contains("row 1") && warning.contains("row 4"));
        assert_eq!(
            check.observe(&row(5, a, Qualification::GovernmentCommunityCloud)),
            None
        );
        assert_eq!(check.observe(&row(6, a, Qualification::Education)), None);
    }
}
