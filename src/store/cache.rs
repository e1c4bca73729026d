//! A read-through cache of stored entities for an embedded SQLite store, where one server process
//! owns the file. Reads by key skip the hop to SQLite's worker thread, which the profile shows is
//! most of a GET's cost (docs/performance.md). Coherence:
//! - the writer updates or removes entries after each commit, before replying, so a client reads
//!   its own acknowledged writes;
//! - a reader fills an entry only if no write touched the cache since it began its database read
//!   (a generation counter, checked under the same lock the writer takes);
//! - commits by other processes (`graphpilot seed` beside a running server) are noticed through
//!   SQLite's `data_version` and empty the cache within [`POLL_INTERVAL`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::{StoredEntity, Target};

/// Entries kept at most; past it the cache starts again empty.
const CAPACITY: usize = 100_000;
/// How often other processes' commits are looked for.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// (tenant, owning event for details, id).
type Key = (String, Option<String>, String);

fn key(tenant: &str, target: &Target) -> Key {
    match target {
        Target::Event { id } => (tenant.to_string(), None, id.clone()),
        Target::Detail { event_id, id } => (tenant.to_string(), Some(event_id.clone()), id.clone()),
    }
}

#[derive(Default)]
struct Entries {
    generation: u64,
    map: HashMap<Key, StoredEntity>,
}

#[derive(Default)]
pub struct EntityCache {
    entries: Mutex<Entries>,
}

impl EntityCache {
    pub fn get(&self, tenant: &str, target: &Target) -> Option<StoredEntity> {
        let entries = self.entries.lock().expect("cache lock");
        entries.map.get(&key(tenant, target)).cloned()
    }

    /// The generation a reader notes before reading the database.
    pub fn generation(&self) -> u64 {
        self.entries.lock().expect("cache lock").generation
    }

    /// Fills an entry read from the database, unless a write happened since `generation`.
    pub fn fill(&self, tenant: &str, target: &Target, generation: u64, entity: &StoredEntity) {
        let mut entries = self.entries.lock().expect("cache lock");
        if entries.generation != generation {
            return;
        }
        if entries.map.len() >= CAPACITY {
            entries.map.clear();
        }
        entries.map.insert(key(tenant, target), entity.clone());
    }

    /// After a committed create or update.
    pub fn store(&self, tenant: &str, target: &Target, entity: &StoredEntity) {
        let mut entries = self.entries.lock().expect("cache lock");
        entries.generation += 1;
        if entries.map.len() >= CAPACITY {
            entries.map.clear();
        }
        entries.map.insert(key(tenant, target), entity.clone());
    }

    /// After a committed delete: the entity, and for an event its details too.
    pub fn remove(&self, tenant: &str, target: &Target) {
        let mut entries = self.entries.lock().expect("cache lock");
        entries.generation += 1;
        entries.map.remove(&key(tenant, target));
        if let Target::Event { id } = target {
            entries.map.retain(|(t, parent, _), _| {
                !(t == tenant && parent.as_deref() == Some(id.as_str()))
            });
        }
    }

    /// Forgets everything (another process changed the database).
    pub fn clear(&self) {
        let mut entries = self.entries.lock().expect("cache lock");
        entries.generation += 1;
        entries.map.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(etag: &str) -> StoredEntity {
        StoredEntity {
            etag: etag.into(),
            body: "{}".into(),
        }
    }

    #[test]
    fn a_read_that_raced_a_write_does_not_fill_the_cache() {
        let cache = EntityCache::default();
        let target = Target::Event { id: "e".into() };
        let before = cache.generation();
        cache.store("t", &target, &entity("new"));
        cache.fill("t", &target, before, &entity("old"));
        assert_eq!(cache.get("t", &target).unwrap().etag, "new");
    }

    #[test]
    fn deleting_an_event_forgets_its_details_and_nothing_else() {
        let cache = EntityCache::default();
        let event = Target::Event { id: "e".into() };
        let detail = Target::Detail {
            event_id: "e".into(),
            id: "d".into(),
        };
        let other = Target::Detail {
            event_id: "f".into(),
            id: "d".into(),
        };
        for target in [&event, &detail, &other] {
            cache.store("t", target, &entity("x"));
        }
        cache.remove("t", &event);
        assert!(cache.get("t", &event).is_none());
        assert!(cache.get("t", &detail).is_none());
        assert!(cache.get("t", &other).is_some());
        assert!(cache.get("u", &other).is_none(), "tenants are apart");
    }
}
