//! Fault injection for testing clients' retry logic: rules (from `--faults FILE` or the admin API)
//! matched on method, path, tenant and app, firing on every n-th matching request or with a
//! probability drawn from a seeded generator (the same run, the same faults). Actions: answer a
//! status with Graph's error body (429 with `Retry-After`), add latency, or drop the connection.
//! A failing fault is answered before the request is handled, so it never changes data; latency
//! delays a request that then runs normally.

use std::sync::Mutex;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// A rule as written in the TOML file or posted to the admin API.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FaultRule {
    /// A name for people (listed, and in the journal's faulted entries' logs).
    #[serde(default)]
    pub name: Option<String>,
    /// HTTP method to match (any when absent).
    #[serde(default)]
    pub method: Option<String>,
    /// Path to match, `*` matching any run of characters (any path when absent), e.g.
    /// `/beta/deviceManagement/autopilotEvents*`. Case-insensitive, like Graph's segments.
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub tenant: Option<String>,
    #[serde(default)]
    pub app: Option<String>,
    /// Fire on the n-th, 2n-th, … matching request.
    #[serde(default)]
    pub every: Option<u64>,
    /// Fire with this probability (0…1) per matching request, drawn from a generator seeded
    /// with `seed`.
    #[serde(default)]
    pub probability: Option<f64>,
    #[serde(default)]
    pub seed: Option<u64>,
    /// Answer this status (429, 500, 502, 503, 504 or 507) with Graph's error body.
    #[serde(default)]
    pub status: Option<u16>,
    /// Seconds for the `Retry-After` header of a 429 or 503 (default 1 for 429).
    #[serde(default)]
    pub retry_after: Option<u64>,
    /// Delay the request (then it runs normally).
    #[serde(default)]
    pub latency: Option<Latency>,
    /// Drop the connection without an answer.
    #[serde(default)]
    pub reset: bool,
}

/// How long a delay lasts.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub enum Latency {
    /// Always this many milliseconds.
    Fixed(u64),
    /// Uniformly between the two bounds, in milliseconds.
    Uniform([u64; 2]),
    /// Log-normal around a median (ms) with spread `sigma` (of the logarithm): mostly near the
    /// median, sometimes much longer, like real network tails.
    Lognormal { median: f64, sigma: f64 },
}

/// What to do with a request.
#[derive(Debug, PartialEq)]
pub enum FaultAction {
    Status {
        status: StatusCode,
        retry_after: Option<u64>,
        rule: String,
    },
    Delay(Duration),
    Reset,
}

/// The most a latency rule may delay a request.
const MAX_LATENCY_MS: f64 = 120_000.0;

/// A rule resolved once, when it is added: every value typed and checked, so matching a request
/// parses nothing.
#[derive(Debug)]
struct ResolvedRule {
    method: Option<Method>,
    /// Lower case: paths match without regard to case.
    path: Option<String>,
    tenant: Option<String>,
    app: Option<String>,
    trigger: Trigger,
    action: Action,
}

#[derive(Debug)]
enum Trigger {
    Always,
    Every(u64),
    Probability(f64),
}

#[derive(Debug)]
enum Action {
    Status {
        status: StatusCode,
        retry_after: Option<u64>,
    },
    Latency(Latency),
    Reset,
}

impl FaultRule {
    /// The rule resolved, or why it cannot work.
    fn resolve(&self) -> Result<ResolvedRule, String> {
        let actions = usize::from(self.status.is_some())
            + usize::from(self.latency.is_some())
            + usize::from(self.reset);
        if actions != 1 {
            return Err("a fault rule needs exactly one action: status, latency or reset".into());
        }
        let action = match (self.status, &self.latency) {
            (Some(status), _) => {
                let injectable = [429, 500, 502, 503, 504, 507].contains(&status);
                let status = StatusCode::from_u16(status)
                    .ok()
                    .filter(|_| injectable)
                    .ok_or_else(|| {
                        format!(
                            "status {status} is not injectable; use 429, 500, 502, 503, 504 or 507"
                        )
                    })?;
                let retry_after = self
                    .retry_after
                    .or((status == StatusCode::TOO_MANY_REQUESTS).then_some(1));
                Action::Status {
                    status,
                    retry_after,
                }
            }
            (None, Some(Latency::Uniform([low, high]))) if low > high => {
                return Err(format!(
                    "uniform latency [{low}, {high}]: the first bound is the lower"
                ));
            }
            (None, Some(Latency::Lognormal { median, sigma }))
                if !(*median > 0.0 && median.is_finite() && *sigma >= 0.0 && sigma.is_finite()) =>
            {
                return Err("lognormal latency needs median > 0 and sigma ≥ 0".into());
            }
            (None, Some(latency)) => Action::Latency(latency.clone()),
            (None, None) => Action::Reset,
        };
        let trigger = match (self.every, self.probability) {
            (Some(0), _) => return Err("every must be at least 1".into()),
            (Some(_), Some(_)) => return Err("use every or probability, not both".into()),
            (_, Some(p)) if !(0.0..=1.0).contains(&p) => {
                return Err(format!("probability {p} is not between 0 and 1"));
            }
            (Some(every), None) => Trigger::Every(every),
            (None, Some(probability)) => Trigger::Probability(probability),
            (None, None) => Trigger::Always,
        };
        let method = match &self.method {
            Some(method) => Some(
                Method::from_bytes(method.to_ascii_uppercase().as_bytes())
                    .map_err(|_| format!("'{method}' is not an HTTP method"))?,
            ),
            None => None,
        };
        Ok(ResolvedRule {
            method,
            path: self.path.as_ref().map(|path| path.to_ascii_lowercase()),
            tenant: self.tenant.clone(),
            app: self.app.clone(),
            trigger,
            action,
        })
    }
}

impl ResolvedRule {
    fn matches(&self, method: &Method, path: &str, tenant: &str, app: &str) -> bool {
        self.method.as_ref().is_none_or(|wanted| wanted == method)
            && self
                .path
                .as_ref()
                .is_none_or(|pattern| glob_matches(pattern, &path.to_ascii_lowercase()))
            && self.tenant.as_ref().is_none_or(|wanted| wanted == tenant)
            && self.app.as_ref().is_none_or(|wanted| wanted == app)
    }
}

/// `*` matches any run of characters; everything else literally.
fn glob_matches(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// A rule with its state: how many requests it matched and its generator.
struct ActiveRule {
    id: u64,
    /// As given, for listing.
    rule: FaultRule,
    resolved: ResolvedRule,
    matched: u64,
    fired: u64,
    rng: ChaCha8Rng,
}

/// The rules in force; checked on every Graph request once the caller is known.
pub struct Faults {
    rules: Mutex<(u64, Vec<ActiveRule>)>,
}

/// A rule as listed.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListedRule {
    pub id: u64,
    #[serde(flatten)]
    pub rule: FaultRule,
    pub matched: u64,
    pub fired: u64,
}

/// The TOML file: `[[rules]]` tables.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultFile {
    #[serde(default)]
    rules: Vec<FaultRule>,
}

impl Faults {
    pub fn new(rules: Vec<FaultRule>) -> Result<Self, String> {
        let faults = Faults {
            rules: Mutex::new((0, Vec::new())),
        };
        for rule in rules {
            faults.add(rule)?;
        }
        Ok(faults)
    }

    /// Rules from a TOML file of `[[rules]]` tables.
    pub fn from_toml(text: &str) -> Result<Vec<FaultRule>, String> {
        toml::from_str::<FaultFile>(text)
            .map(|file| file.rules)
            .map_err(|error| error.to_string())
    }

    /// Adds a rule (resolved first); returns it as listed.
    pub fn add(&self, rule: FaultRule) -> Result<ListedRule, String> {
        let resolved = rule.resolve()?;
        let mut guard = self.rules.lock().expect("faults lock");
        guard.0 += 1;
        let id = guard.0;
        let rng = ChaCha8Rng::seed_from_u64(rule.seed.unwrap_or(0));
        let listed = ListedRule {
            id,
            rule: rule.clone(),
            matched: 0,
            fired: 0,
        };
        guard.1.push(ActiveRule {
            id,
            rule,
            resolved,
            matched: 0,
            fired: 0,
            rng,
        });
        Ok(listed)
    }

    pub fn list(&self) -> Vec<ListedRule> {
        let guard = self.rules.lock().expect("faults lock");
        guard
            .1
            .iter()
            .map(|active| ListedRule {
                id: active.id,
                rule: active.rule.clone(),
                matched: active.matched,
                fired: active.fired,
            })
            .collect()
    }

    /// Removes one rule (`Some(id)`) or all; how many went.
    pub fn clear(&self, id: Option<u64>) -> usize {
        let mut guard = self.rules.lock().expect("faults lock");
        let before = guard.1.len();
        match id {
            Some(id) => guard.1.retain(|active| active.id != id),
            None => guard.1.clear(),
        }
        before - guard.1.len()
    }

    /// The first rule that matches and fires for this request, if any.
    pub fn decide(
        &self,
        method: &Method,
        path: &str,
        tenant: &str,
        app: &str,
    ) -> Option<FaultAction> {
        let mut guard = self.rules.lock().expect("faults lock");
        for active in guard.1.iter_mut() {
            if !active.resolved.matches(method, path, tenant, app) {
                continue;
            }
            active.matched += 1;
            let fires = match active.resolved.trigger {
                Trigger::Every(every) => active.matched % every == 0,
                Trigger::Probability(probability) => active.rng.random_bool(probability),
                Trigger::Always => true,
            };
            if !fires {
                continue;
            }
            active.fired += 1;
            return Some(match &active.resolved.action {
                Action::Reset => FaultAction::Reset,
                Action::Latency(latency) => {
                    let milliseconds = match latency {
                        Latency::Fixed(ms) => *ms as f64,
                        Latency::Uniform([low, high]) => {
                            active.rng.random_range(*low..=*high) as f64
                        }
                        Latency::Lognormal { median, sigma } => {
                            let u1: f64 = active.rng.random_range(f64::EPSILON..1.0);
                            let u2: f64 = active.rng.random();
                            let normal =
                                (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                            median * (sigma * normal).exp()
                        }
                    };
                    FaultAction::Delay(Duration::from_micros(
                        (milliseconds.clamp(0.0, MAX_LATENCY_MS) * 1000.0) as u64,
                    ))
                }
                Action::Status {
                    status,
                    retry_after,
                } => FaultAction::Status {
                    status: *status,
                    retry_after: *retry_after,
                    rule: active
                        .rule
                        .name
                        .clone()
                        .unwrap_or_else(|| format!("fault rule {}", active.id)),
                },
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(extra: &str) -> FaultRule {
        Faults::from_toml(&format!("[[rules]]\n{extra}\n"))
            .unwrap()
            .remove(0)
    }

    #[test]
    fn every_nth_matching_request_fires_and_others_pass() {
        let faults = Faults::new(vec![rule(
            "method = \"POST\"\npath = \"/beta/deviceManagement/autopilotEvents*\"\nevery = 3\nstatus = 503",
        )])
        .unwrap();
        let post = |path: &str| faults.decide(&Method::POST, path, "contoso", "app");
        let fired: Vec<bool> = (0..6)
            .map(|_| post("/beta/deviceManagement/autopilotEvents").is_some())
            .collect();
        assert_eq!(fired, [false, false, true, false, false, true]);
        assert!(
            faults
                .decide(
                    &Method::GET,
                    "/beta/deviceManagement/autopilotEvents",
                    "c",
                    "a"
                )
                .is_none()
        );
        assert!(post("/beta/other").is_none());
        assert_eq!(faults.list()[0].matched, 6);
        assert_eq!(faults.list()[0].fired, 2);
    }

    #[test]
    fn a_seeded_probability_gives_the_same_faults_every_run() {
        let run = || {
            let faults =
                Faults::new(vec![rule("probability = 0.3\nseed = 7\nstatus = 500")]).unwrap();
            (0..200)
                .map(|_| faults.decide(&Method::GET, "/x", "t", "a").is_some())
                .collect::<Vec<_>>()
        };
        let first = run();
        assert_eq!(first, run());
        let fired = first.iter().filter(|f| **f).count();
        assert!((40..80).contains(&fired), "{fired} of 200 at p = 0.3");
    }

    #[test]
    fn rules_that_cannot_work_are_refused() {
        for bad in [
            "status = 404",
            "status = 500\nreset = true",
            "every = 0\nstatus = 500",
            "probability = 1.5\nstatus = 500",
            "latency = { uniform = [500, 100] }",
            "",
        ] {
            let parsed = Faults::from_toml(&format!("[[rules]]\n{bad}\n")).unwrap();
            assert!(parsed[0].resolve().is_err(), "{bad}");
        }
        assert!(Faults::from_toml("[[rules]]\nstatuss = 500\n").is_err());
    }

    #[test]
    fn latencies_stay_in_their_bounds() {
        let faults = Faults::new(vec![rule("latency = { uniform = [10, 20] }")]).unwrap();
        for _ in 0..50 {
            match faults.decide(&Method::GET, "/x", "t", "a") {
                Some(FaultAction::Delay(delay)) => {
                    assert!((10..=20).contains(&(delay.as_millis() as u64)));
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn globs_match_like_shell_patterns() {
        assert!(glob_matches(
            "/beta/*/autopilotevents*",
            "/beta/devicemanagement/autopilotevents/1"
        ));
        assert!(glob_matches("*", "/anything"));
        assert!(!glob_matches("/beta/x", "/beta/xy"));
        assert!(glob_matches("/beta/x*", "/beta/x"));
    }
}
