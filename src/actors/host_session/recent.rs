//! A small bounded memory of recently seen job ids, oldest forgotten
//! first. Sessions live for days and see every job of their host; what
//! they remember about jobs must stay a fixed, small size per session
//! (issue 15: an unbounded or clear-at-a-large-cap memory grew the
//! server's RSS by about 270 bytes per job in the 30-minute soak).
//!
//! A linear list: at these sizes a scan is cheaper than hashing and
//! holds no spare capacity.

use std::collections::VecDeque;

/// Up to `cap` ids with a value each, in the order they were recorded.
#[derive(Debug)]
pub(super) struct Recent<V> {
    entries: VecDeque<(Box<str>, V)>,
    cap: usize,
}

impl<V: Copy> Recent<V> {
    /// An empty memory holding at most `cap` ids (at least one).
    pub(super) fn new(cap: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// The value recorded for `id`.
    pub(super) fn get(&self, id: &str) -> Option<V> {
        self.entries
            .iter()
            .find(|(known, _)| &**known == id)
            .map(|(_, value)| *value)
    }

    /// Records `id` (replacing its value if known); the oldest id is
    /// forgotten when the memory is full.
    pub(super) fn insert(&mut self, id: &str, value: V) {
        if let Some(entry) = self.entries.iter_mut().find(|(known, _)| &**known == id) {
            entry.1 = value;
            return;
        }
        if self.entries.len() >= self.cap {
            self.entries.pop_front();
        }
        self.entries.push_back((id.into(), value));
    }

    /// Forgets `id`.
    pub(super) fn remove(&mut self, id: &str) {
        self.entries.retain(|(known, _)| &**known != id);
    }

    /// Ids remembered.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The oldest id goes first, a known id is updated in place, and the
    /// size never passes the cap.
    #[test]
    fn bounded_and_oldest_first() {
        let mut recent = Recent::new(2);
        recent.insert("a", 1);
        recent.insert("b", 2);
        recent.insert("a", 3);
        assert_eq!(recent.get("a"), Some(3));
        assert_eq!(recent.len(), 2);
        recent.insert("c", 4);
        assert_eq!(recent.get("a"), None, "the oldest is forgotten");
        assert_eq!(recent.get("b"), Some(2));
        assert_eq!(recent.get("c"), Some(4));
        recent.remove("b");
        assert_eq!(recent.get("b"), None);
        assert_eq!(recent.len(), 1);
        for i in 0..100 {
            recent.insert(&i.to_string(), i);
        }
        assert_eq!(recent.len(), 2);
    }
}
