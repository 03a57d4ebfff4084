//! A store in memory that runs a hook when a renewing read misses (tests only): what a caller
//! does when something happens between its read of the store and its next step.

use std::sync::Mutex;

use super::{Counts, MemoryStore, Store};
use crate::config::Config;
use crate::lookup::Lookup;

/// What runs once, after the next renewing read that misses and before it answers.
type Hook = Box<dyn FnOnce() + Send>;

/// A [`MemoryStore`] whose next renewing read that misses runs a hook first.
pub(crate) struct Racing<K, V> {
    pub(crate) inner: MemoryStore<K, V>,
    hook: Mutex<Option<Hook>>,
}

impl<K, V> Racing<K, V>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub(crate) fn new(config: &Config) -> Self {
        Self {
            inner: MemoryStore::new(config),
            hook: Mutex::new(None),
        }
    }

    /// Runs `hook` after the next renewing read that misses.
    pub(crate) fn on_miss(&self, hook: impl FnOnce() + Send + 'static) {
        *self.hook.lock().unwrap() = Some(Box::new(hook));
    }
}

impl<K, V> Store<K, V> for Racing<K, V>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn get<L: Lookup<Key = K>>(&self, key: &L) -> Option<V> {
        self.inner.get(key)
    }

    fn hash_of<L: Lookup<Key = K>>(&self, key: &L) -> u64 {
        self.inner.hash_of(key)
    }

    fn get_renewing_hashed<L: Lookup<Key = K>>(&self, hash: u64, key: &L) -> Option<(V, bool)> {
        let found = self.inner.get_renewing_hashed(hash, key);
        if found.is_none() {
            let hook = self.hook.lock().unwrap().take();
            if let Some(hook) = hook {
                hook();
            }
        }
        found
    }

    fn peek<L: Lookup<Key = K>>(&self, key: &L) -> Option<V> {
        self.inner.peek(key)
    }

    fn insert(&self, key: K, value: V) {
        self.inner.insert(key, value);
    }

    fn insert_with_ttl(&self, key: K, value: V, ttl: std::time::Duration) {
        self.inner.insert_with_ttl(key, value, ttl);
    }

    fn remove<L: Lookup<Key = K>>(&self, key: &L) -> bool {
        self.inner.remove(key)
    }

    fn clear(&self) {
        self.inner.clear();
    }

    fn len(&self) -> usize {
        self.inner.len()
    }

    fn config(&self) -> Config {
        self.inner.config()
    }

    fn counts(&self) -> Counts {
        self.inner.counts()
    }
}
