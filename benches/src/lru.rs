//! An exact LRU, the classic reference point for hit ratios.

use hashbrown::HashMap;

/// Marks the absence of a neighbour in the recency list.
const NIL: usize = usize::MAX;

#[derive(Debug, Clone, Copy)]
struct Node {
    key: u64,
    /// Neighbour towards the most recently used end.
    newer: usize,
    /// Neighbour towards the least recently used end.
    older: usize,
}

/// A least-recently-used set of at most `capacity` keys.
///
/// Nodes live in a `Vec` and link to each other by index; a map finds a key's
/// node. Once full, a miss recycles the least recently used node in place.
///
/// # Examples
///
/// ```
/// use strata_benches::Lru;
/// let mut lru = Lru::new(2);
/// assert!(!lru.access(1));
/// assert!(!lru.access(2));
/// assert!(lru.access(1)); // 2 is now the least recently used
/// assert!(!lru.access(3)); // evicts 2
/// assert!(!lru.access(2));
/// ```
#[derive(Debug, Clone)]
pub struct Lru {
    capacity: usize,
    index: HashMap<u64, usize, ahash::RandomState>,
    nodes: Vec<Node>,
    /// Most recently used node.
    newest: usize,
    /// Least recently used node.
    oldest: usize,
}

impl Lru {
    /// An empty LRU holding at most `capacity` keys.
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            index: HashMap::with_capacity_and_hasher(capacity, ahash::RandomState::new()),
            nodes: Vec::with_capacity(capacity),
            newest: NIL,
            oldest: NIL,
        }
    }

    /// Touches `key` and reports whether it was present (a hit). On a miss
    /// the key is admitted, evicting the least recently used key if full.
    pub fn access(&mut self, key: u64) -> bool {
        if let Some(&at) = self.index.get(&key) {
            self.unlink(at);
            self.push_newest(at);
            return true;
        }
        if self.capacity == 0 {
            return false;
        }
        let at = if self.nodes.len() < self.capacity {
            self.nodes.push(Node {
                key,
                newer: NIL,
                older: NIL,
            });
            self.nodes.len() - 1
        } else {
            let at = self.oldest;
            self.unlink(at);
            self.index.remove(&self.nodes[at].key);
            self.nodes[at].key = key;
            at
        };
        self.index.insert(key, at);
        self.push_newest(at);
        false
    }

    fn unlink(&mut self, at: usize) {
        let Node { newer, older, .. } = self.nodes[at];
        match newer {
            NIL => self.newest = older,
            n => self.nodes[n].older = older,
        }
        match older {
            NIL => self.oldest = newer,
            o => self.nodes[o].newer = newer,
        }
    }

    fn push_newest(&mut self, at: usize) {
        self.nodes[at].newer = NIL;
        self.nodes[at].older = self.newest;
        match self.newest {
            NIL => self.oldest = at,
            n => self.nodes[n].newer = at,
        }
        self.newest = at;
    }
}

/// Number of hits an exact LRU of `capacity` keys scores on `trace`.
///
/// # Examples
///
/// ```
/// use strata_benches::lru_hits;
/// assert_eq!(lru_hits(&[1, 2, 1, 3, 2], 2), 1);
/// ```
#[must_use]
pub fn lru_hits(trace: &[u64], capacity: usize) -> u64 {
    let mut lru = Lru::new(capacity);
    trace.iter().map(|&key| u64::from(lru.access(key))).sum()
}
