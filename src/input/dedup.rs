//! The duplicate index: every valid (customer, qualification) seen so far, with the row that
//! first had it. It is the only state that grows with the input, so it is kept compact: a
//! bounded hash map of recent keys, folded now and then into a sorted vector of 24-byte entries.
//! A million distinct rows take about 24 MB, where a hash map would take about 70 MB while it
//! doubles.

use std::collections::HashMap;

/// How many keys the hash map holds before they are folded into the sorted vector.
const RECENT_MAX: usize = 1 << 17;

/// (customer id as two halves, qualification index).
type Key = (u64, u64, u8);

/// One folded entry: 24 bytes.
#[derive(Clone, Copy)]
struct Entry {
    hi: u64,
    lo: u64,
    row: u32,
    qualification: u8,
}

const _: () = assert!(std::mem::size_of::<Entry>() == 24);

impl Entry {
    fn key(&self) -> Key {
        (self.hi, self.lo, self.qualification)
    }
}

/// foldhash's fast hasher for the index's three-integer keys (the hasher hashbrown itself
/// defaults to). SipHash's resistance to crafted collisions buys nothing here, as the keys come
/// from the operator's own file, and it cost more per row than the rest of the index.
type KeyHasher = foldhash::fast::FixedState;

/// Remembers the first row of each (customer, qualification).
#[derive(Default)]
pub struct DuplicateIndex {
    recent: HashMap<Key, u32, KeyHasher>,
    folded: Vec<Entry>,
}

/// A row's (customer, qualification) key as [`Row::key`](crate::domain::model::Row::key) gives it.
fn split((customer, qualification): (u128, u8)) -> Key {
    ((customer >> 64) as u64, customer as u64, qualification)
}

impl DuplicateIndex {
    /// The row that first had this key, if any.
    pub fn first_row(&self, key: (u128, u8)) -> Option<u64> {
        let key = split(key);
        if let Some(row) = self.recent.get(&key) {
            return Some(u64::from(*row));
        }
        self.folded
            .binary_search_by(|e| e.key().cmp(&key))
            .ok()
            .map(|i| u64::from(self.folded[i].row))
    }

    /// Remembers `row` as the first with this key (the caller checked it is new).
    /// Row numbers past `u32::MAX` (four billion rows) are remembered as `u32::MAX`.
    pub fn insert(&mut self, key: (u128, u8), row: u64) {
        let row = u32::try_from(row).unwrap_or(u32::MAX);
        self.recent.insert(split(key), row);
        if self.recent.len() >= RECENT_MAX {
            self.fold();
        }
    }

    fn fold(&mut self) {
        let start = self.folded.len();
        self.folded.reserve_exact(self.recent.len());
        self.folded.extend(
            self.recent
                .drain()
                .map(|((hi, lo, qualification), row)| Entry {
                    hi,
                    lo,
                    row,
                    qualification,
                }),
        );
        self.folded[start..].sort_unstable_by_key(Entry::key);
        // Two sorted runs: the stable sort recognises them and merges in linear time.
        self.folded.sort_by_key(Entry::key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_a_hash_map_across_folds() {
        let mut index = DuplicateIndex::default();
        let mut model: HashMap<(u128, u8), u64> = HashMap::new();
        let mut rng = fastrand::Rng::with_seed(7);
        // Enough keys to fold three times; a small id space makes repeats common.
        for row in 1..=(3 * RECENT_MAX as u64 + 1000) {
            let customer = u128::from(rng.u32(..400_000)) << 64 | u128::from(rng.u8(..3));
            let qualification = rng.u8(..3);
            let expected = model.get(&(customer, qualification)).copied();
            assert_eq!(index.first_row((customer, qualification)), expected);
            if expected.is_none() {
                index.insert((customer, qualification), row);
                model.insert((customer, qualification), row);
            }
        }
        assert_eq!(index.recent.len() + index.folded.len(), model.len());
        assert!(!index.folded.is_empty(), "the test crossed a fold");
    }
}
