//! Intune's published request limits (api.md §12), counted in fixed 20-second windows per app per
//! tenant and per tenant, reads and writes apart. A request is admitted only if every counter it
//! touches has room; a refused request counts nowhere and so has no effect at all.
//!
//! Each node admits from a local budget per counter. A single node owns the whole limit of a
//! window. Nodes sharing a database instead claim the limit from it in small chunks with an atomic
//! update, so together they never admit more than the limit (at worst they leave a chunk per node
//! unused). Fixed windows rather than governor's GCRA: Intune documents "N requests per 20
//! seconds", and a fixed window reproduces exactly that burst shape.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::store::Store;

/// Window length, in milliseconds.
const WINDOW_MS: u64 = 20_000;
/// Nodes sharing a database claim this share of a limit at a time (1/20: at most 5% unused per node).
const CHUNK_DIVISOR: u32 = 20;

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub writes_per_app: u32,
    pub writes_per_tenant: u32,
    pub requests_per_app: u32,
    pub requests_per_tenant: u32,
}

/// Intune's limits for this service.
pub const INTUNE: Limits = Limits {
    writes_per_app: 100,
    writes_per_tenant: 200,
    requests_per_app: 1_000,
    requests_per_tenant: 2_000,
};

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Kind {
    Write,
    Any,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Write => "write",
            Kind::Any => "any",
        }
    }
}

/// A counter's key: tenant, app (`None` for the tenant-wide counter) and kind.
type CounterKey = (String, Option<String>, Kind);

#[derive(Default)]
struct Counter {
    window: u64,
    /// Requests this node may still admit in the window.
    budget: u32,
    /// How much of the limit this node has claimed in the window.
    claimed: u32,
    /// No more can be claimed in this window.
    exhausted: bool,
}

pub struct Throttle {
    limits: Option<Limits>,
    /// The database whose nodes share the limits, if there are several.
    shared: Option<Arc<Store>>,
    counters: Mutex<HashMap<CounterKey, Counter>>,
    last_cleanup: AtomicU64,
}

impl Throttle {
    /// `limits: None` switches throttling off; `shared` makes nodes of one database share limits.
    pub fn new(limits: Option<Limits>, shared: Option<Arc<Store>>) -> Self {
        Self {
            limits,
            shared,
            counters: Mutex::new(HashMap::new()),
            last_cleanup: AtomicU64::new(0),
        }
    }

    /// Admits the request, or returns how many whole seconds until the window ends.
    pub async fn admit(
        &self,
        tenant: &str,
        app: &str,
        write: bool,
        now_ms: u64,
    ) -> Result<(), u64> {
        let Some(limits) = self.limits else {
            return Ok(());
        };
        let window = now_ms / WINDOW_MS;
        let retry_after = ((window + 1) * WINDOW_MS - now_ms).div_ceil(1000).max(1);
        let key = |app: Option<&str>, kind| (tenant.to_string(), app.map(str::to_string), kind);
        let mut buckets = vec![
            (key(Some(app), Kind::Any), limits.requests_per_app),
            (key(None, Kind::Any), limits.requests_per_tenant),
        ];
        if write {
            buckets.push((key(Some(app), Kind::Write), limits.writes_per_app));
            buckets.push((key(None, Kind::Write), limits.writes_per_tenant));
        }
        self.cleanup(window).await;
        // Concurrent requests may take the budget just claimed: retry a few times, then refuse.
        for _ in 0..8 {
            let needy: Vec<(CounterKey, u32)> = {
                let mut counters = self.counters.lock().expect("throttle lock");
                if counters.len() > 100_000 {
                    counters.retain(|_, counter| counter.window == window);
                }
                let mut needy = Vec::new();
                for (key, limit) in &buckets {
                    let counter = counters.entry(key.clone()).or_default();
                    if counter.window != window {
                        *counter = Counter {
                            window,
                            ..Counter::default()
                        };
                    }
                    if counter.budget == 0 {
                        if counter.exhausted {
                            return Err(retry_after);
                        }
                        needy.push((key.clone(), *limit));
                    }
                }
                if needy.is_empty() {
                    for (key, _) in &buckets {
                        if let Some(counter) = counters.get_mut(key) {
                            counter.budget -= 1;
                        }
                    }
                    return Ok(());
                }
                needy
            };
            for (key, limit) in needy {
                let claimed = self
                    .counters
                    .lock()
                    .expect("throttle lock")
                    .get(&key)
                    .map_or(0, |c| c.claimed);
                let granted = self.claim(&key, window, limit, claimed).await;
                let mut counters = self.counters.lock().expect("throttle lock");
                if let Some(counter) = counters.get_mut(&key).filter(|c| c.window == window) {
                    counter.budget += granted;
                    counter.claimed += granted;
                    if granted == 0 {
                        counter.exhausted = true;
                    }
                }
            }
        }
        Err(retry_after)
    }

    /// More budget for a counter: the rest of the limit on a lone node, a chunk from the database
    /// when nodes share one.
    async fn claim(&self, key: &CounterKey, window: u64, limit: u32, claimed: u32) -> u32 {
        let Some(store) = &self.shared else {
            return limit.saturating_sub(claimed);
        };
        let (tenant, app, kind) = key;
        let chunk = (limit / CHUNK_DIVISOR).max(1);
        match store
            .claim_throttle_budget(
                tenant,
                app.as_deref().unwrap_or(""),
                kind.name(),
                window as i64,
                chunk,
                limit,
            )
            .await
        {
            Ok(granted) => granted,
            Err(error) => {
                // Throttling must not take the service down: admit this one and say why.
                tracing::warn!(error = %error, "shared throttle counter unavailable; admitting");
                1
            }
        }
    }

    /// Drops the shared counters of past windows, once per window per node.
    async fn cleanup(&self, window: u64) {
        let Some(store) = &self.shared else {
            return;
        };
        if self.last_cleanup.swap(window, Ordering::Relaxed) == window {
            return;
        }
        if let Err(error) = store
            .forget_throttle_windows_before(window as i64 - 1)
            .await
        {
            tracing::warn!(error = %error, "cannot drop old throttle windows");
        }
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_hundred_and_first_write_of_an_app_in_a_window_is_refused() {
        let throttle = Throttle::new(Some(INTUNE), None);
        let start = 40_000;
        for _ in 0..100 {
            assert!(throttle.admit("t", "a", true, start).await.is_ok());
        }
        assert_eq!(throttle.admit("t", "a", true, start + 5_500).await, Err(15));
        // Reads still pass, another app of the tenant may still write.
        assert!(throttle.admit("t", "a", false, start).await.is_ok());
        assert!(throttle.admit("t", "b", true, start).await.is_ok());
        // The next window starts afresh.
        assert!(throttle.admit("t", "a", true, start + 20_000).await.is_ok());
    }

    #[tokio::test]
    async fn the_tenant_limit_binds_across_apps_and_refusals_do_not_count() {
        let throttle = Throttle::new(Some(INTUNE), None);
        for _ in 0..100 {
            assert!(throttle.admit("t", "a", true, 0).await.is_ok());
            assert!(throttle.admit("t", "b", true, 0).await.is_ok());
        }
        assert!(throttle.admit("t", "c", true, 0).await.is_err());
        assert!(
            throttle.admit("u", "c", true, 0).await.is_ok(),
            "other tenants are apart"
        );
        // Refused writes did not consume read budget beyond the admitted ones.
        for _ in 0..(1_000 - 100) {
            assert!(throttle.admit("t", "a", false, 0).await.is_ok());
        }
        assert!(throttle.admit("t", "a", false, 0).await.is_err());
    }

    #[tokio::test]
    async fn off_admits_everything() {
        let throttle = Throttle::new(None, None);
        for _ in 0..10_000 {
            assert!(throttle.admit("t", "a", true, 0).await.is_ok());
        }
    }
}
