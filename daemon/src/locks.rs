//! One async lock a key (see [`KeyedLocks`]).

use std::collections::HashMap;
use std::sync::Arc;

/// One async lock a key, made when first asked for and gone when nobody holds or waits for it. The MLflow API
/// holds a run's from a write's checks against the views (a parameter logged before, a point sent twice) to
/// its commit, so that two calls about one run (a retried call beside the first) go one at a time while calls
/// about other runs go on.
#[derive(Default)]
pub struct KeyedLocks(std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

/// A key's lock, held; the key's entry goes when nobody else holds or waits for it.
pub struct KeyGuard<'a> {
    locks: &'a KeyedLocks,
    key: String,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl KeyedLocks {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<tokio::sync::Mutex<()>>>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits for `key`'s lock.
    pub async fn lock(&self, key: &str) -> KeyGuard<'_> {
        let lock = self.map().entry(key.to_string()).or_default().clone();
        KeyGuard {
            locks: self,
            key: key.to_string(),
            guard: Some(lock.lock_owned().await),
        }
    }
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        self.guard.take();
        let mut map = self.locks.map();
        if map
            .get(&self.key)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            map.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_key_waits_for_its_holder_and_its_entry_goes_after() {
        let locks = Arc::new(KeyedLocks::default());
        let held = locks.lock("run-a").await;
        // Another key is free meanwhile.
        drop(locks.lock("run-b").await);
        let waiting = {
            let locks = locks.clone();
            tokio::spawn(async move {
                let _g = locks.lock("run-a").await;
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "the second holder of run-a waits");
        drop(held);
        waiting.await.expect("joined");
        assert!(
            locks.map().is_empty(),
            "no entry is kept once nobody holds or waits"
        );
    }
}
