//! A read-through cache of stored entities for an embedded SQLite store, where one server process
//! owns the file. Reads by key skip the hop to SQLite's worker thread, which the profile shows is
//! most of a GET's cost (docs/performance.md). Coherence:
//! - the writer updates or removes entries after each commit, before replying, so a client reads
//!   its own acknowledged writes;
//! - a reader fills an entry only if no write touched the cache since it began its database read
//!   (a generation counter, checked under the same lock the writer takes);
//! - commits by other connections (`graphpilot seed` beside a running server, another process)
//!   are noticed through SQLite's `data_version` on the writer's own connection, which does not
//!   count the writer's commits, and empty the cache within [`POLL_INTERVAL`].
//!
//! Beside the entities it keeps whole rendered pages ([`EntityCache::page`]), each valid only at
//! the generation it was rendered at: any commit, or another process's, retires them all.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::{StoredEntity, Target};

/// Entries kept at most; past it the cache starts again empty.
const CAPACITY: usize = 100_000;
/// Bytes of entity JSON kept at most (pages fill the cache too, so a walk of a large fleet would
/// otherwise hold 1.4 KB per event); past it the cache starts again empty.
const CAPACITY_BYTES: usize = 32 * 1024 * 1024;
/// Rendered pages kept at most, and their bytes; past either the pages start again empty.
const PAGE_CAPACITY: usize = 1_024;
const PAGE_CAPACITY_BYTES: usize = 16 * 1024 * 1024;
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
    /// Commits under way (begun, their entries not yet updated): while any is, a page cannot
    /// tell which version its snapshot holds and reads its rows instead (see [`Writing`]).
    writing: u32,
    map: HashMap<Key, StoredEntity>,
    /// Bytes of JSON and ETags held.
    bytes: usize,
    /// (tenant, request) → a rendered page, all rendered at `pages_generation`: the first page
    /// kept at a newer generation lets the others go (a generation never comes back), so stale
    /// pages hold no memory under writes.
    pages: HashMap<(String, String), bytes::Bytes>,
    pages_generation: u64,
    page_bytes: usize,
}

impl Entries {
    fn insert(&mut self, key: Key, entity: &StoredEntity) {
        if self.map.len() >= CAPACITY || self.bytes >= CAPACITY_BYTES {
            self.map.clear();
            self.bytes = 0;
        }
        self.bytes += entity.body.len() + entity.etag.len();
        if let Some(old) = self.map.insert(key, entity.clone()) {
            self.bytes -= old.body.len() + old.etag.len();
        }
    }

    fn remove(&mut self, key: &Key) {
        if let Some(old) = self.map.remove(key) {
            self.bytes -= old.body.len() + old.etag.len();
        }
    }

    fn clear(&mut self) {
        self.map.clear();
        self.bytes = 0;
    }
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
        entries.insert(key(tenant, target), entity);
    }

    /// Marks a commit under way until the guard is dropped (after the cache learned its
    /// outcome): the generation moves at both ends, so a reader that saw neither end, and no
    /// commit under way when it began, read nothing the cache does not hold.
    pub fn writing(&self) -> Writing<'_> {
        let mut entries = self.entries.lock().expect("cache lock");
        entries.generation += 1;
        entries.writing += 1;
        Writing(self)
    }

    /// The generation a page notes before reading keys, if no commit is under way.
    pub fn quiet_generation(&self) -> Option<u64> {
        let entries = self.entries.lock().expect("cache lock");
        (entries.writing == 0).then_some(entries.generation)
    }

    /// The cached entities of `ids` (events of `tenant`), in order, each `None` where not
    /// cached; `None` in all if anything was written since `generation`.
    pub fn events(
        &self,
        tenant: &str,
        ids: &[&str],
        generation: u64,
    ) -> Option<Vec<Option<StoredEntity>>> {
        let entries = self.entries.lock().expect("cache lock");
        if entries.generation != generation || entries.writing > 0 {
            return None;
        }
        let mut probe: Key = (tenant.to_string(), None, String::new());
        Some(
            ids.iter()
                .map(|id| {
                    probe.2.clear();
                    probe.2.push_str(id);
                    entries.map.get(&probe).cloned()
                })
                .collect(),
        )
    }

    /// The page rendered for `request` of `tenant`, if it was rendered at the current generation
    /// and no commit is under way: then it is what rendering it again would give.
    pub fn page(&self, tenant: &str, request: &str) -> Option<bytes::Bytes> {
        let entries = self.entries.lock().expect("cache lock");
        if entries.writing > 0 || entries.pages_generation != entries.generation {
            return None;
        }
        entries
            .pages
            .get(&(tenant.to_string(), request.to_string()))
            .cloned()
    }

    /// Keeps a page rendered from what the database held at `generation` (noted with
    /// [`EntityCache::quiet_generation`] before its first read), unless a commit began or ended
    /// since.
    pub fn keep_page(&self, tenant: &str, request: &str, generation: u64, body: bytes::Bytes) {
        let mut entries = self.entries.lock().expect("cache lock");
        if entries.generation != generation || entries.writing > 0 {
            return;
        }
        if entries.pages_generation != generation
            || entries.pages.len() >= PAGE_CAPACITY
            || entries.page_bytes + body.len() > PAGE_CAPACITY_BYTES
        {
            entries.pages_generation = generation;
            entries.pages.clear();
            entries.page_bytes = 0;
        }
        entries.page_bytes += body.len();
        let key = (tenant.to_string(), request.to_string());
        if let Some(old) = entries.pages.insert(key, body) {
            entries.page_bytes -= old.len();
        }
    }

    /// Whether nothing was written since `generation` and no commit is under way.
    pub fn unchanged_since(&self, generation: u64) -> bool {
        let entries = self.entries.lock().expect("cache lock");
        entries.generation == generation && entries.writing == 0
    }

    /// After a committed create or update.
    pub fn store(&self, tenant: &str, target: &Target, entity: &StoredEntity) {
        let mut entries = self.entries.lock().expect("cache lock");
        entries.generation += 1;
        entries.insert(key(tenant, target), entity);
    }

    /// After a committed delete: the entity, and for an event its details too.
    pub fn remove(&self, tenant: &str, target: &Target) {
        let mut entries = self.entries.lock().expect("cache lock");
        entries.generation += 1;
        entries.remove(&key(tenant, target));
        if let Target::Event { id } = target {
            let mut freed = 0;
            entries.map.retain(|(t, parent, _), entity| {
                let keep = !(t == tenant && parent.as_deref() == Some(id.as_str()));
                if !keep {
                    freed += entity.body.len() + entity.etag.len();
                }
                keep
            });
            entries.bytes -= freed;
        }
    }

    /// Forgets everything (another process changed the database).
    pub fn clear(&self) {
        let mut entries = self.entries.lock().expect("cache lock");
        entries.generation += 1;
        entries.clear();
        entries.pages.clear();
        entries.page_bytes = 0;
    }
}

/// A commit under way (see [`EntityCache::writing`]).
pub struct Writing<'a>(&'a EntityCache);

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        let mut entries = self
            .0
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.generation += 1;
        entries.writing -= 1;
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
    fn a_page_splices_only_when_no_commit_began_or_ended_since_it_looked() {
        let cache = EntityCache::default();
        let target = Target::Event { id: "e".into() };
        cache.store("t", &target, &entity("one"));
        let seen = cache.quiet_generation().unwrap();
        assert_eq!(
            cache.events("t", &["e", "f"], seen).unwrap()[0]
                .as_ref()
                .unwrap()
                .etag,
            "one"
        );
        assert!(cache.events("t", &["e"], seen).unwrap()[0].is_some());
        let writing = cache.writing();
        assert!(cache.quiet_generation().is_none(), "a commit is under way");
        assert!(cache.events("t", &["e"], seen).is_none());
        drop(writing);
        assert!(cache.events("t", &["e"], seen).is_none(), "it ended since");
        assert!(!cache.unchanged_since(seen));
        let now = cache.quiet_generation().unwrap();
        assert!(cache.unchanged_since(now));
        assert!(
            cache.events("u", &["e"], now).unwrap()[0].is_none(),
            "tenants are apart"
        );
    }

    #[test]
    fn a_page_is_served_only_at_the_generation_it_was_rendered_at() {
        let cache = EntityCache::default();
        let body = bytes::Bytes::from_static(b"{}");
        let seen = cache.quiet_generation().unwrap();
        cache.keep_page("t", "/a?x", seen, body.clone());
        assert_eq!(cache.page("t", "/a?x").as_deref(), Some(&b"{}"[..]));
        assert!(cache.page("u", "/a?x").is_none(), "tenants are apart");
        assert!(cache.page("t", "/a?y").is_none());
        let writing = cache.writing();
        assert!(cache.page("t", "/a?x").is_none(), "a commit is under way");
        drop(writing);
        assert!(cache.page("t", "/a?x").is_none(), "a commit ended since");
        let before = cache.quiet_generation().unwrap();
        cache.store("t", &Target::Event { id: "e".into() }, &entity("x"));
        cache.keep_page("t", "/a?x", before, body.clone());
        assert!(
            cache.page("t", "/a?x").is_none(),
            "rendered across a commit: not kept"
        );
        let now = cache.quiet_generation().unwrap();
        cache.keep_page("t", "/a?x", now, body.clone());
        assert!(cache.page("t", "/a?x").is_some());
        cache.store("t", &Target::Event { id: "e".into() }, &entity("y"));
        let newer = cache.quiet_generation().unwrap();
        cache.keep_page("t", "/a?z", newer, body.clone());
        assert_eq!(
            cache.entries.lock().unwrap().pages.len(),
            1,
            "pages of an older generation are let go"
        );
        cache.clear();
        assert!(cache.page("t", "/a?x").is_none(), "another process wrote");
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
