//! A map that keeps what was used lately and forgets the rest, so that what the copy
//! remembers (the blob ledger, the claims) stays the same size at any number of tags.
//!
//! Two generations: every insert, and every entry found in the old generation, goes to
//! the young one; when the young one is full it becomes the old one and the old one is
//! dropped. So the last `generation` keys used are always kept and at most twice as
//! many, with nothing per entry (no list, no counter), and no allocation once both
//! tables have grown: the dropped table is cleared and reused.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::Hash;

/// Entries per generation: 7/8 of 2^15, what a table of 32,768 slots holds before it
/// grows (the standard map's load factor), so each table stays at 2^15 slots. The two
/// keep between 28,672 and 57,344 entries.
pub(in crate::copy) const GENERATION: usize = 28_672;

pub(in crate::copy) struct Recent<K, V> {
    young: HashMap<K, V>,
    old: HashMap<K, V>,
    generation: usize,
}

impl<K, V> Recent<K, V> {
    /// A map keeping at least the last `generation` keys used.
    pub(in crate::copy) fn new(generation: usize) -> Self {
        Recent {
            young: HashMap::new(),
            old: HashMap::new(),
            generation: generation.max(1),
        }
    }

    /// How many entries are kept now.
    #[cfg(test)]
    pub(in crate::copy) fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }
}

impl<K: Eq + Hash, V> Recent<K, V> {
    /// The value for `key` when it is still kept; it then counts as used now.
    pub(in crate::copy) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        if let Some((key, value)) = self.old.remove_entry(key) {
            return Some(self.insert(key, value));
        }
        self.young.get_mut(key)
    }

    /// Keeps `value` for `key` (in place of what was kept), as used now.
    pub(in crate::copy) fn insert(&mut self, key: K, value: V) -> &mut V {
        self.old.remove(&key);
        if self.young.len() >= self.generation && !self.young.contains_key(&key) {
            std::mem::swap(&mut self.young, &mut self.old);
            self.young.clear();
        }
        match self.young.entry(key) {
            Entry::Occupied(mut entry) => {
                entry.insert(value);
                entry.into_mut()
            }
            Entry::Vacant(entry) => entry.insert(value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_at_most_two_generations_and_what_was_used_lately() {
        let mut recent = Recent::new(100);
        recent.insert(0u32, "first");
        for n in 1..10_000u32 {
            recent.insert(n, "other");
            assert!(recent.len() <= 200, "{} entries after {n}", recent.len());
            if n % 50 == 0 {
                assert!(recent.get_mut(&0).is_some(), "used every 50, kept");
            }
        }
        assert_eq!(recent.get_mut(&0), Some(&mut "first"));
        assert!(recent.get_mut(&1).is_none(), "not used since, forgotten");
        for n in 9_901..10_000 {
            assert!(recent.get_mut(&n).is_some(), "the last generation is kept");
        }
    }

    #[test]
    fn an_insert_replaces_the_value_in_either_generation() {
        let mut recent = Recent::new(2);
        recent.insert("a", 1);
        recent.insert("b", 2);
        recent.insert("c", 3); // "a" and "b" are old now
        recent.insert("a", 10);
        assert_eq!(recent.get_mut(&"a"), Some(&mut 10));
        assert_eq!(recent.len(), 3, "one entry per key");
    }
}
