//! Qualifications one customer should not be given together (each one's `excludes` in the
//! qualifications' table). `validate` warns about such pairs; they are not invalid rows (the
//! service decides), so the exit code does not change.

use std::collections::HashMap;

use crate::domain::model::{CustomerId, Qualification, Row};

/// Remembers, per customer, the first row of each qualification that excludes another.
#[derive(Debug, Default)]
pub(crate) struct ExclusiveCheck {
    seen: HashMap<CustomerId, [Option<u64>; Qualification::COUNT]>,
}

impl ExclusiveCheck {
    /// The warning for `row` when it completes an excluded pair for its customer (once per pair:
    /// later rows of the same customer stay quiet).
    pub(crate) fn observe(&mut self, row: &Row) -> Option<String> {
        let (q, excludes) = (row.qualification, row.qualification.spec().excludes);
        if excludes.is_empty() {
            return None;
        }
        let rows = self.seen.entry(row.customer_id).or_default();
        let at = |q: Qualification| usize::from(q.index());
        if rows[at(q)].is_some() {
            return None;
        }
        rows[at(q)] = Some(row.index);
        let other = *excludes.iter().find(|&&o| rows[at(o)].is_some())?;
        // Named in table order, whichever row came first.
        let mut pair = [q, other];
        pair.sort_by_key(|q| q.index());
        let [first, second] = pair.map(|q| {
            let an = q.as_str().starts_with(['A', 'E', 'I', 'O', 'U']);
            let row = rows[at(q)].unwrap_or_default();
            format!("{} {q} row (row {row})", if an { "an" } else { "a" })
        });
        Some(format!(
            "customer {} has both {first} and {second}; Microsoft's SDK samples say the two cannot be combined, so one of them is likely to be refused",
            row.customer_id.to_lower_string(),
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

    #[test]
    fn the_warning_names_the_pair_in_table_order_whichever_came_first() {
        let a = "aaaaaaaa-0000-4000-8000-000000000001";
        let mut check = ExclusiveCheck::default();
        assert_eq!(
            check.observe(&row(2, a, Qualification::GovernmentCommunityCloud)),
            None
        );
        assert_eq!(
            check.observe(&row(7, a, Qualification::Education)).as_deref(),
            Some("customer aaaaaaaa-0000-4000-8000-000000000001 has both an Education row (row 7) and a GovernmentCommunityCloud row (row 2); Microsoft's SDK samples say the two cannot be combined, so one of them is likely to be refused")
        );
    }
}
