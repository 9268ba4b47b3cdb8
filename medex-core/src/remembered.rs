//! Values kept between requests and forgotten when what they were made from changes.
//!
//! A [`Remembered`] map answers a value while it is younger than the map's `max_age` and drops a
//! key on demand, when a commit changes what its value was made from. Values made by another
//! instance's writes are not announced here; `max_age` bounds how long those go unseen.
//!
//! A value made while its key was being forgotten must not be kept (it may hold the state from
//! before the change). Each shard counts its forgettings: a miss hands out a [`Making`] ticket
//! with the count, and [`Remembered::keep`] keeps the value only if the count has not moved.
//! Shards keep those counts apart, so that the constant forgetting of a busy fleet's entries
//! does not turn away every other value being made at the same time.
//!
//! ```
//! use std::sync::Arc;
//! use chrono::{Duration, Utc};
//! use medex_core::remembered::Remembered;
//!
//! let names: Remembered<u32, String> = Remembered::new(Duration::seconds(1), 1024);
//! let now = Utc::now();
//! let ticket = names.get(&7, now).unwrap_err();
//! names.keep(7, Arc::new("seven".into()), ticket);
//! assert_eq!(*names.get(&7, now).unwrap(), "seven");
//! names.forget(&7);
//! assert!(names.get(&7, now).is_err());
//! ```

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher, Hash};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Duration, Utc};

/// Enough shards that two cores rarely meet on one lock, few enough to stay small.
const SHARDS: usize = 64;

/// A map of values with an age limit; see the module documentation.
pub struct Remembered<K, V> {
    max_age: Duration,
    per_shard: usize,
    shards: Box<[Mutex<Shard<K, V>>]>,
}

struct Shard<K, V> {
    /// Bumped by every forgetting of a key of this shard.
    forgotten: u64,
    values: HashMap<K, (Arc<V>, DateTime<Utc>)>,
}

/// What a miss hands out: the value made after it may be kept with [`Remembered::keep`].
#[derive(Debug, Clone, Copy)]
#[must_use = "a value is kept only with the ticket of the miss it was made after"]
pub struct Making {
    shard: usize,
    forgotten: u64,
    at: DateTime<Utc>,
}

impl<K: Hash + Eq, V> Remembered<K, V> {
    /// A map whose values are answered for `max_age` and which holds about `capacity` values.
    pub fn new(max_age: Duration, capacity: usize) -> Self {
        Self {
            max_age,
            per_shard: capacity.div_ceil(SHARDS).max(1),
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        forgotten: 0,
                        values: HashMap::new(),
                    })
                })
                .collect(),
        }
    }

    fn shard_of<Q: Hash + ?Sized>(key: &Q) -> usize {
        // A fixed hash: a key and its borrowed form must land in the same shard.
        (BuildHasherDefault::<DefaultHasher>::default().hash_one(key) as usize) % SHARDS
    }

    fn lock(&self, shard: usize) -> MutexGuard<'_, Shard<K, V>> {
        self.shards[shard].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The value of `key` if one was kept less than `max_age` before `now`; otherwise the ticket
    /// with which to keep the value made now.
    pub fn get<Q>(&self, key: &Q, now: DateTime<Utc>) -> Result<Arc<V>, Making>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let shard = Self::shard_of(key);
        let guard = self.lock(shard);
        match guard.values.get(key) {
            // A clock that went back makes every value suspect.
            Some((value, made)) if now >= *made && now < *made + self.max_age => Ok(value.clone()),
            _ => Err(Making {
                shard,
                forgotten: guard.forgotten,
                at: now,
            }),
        }
    }

    /// Keeps `value` for `key`, unless `key`'s shard forgot anything since `ticket` was handed
    /// out (the value may have been made from what was forgotten).
    pub fn keep(&self, key: K, value: Arc<V>, ticket: Making) {
        debug_assert_eq!(Self::shard_of(&key), ticket.shard);
        let mut guard = self.lock(ticket.shard);
        if guard.forgotten != ticket.forgotten {
            return;
        }
        if guard.values.len() >= self.per_shard && !guard.values.contains_key(&key) {
            let oldest_kept = ticket.at - self.max_age;
            guard.values.retain(|_, (_, made)| *made > oldest_kept);
            if guard.values.len() >= self.per_shard {
                guard.values.clear();
            }
        }
        guard.values.insert(key, (value, ticket.at));
    }

    /// Drops the value of `key`; a value being made meanwhile is not kept.
    pub fn forget<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut guard = self.lock(Self::shard_of(key));
        guard.forgotten += 1;
        guard.values.remove(key);
    }

    /// Drops every value; none being made meanwhile is kept.
    pub fn forget_all(&self) {
        for shard in 0..SHARDS {
            let mut guard = self.lock(shard);
            guard.forgotten += 1;
            guard.values.clear();
        }
    }

    /// How many values are held (expired ones included until they are replaced).
    pub fn len(&self) -> usize {
        (0..SHARDS).map(|shard| self.lock(shard).values.len()).sum()
    }

    /// Whether no value is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K, V> std::fmt::Debug for Remembered<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remembered")
            .field("max_age", &self.max_age)
            .field("per_shard", &self.per_shard)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    fn map() -> Remembered<String, u32> {
        Remembered::new(Duration::seconds(10), 1024)
    }

    #[test]
    fn a_kept_value_is_answered_until_it_is_too_old() {
        let m = map();
        let ticket = m.get("a", at(0)).unwrap_err();
        m.keep("a".into(), Arc::new(1), ticket);
        assert_eq!(*m.get("a", at(9)).unwrap(), 1);
        assert!(m.get("a", at(10)).is_err(), "max_age reached");
        assert!(m.get("a", at(-1)).is_err(), "the clock went back");
    }

    #[test]
    fn a_value_made_while_its_key_was_forgotten_is_not_kept() {
        let m = map();
        let ticket = m.get("a", at(0)).unwrap_err();
        m.forget("a");
        m.keep("a".into(), Arc::new(1), ticket);
        assert!(m.get("a", at(1)).is_err());
        let ticket = m.get("a", at(0)).unwrap_err();
        m.forget_all();
        m.keep("a".into(), Arc::new(1), ticket);
        assert!(m.get("a", at(1)).is_err());
    }

    #[test]
    fn forgetting_one_key_leaves_the_others_and_other_shards_keep_making() {
        let m = map();
        let keys: Vec<String> = (0..200).map(|i| format!("k{i}")).collect();
        for key in &keys {
            let ticket = m.get(key.as_str(), at(0)).unwrap_err();
            m.keep(key.clone(), Arc::new(1), ticket);
        }
        let other_shard = keys
            .iter()
            .find(|k| {
                Remembered::<String, u32>::shard_of(k.as_str())
                    != Remembered::<String, u32>::shard_of("k0")
            })
            .unwrap();
        m.forget(other_shard.as_str());
        assert!(m.get(other_shard.as_str(), at(1)).is_err());
        assert_eq!(m.len(), 199);
        m.forget("k0");
        let ticket = m.get("k0", at(1)).unwrap_err();
        m.forget(other_shard.as_str());
        m.keep("k0".into(), Arc::new(2), ticket);
        assert_eq!(*m.get("k0", at(2)).unwrap(), 2);
    }

    #[test]
    fn a_full_shard_makes_room_and_the_map_stays_bounded() {
        let m: Remembered<u32, u32> = Remembered::new(Duration::seconds(10), 64);
        for i in 0..10_000 {
            let ticket = m.get(&i, at(i64::from(i % 20))).unwrap_err();
            m.keep(i, Arc::new(i), ticket);
        }
        assert!(m.len() <= 64, "{}", m.len());
        let ticket = m.get(&10_001, at(30)).unwrap_err();
        m.keep(10_001, Arc::new(1), ticket);
        assert_eq!(*m.get(&10_001, at(30)).unwrap(), 1);
    }
}
