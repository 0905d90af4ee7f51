//! Values derived from the policies, remembered per `policy_revision`
//! (which triggers set to a new random value at every policy insert,
//! update or delete, whoever writes): a greeting takes them from memory
//! while the policies stay as they are.
//!
//! The caller reads the revision *before* what it derives: a change
//! committed in between (PostgreSQL reads without one snapshot) is then
//! remembered under the older revision, which the next read no longer
//! finds; never older policies under the newer revision.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Values by revision, at most `max` of them (one per database the process
/// serves — tests run several — and a few more while policies change):
/// past it, it starts over.
#[derive(Debug)]
pub struct RevisionMemo<T> {
    by_revision: RwLock<HashMap<i64, Arc<T>>>,
    max: usize,
}

impl<T> RevisionMemo<T> {
    pub fn new(max: usize) -> Self {
        RevisionMemo {
            by_revision: RwLock::new(HashMap::new()),
            max,
        }
    }

    /// The value for `revision`: remembered, else `load`ed and remembered.
    /// A poisoned lock only means another caller panicked mid-insert: the
    /// memo is then skipped, never trusted.
    pub fn get_or_load<E>(
        &self,
        revision: i64,
        load: impl FnOnce() -> Result<T, E>,
    ) -> Result<Arc<T>, E> {
        if let Ok(map) = self.by_revision.read() {
            if let Some(value) = map.get(&revision) {
                return Ok(Arc::clone(value));
            }
        }
        let value = Arc::new(load()?);
        if let Ok(mut map) = self.by_revision.write() {
            if map.len() >= self.max {
                map.clear();
            }
            map.insert(revision, Arc::clone(&value));
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A revision is loaded once; a new one is loaded; past `max` the
    /// memo starts over; a failed load is not remembered.
    #[test]
    fn loads_once_per_revision() {
        let memo = RevisionMemo::new(2);
        let loads = std::cell::Cell::new(0);
        let load = |v: &str| {
            loads.set(loads.get() + 1);
            Ok::<_, &str>(v.to_owned())
        };
        assert_eq!(*memo.get_or_load(1, || load("a")).unwrap(), "a");
        assert_eq!(*memo.get_or_load(1, || load("other")).unwrap(), "a");
        assert_eq!(*memo.get_or_load(2, || load("b")).unwrap(), "b");
        assert_eq!(loads.get(), 2);
        assert_eq!(
            memo.get_or_load(3, || Err::<String, _>("down")),
            Err("down")
        );
        assert_eq!(*memo.get_or_load(3, || load("c")).unwrap(), "c");
        // 3 arrived with 1 and 2 remembered (the max): the memo started
        // over, so 1 is loaded again.
        assert_eq!(*memo.get_or_load(1, || load("a2")).unwrap(), "a2");
        assert_eq!(loads.get(), 4);
    }
}
