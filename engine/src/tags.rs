//! Tags: labels on entries, for removing every entry that carries one.
//!
//! A shard that has seen a tagged entry keeps a [`TagIndex`]: for every tag,
//! the set of entry indices carrying it, and for every entry (parallel to
//! the shard's nodes, like the timers) its tags. Entries leaving the shard
//! leave the index in the same operation, so the index never holds more
//! than the entries do: it is bounded by the cache's capacity. An entry
//! index that moves (the shard fills holes with its last entry) is moved in
//! the index too.

use hashbrown::{HashMap, HashSet};

use crate::sync::PublicArc as Arc;

type Hasher = ahash::RandomState;

/// A tag as stored: shared between the entry's list and the index.
pub(crate) type Tag = Arc<str>;

#[derive(Debug, Default)]
pub(crate) struct TagIndex {
    by_tag: HashMap<Tag, HashSet<u32, Hasher>, Hasher>,
    /// Parallel to the shard's nodes.
    pub(crate) of_node: Vec<Option<Box<[Tag]>>>,
}

impl TagIndex {
    /// An index for a shard that already holds `nodes` untagged entries.
    pub(crate) fn new(nodes: usize) -> Self {
        Self {
            by_tag: HashMap::default(),
            of_node: (0..nodes).map(|_| None).collect(),
        }
    }

    /// Gives entry `idx` (pushed last or already present) these tags.
    pub(crate) fn set(&mut self, idx: u32, tags: &[&str]) {
        if (idx as usize) == self.of_node.len() {
            self.of_node.push(None);
        } else {
            self.untag(idx);
        }
        if tags.is_empty() {
            return;
        }
        let mut stored: Vec<Tag> = Vec::with_capacity(tags.len());
        for &tag in tags {
            if stored.iter().any(|t| &**t == tag) {
                continue;
            }
            let shared = match self.by_tag.get_key_value(tag) {
                Some((existing, _)) => Arc::clone(existing),
                None => Tag::from(tag),
            };
            self.by_tag
                .entry(Arc::clone(&shared))
                .or_default()
                .insert(idx);
            stored.push(shared);
        }
        self.of_node[idx as usize] = Some(stored.into_boxed_slice());
    }

    /// Takes entry `idx` out of the index (its slot stays, untagged).
    fn untag(&mut self, idx: u32) {
        if let Some(tags) = self.of_node[idx as usize].take() {
            for tag in tags.iter() {
                if let Some(set) = self.by_tag.get_mut(tag) {
                    set.remove(&idx);
                    if set.is_empty() {
                        self.by_tag.remove(tag);
                    }
                }
            }
        }
    }

    /// Removes entry `idx` as the shard does: the last entry moves into its
    /// place.
    pub(crate) fn remove(&mut self, idx: u32) {
        self.untag(idx);
        let last = (self.of_node.len() - 1) as u32;
        if idx != last {
            if let Some(tags) = &self.of_node[last as usize] {
                for tag in tags.iter() {
                    if let Some(set) = self.by_tag.get_mut(tag) {
                        set.remove(&last);
                        set.insert(idx);
                    }
                }
            }
        }
        self.of_node.swap_remove(idx as usize);
    }

    /// The entries carrying `tag`, highest index first (the order in which
    /// the shard can remove them without moving one still to come).
    pub(crate) fn entries(&self, tag: &str) -> Vec<u32> {
        let mut found: Vec<u32> = self
            .by_tag
            .get(tag)
            .map(|set| set.iter().copied().collect())
            .unwrap_or_default();
        found.sort_unstable_by(|a, b| b.cmp(a));
        found
    }

    /// Every tag held, with how many entries carry it.
    pub(crate) fn counts(&self) -> impl Iterator<Item = (&str, usize)> {
        self.by_tag.iter().map(|(tag, set)| (&**tag, set.len()))
    }

    /// The number of distinct tags held.
    #[cfg(test)]
    pub(crate) fn tag_count(&self) -> usize {
        self.by_tag.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removal_moves_the_last_entry_in_the_index() {
        let mut index = TagIndex::new(0);
        index.set(0, &["a"]);
        index.set(1, &["b"]);
        index.set(2, &["a", "b", "a"]);
        assert_eq!(index.entries("a"), vec![2, 0]);
        index.remove(0); // entry 2 moves to 0
        assert_eq!(index.entries("a"), vec![0]);
        assert_eq!(index.entries("b"), vec![1, 0]);
        index.remove(1);
        index.remove(0);
        assert_eq!(index.tag_count(), 0, "emptied tags leave the index");
        assert!(index.of_node.is_empty());
    }

    #[test]
    fn retagging_replaces_the_old_tags() {
        let mut index = TagIndex::new(2);
        index.set(1, &["old"]);
        index.set(1, &["new"]);
        assert!(index.entries("old").is_empty());
        assert_eq!(index.entries("new"), vec![1]);
        index.set(1, &[]);
        assert_eq!(index.tag_count(), 0);
    }
}
