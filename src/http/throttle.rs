//! Intune's published request limits (api.md §12), counted in fixed 20-second windows per app per
//! tenant and per tenant, reads and writes apart. A request is admitted only if every counter it
//! touches has room; a refused request counts nowhere and so has no effect at all.
//!
//! Fixed windows rather than governor's GCRA: Intune documents "N requests per 20 seconds", and a
//! fixed window reproduces exactly that burst shape (a client may spend its whole budget at once).

use std::collections::HashMap;
use std::sync::Mutex;

/// Window length, in milliseconds.
const WINDOW_MS: u64 = 20_000;

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

/// A counter's key: tenant, app (`None` for the tenant-wide counter) and kind.
type CounterKey = (String, Option<String>, Kind);

#[derive(Default)]
struct Counter {
    window: u64,
    count: u32,
}

pub struct Throttle {
    limits: Option<Limits>,
    counters: Mutex<HashMap<CounterKey, Counter>>,
}

impl Throttle {
    /// `None` switches throttling off.
    pub fn new(limits: Option<Limits>) -> Self {
        Self {
            limits,
            counters: Mutex::new(HashMap::new()),
        }
    }

    /// Admits the request, or returns how many whole seconds until the window ends.
    pub fn admit(&self, tenant: &str, app: &str, write: bool, now_ms: u64) -> Result<(), u64> {
        let Some(limits) = self.limits else {
            return Ok(());
        };
        let window = now_ms / WINDOW_MS;
        let mut buckets = vec![
            (
                (tenant.to_string(), Some(app.to_string()), Kind::Any),
                limits.requests_per_app,
            ),
            (
                (tenant.to_string(), None, Kind::Any),
                limits.requests_per_tenant,
            ),
        ];
        if write {
            buckets.push((
                (tenant.to_string(), Some(app.to_string()), Kind::Write),
                limits.writes_per_app,
            ));
            buckets.push((
                (tenant.to_string(), None, Kind::Write),
                limits.writes_per_tenant,
            ));
        }
        let mut counters = self.counters.lock().expect("throttle lock");
        if counters.len() > 100_000 {
            counters.retain(|_, counter| counter.window == window);
        }
        let full = buckets.iter().any(|(key, limit)| {
            counters
                .get(key)
                .is_some_and(|counter| counter.window == window && counter.count >= *limit)
        });
        if full {
            let remaining_ms = (window + 1) * WINDOW_MS - now_ms;
            return Err(remaining_ms.div_ceil(1000).max(1));
        }
        for (key, _) in buckets {
            let counter = counters.entry(key).or_default();
            if counter.window != window {
                *counter = Counter { window, count: 0 };
            }
            counter.count += 1;
        }
        Ok(())
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

    #[test]
    fn the_hundred_and_first_write_of_an_app_in_a_window_is_refused() {
        let throttle = Throttle::new(Some(INTUNE));
        let start = 40_000;
        for _ in 0..100 {
            assert!(throttle.admit("t", "a", true, start).is_ok());
        }
        assert_eq!(throttle.admit("t", "a", true, start + 5_500), Err(15));
        // Reads still pass, another app of the tenant may still write.
        assert!(throttle.admit("t", "a", false, start).is_ok());
        assert!(throttle.admit("t", "b", true, start).is_ok());
        // The next window starts afresh.
        assert!(throttle.admit("t", "a", true, start + 20_000).is_ok());
    }

    #[test]
    fn the_tenant_limit_binds_across_apps_and_refusals_do_not_count() {
        let throttle = Throttle::new(Some(INTUNE));
        for _ in 0..100 {
            assert!(throttle.admit("t", "a", true, 0).is_ok());
            assert!(throttle.admit("t", "b", true, 0).is_ok());
        }
        assert!(throttle.admit("t", "c", true, 0).is_err());
        assert!(
            throttle.admit("u", "c", true, 0).is_ok(),
            "other tenants are apart"
        );
        // Refused writes did not consume read budget beyond the admitted ones.
        for _ in 0..(1_000 - 100) {
            assert!(throttle.admit("t", "a", false, 0).is_ok());
        }
        assert!(throttle.admit("t", "a", false, 0).is_err());
    }

    #[test]
    fn off_admits_everything() {
        let throttle = Throttle::new(None);
        for _ in 0..10_000 {
            assert!(throttle.admit("t", "a", true, 0).is_ok());
        }
    }
}
