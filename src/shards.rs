//! A map split into independently locked shards, for the state every callback touches (calls in
//! progress, the replay index). An operation locks one shard: a resize or a sweep stalls the keys
//! of that shard (1/64 of them) for 1/64 of the time, instead of every callback at once. With one
//! lock, growing past 229,376 entries rehashed the whole map under it and held callers up for
//! 100–200 ms.

use std::borrow::Borrow;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::{Mutex, MutexGuard};

/// Shards per map.
const SHARDS: usize = 64;

/// A `HashMap` in 64 locked parts ([`ShardedMap::shard`] picks one).
#[derive(Debug)]
pub struct ShardedMap<K, V> {
    shards: Box<[Mutex<HashMap<K, V>>]>,
    hasher: RandomState,
}

impl<K, V> Default for ShardedMap<K, V> {
    fn default() -> Self {
        ShardedMap {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
        }
    }
}

impl<K: Hash + Eq, V> ShardedMap<K, V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// The locked shard that holds `key` (whether or not it is there).
    pub fn shard<Q>(&self, key: &Q) -> MutexGuard<'_, HashMap<K, V>>
    where
        K: Borrow<Q>,
        Q: Hash + ?Sized,
    {
        let i = (self.hasher.hash_one(key) as usize) % self.shards.len();
        lock(&self.shards[i])
    }

    /// Keeps the entries `keep` says yes to, one shard at a time; returns how many are left.
    pub fn retain(&self, mut keep: impl FnMut(&K, &mut V) -> bool) -> usize {
        (0..self.shards.len())
            .map(|i| self.retain_shard(i, &mut keep))
            .sum()
    }

    /// How many shards there are (`0..shard_count()` for [`ShardedMap::retain_shard`]).
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// [`ShardedMap::retain`] over shard `i` alone (nothing when there is no such shard); returns
    /// how many entries that shard holds after. A sweep done shard by shard can let other work run
    /// between two shards.
    pub fn retain_shard(&self, i: usize, mut keep: impl FnMut(&K, &mut V) -> bool) -> usize {
        let Some(shard) = self.shards.get(i) else {
            return 0;
        };
        let mut shard = lock(shard);
        shard.retain(|k, v| keep(k, v));
        shard.len()
    }

    /// Entries held (a sum over the shards, each read at a slightly different moment).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_in_their_shard_and_swept_everywhere() {
        let map: ShardedMap<String, u32> = ShardedMap::new();
        for i in 0..1000 {
            map.shard(format!("call-{i}").as_str())
                .insert(format!("call-{i}"), i);
        }
        assert_eq!(map.len(), 1000);
        assert_eq!(map.shard("call-7").get("call-7"), Some(&7));
        assert_eq!(map.shard("call-1000").get("call-1000"), None);
        // Every shard holds some of them: the load is spread.
        assert!(map.shards.iter().all(|s| !lock(s).is_empty()));
        assert_eq!(map.retain(|_, v| *v % 2 == 0), 500);
        assert_eq!(map.shard("call-7").get("call-7"), None);
        assert_eq!(map.shard("call-8").get("call-8"), Some(&8));
        // Shard by shard: the same result, one lock at a time; past the last shard, nothing.
        let left: usize = (0..map.shard_count())
            .map(|i| map.retain_shard(i, |_, v| *v % 4 == 0))
            .sum();
        assert_eq!(left, 250);
        assert_eq!(map.len(), 250);
        assert_eq!(map.retain_shard(map.shard_count(), |_, _| false), 0);
        assert_eq!(map.len(), 250);
    }
}
