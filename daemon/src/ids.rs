//! Experiment ids handed out so far, so two runs never share one (same name, config and second).

use labd_schemas::ExperimentId;
use std::collections::HashSet;
use std::sync::Mutex;

/// The set of ids in use. A `std` mutex: held for a lookup and an insert, never across `.await`.
#[derive(Default)]
pub struct Ids {
    taken: Mutex<HashSet<ExperimentId>>,
}

impl Ids {
    pub fn new(existing: impl IntoIterator<Item = ExperimentId>) -> Self {
        Ids {
            taken: Mutex::new(existing.into_iter().collect()),
        }
    }

    /// Takes `id` when it is free; answers whether it was.
    pub fn claim(&self, id: &ExperimentId) -> bool {
        let mut taken = self.taken.lock().unwrap_or_else(|p| p.into_inner());
        taken.insert(id.clone())
    }

    /// `proposed`, or `proposed-2`, `-3`, ... when it is taken; the result is marked taken.
    pub fn unique(&self, proposed: ExperimentId) -> ExperimentId {
        let mut taken = self.taken.lock().unwrap_or_else(|p| p.into_inner());
        let mut id = proposed.clone();
        let mut n = 2;
        while taken.contains(&id) {
            id = proposed.with_suffix(n);
            n += 1;
        }
        taken.insert(id.clone());
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collisions_get_suffixes() {
        let ids = Ids::new([ExperimentId("a".into())]);
        assert_eq!(ids.unique(ExperimentId("a".into())).as_str(), "a-2");
        assert_eq!(ids.unique(ExperimentId("a".into())).as_str(), "a-3");
        assert_eq!(ids.unique(ExperimentId("b".into())).as_str(), "b");
    }
}
