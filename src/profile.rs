//! The production profile (reports-and-sync.md B): which of production Graph's quirks a server
//! copies, resolved once from a profile name, a TOML file and `--quirk` flags into typed values.

use std::fmt;

/// A profile or quirk that cannot be used: `serve` exits 2 naming it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProfileName {
    /// api.md unchanged.
    Emulator,
    /// Production Graph's behaviour, quirk by quirk.
    Graph,
}

impl ProfileName {
    pub fn parse(text: &str) -> Result<Self, UsageError> {
        match text.to_ascii_lowercase().as_str() {
            "emulator" => Ok(ProfileName::Emulator),
            "graph" => Ok(ProfileName::Graph),
            _ => Err(UsageError(format!(
                "unknown profile '{text}': use emulator (the documented contract) or graph (production's quirks)"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ProfileName::Emulator => "emulator",
            ProfileName::Graph => "graph",
        }
    }
}

/// What `$orderby` on events does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderBy {
    Reject,
    Ignore,
    Honour,
}

/// What query options written without `$` do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dollarless {
    Accept,
    Ignore,
}

/// What a `microsoft.graph.deviceManagementAutopilotEvent/prop` path in `$filter` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypeCastPaths {
    Accept,
    Reject,
}

/// The effective quirks of a server.
#[derive(Clone, Debug, PartialEq)]
pub struct Quirks {
    pub max_page_size: u64,
    pub order_by: OrderBy,
    pub dollarless: Dollarless,
    pub type_cast_paths: TypeCastPaths,
    /// The chance (0–1) that a 429 lacks `Retry-After`.
    pub retry_after_omitted: f64,
    /// 0: off; N: events older than N days are not served.
    pub retention_days: u32,
    /// Seconds an export job stays `notStarted` at least.
    pub export_delay: f64,
    /// The first read of a completed job shows no url.
    pub export_url_lag: bool,
    pub seed: i64,
}

/// Every quirk's name, in the contract's order.
pub const QUIRK_NAMES: [&str; 9] = [
    "maxPageSize",
    "orderBy",
    "dollarless",
    "typeCastPaths",
    "retryAfterOmitted",
    "retentionDays",
    "exportDelay",
    "exportUrlLag",
    "seed",
];

impl Quirks {
    /// The quirks a profile sets.
    pub fn of(profile: ProfileName) -> Self {
        match profile {
            ProfileName::Emulator => Quirks {
                max_page_size: 1000,
                order_by: OrderBy::Honour,
                dollarless: Dollarless::Accept,
                type_cast_paths: TypeCastPaths::Accept,
                retry_after_omitted: 0.0,
                retention_days: 0,
                export_delay: 0.0,
                export_url_lag: false,
                seed: 0,
            },
            ProfileName::Graph => Quirks {
                max_page_size: 50,
                order_by: OrderBy::Reject,
                dollarless: Dollarless::Accept,
                type_cast_paths: TypeCastPaths::Accept,
                retry_after_omitted: 0.25,
                retention_days: 30,
                export_delay: 5.0,
                export_url_lag: true,
                seed: 0,
            },
        }
    }

    /// Sets one quirk from its text form (`--quirk NAME=VALUE`, or a TOML value as text).
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), UsageError> {
        let canonical = QUIRK_NAMES
            .iter()
            .find(|known| known.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                UsageError(format!(
                    "unknown quirk '{name}': the quirks are {}",
                    QUIRK_NAMES.join(", ")
                ))
            })?;
        let bad = |expected: &str| {
            UsageError(format!(
                "invalid value '{value}' for quirk {canonical}: {expected}"
            ))
        };
        let lower = value.trim().to_ascii_lowercase();
        match *canonical {
            "maxPageSize" => {
                self.max_page_size = lower
                    .parse()
                    .ok()
                    .filter(|size| (1..=1000).contains(size))
                    .ok_or_else(|| bad("a page size from 1 to 1000"))?;
            }
            "orderBy" => {
                self.order_by = match lower.as_str() {
                    "reject" => OrderBy::Reject,
                    "ignore" => OrderBy::Ignore,
                    "honour" | "honor" => OrderBy::Honour,
                    _ => return Err(bad("reject, ignore or honour")),
                }
            }
            "dollarless" => {
                self.dollarless = match lower.as_str() {
                    "accept" => Dollarless::Accept,
                    "ignore" => Dollarless::Ignore,
                    _ => return Err(bad("accept or ignore")),
                }
            }
            "typeCastPaths" => {
                self.type_cast_paths = match lower.as_str() {
                    "accept" => TypeCastPaths::Accept,
                    "reject" => TypeCastPaths::Reject,
                    _ => return Err(bad("accept or reject")),
                }
            }
            "retryAfterOmitted" => {
                self.retry_after_omitted = lower
                    .parse::<f64>()
                    .ok()
                    .filter(|chance| (0.0..=1.0).contains(chance))
                    .ok_or_else(|| bad("a chance from 0 to 1, e.g. 0.25"))?;
            }
            "retentionDays" => {
                self.retention_days = lower
                    .parse::<u32>()
                    .ok()
                    .filter(|days| *days <= 365_000)
                    .ok_or_else(|| bad("a number of days (0 turns it off)"))?;
            }
            "exportDelay" => {
                self.export_delay = lower
                    .parse::<f64>()
                    .ok()
                    .filter(|seconds| seconds.is_finite() && (0.0..=86_400.0).contains(seconds))
                    .ok_or_else(|| bad("seconds from 0 to 86400"))?;
            }
            "exportUrlLag" => {
                self.export_url_lag = match lower.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(bad("true or false")),
                }
            }
            "seed" => {
                self.seed = lower.parse().map_err(|_| bad("an integer"))?;
            }
            _ => unreachable!("every quirk name is handled"),
        }
        Ok(())
    }

    /// The effective values as JSON, for `GET /graphpilot/profile`.
    pub fn to_json(&self) -> serde_json::Value {
        let word = |text: &str| serde_json::Value::from(text);
        serde_json::json!({
            "maxPageSize": self.max_page_size,
            "orderBy": word(match self.order_by {
                OrderBy::Reject => "reject",
                OrderBy::Ignore => "ignore",
                OrderBy::Honour => "honour",
            }),
            "dollarless": word(match self.dollarless {
                Dollarless::Accept => "accept",
                Dollarless::Ignore => "ignore",
            }),
            "typeCastPaths": word(match self.type_cast_paths {
                TypeCastPaths::Accept => "accept",
                TypeCastPaths::Reject => "reject",
            }),
            "retryAfterOmitted": self.retry_after_omitted,
            "retentionDays": self.retention_days,
            "exportDelay": number(self.export_delay),
            "exportUrlLag": self.export_url_lag,
            "seed": self.seed,
        })
    }

    /// The oldest `eventDateTime` served (ticks), when retention is on.
    pub fn retention_cutoff_ticks(&self, now: crate::edm::DateTimeOffset) -> Option<i64> {
        retention_cutoff(self.retention_days, now)
    }
}

/// The oldest `eventDateTime` (ticks) that `days` of retention serve at `now`; none when off.
pub fn retention_cutoff(days: u32, now: crate::edm::DateTimeOffset) -> Option<i64> {
    (days > 0).then(|| now.ticks() - i64::from(days) * 86_400 * crate::edm::TICKS_PER_SECOND)
}

/// Whole numbers as integers (`5`, not `5.0`).
fn number(value: f64) -> serde_json::Value {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        serde_json::Value::from(value as i64)
    } else {
        serde_json::Value::from(value)
    }
}

/// A profile with its effective quirks.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    pub name: ProfileName,
    pub quirks: Quirks,
}

impl Profile {
    /// The profile's quirks, then the file's (TOML, top-level `NAME = value`), then the flags'
    /// (`NAME=VALUE`): flag > file > profile.
    pub fn resolve(
        name: &str,
        file: Option<(&str, &str)>,
        flags: &[String],
    ) -> Result<Profile, UsageError> {
        let name = ProfileName::parse(name)?;
        let mut quirks = Quirks::of(name);
        if let Some((path, text)) = file {
            let table: toml::Table = toml::from_str(text)
                .map_err(|error| UsageError(format!("--quirks {path}: not TOML: {error}")))?;
            for (key, value) in &table {
                let text = match value {
                    toml::Value::String(text) => text.clone(),
                    toml::Value::Integer(number) => number.to_string(),
                    toml::Value::Float(number) => number.to_string(),
                    toml::Value::Boolean(flag) => flag.to_string(),
                    other => {
                        return Err(UsageError(format!(
                            "--quirks {path}: invalid value {other} for quirk {key}"
                        )));
                    }
                };
                quirks
                    .set(key, &text)
                    .map_err(|error| UsageError(format!("--quirks {path}: {error}")))?;
            }
        }
        for flag in flags {
            let (key, value) = flag.split_once('=').ok_or_else(|| {
                UsageError(format!(
                    "--quirk '{flag}' is not NAME=VALUE (e.g. --quirk maxPageSize=50)"
                ))
            })?;
            quirks.set(key.trim(), value)?;
        }
        Ok(Profile { name, quirks })
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"profile": self.name.as_str(), "quirks": self.quirks.to_json()})
    }
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            name: ProfileName::Emulator,
            quirks: Quirks::of(ProfileName::Emulator),
        }
    }
}

impl fmt::Display for ProfileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_outrank_the_file_which_outranks_the_profile() {
        let file = "maxPageSize = 20\norderBy = \"ignore\"\nexportUrlLag = false\n";
        let profile = Profile::resolve(
            "graph",
            Some(("q.toml", file)),
            &["maxPageSize=7".to_string()],
        )
        .unwrap();
        assert_eq!(profile.quirks.max_page_size, 7);
        assert_eq!(profile.quirks.order_by, OrderBy::Ignore);
        assert!(!profile.quirks.export_url_lag);
        assert_eq!(profile.quirks.retention_days, 30);
        assert_eq!(profile.to_json()["quirks"]["exportDelay"], 5);
    }

    #[test]
    fn unknown_names_and_values_are_named() {
        let error = |result: Result<Profile, UsageError>| result.unwrap_err().0;
        assert!(error(Profile::resolve("prod", None, &[])).contains("'prod'"));
        assert!(
            error(Profile::resolve("graph", None, &["pageSize=5".into()])).contains("'pageSize'")
        );
        assert!(error(Profile::resolve("graph", None, &["maxPageSize=0".into()])).contains("'0'"));
        assert!(
            error(Profile::resolve("graph", None, &["orderBy=sort".into()])).contains("'sort'")
        );
        assert!(
            error(Profile::resolve(
                "graph",
                Some(("q.toml", "bogus = 1")),
                &[]
            ))
            .contains("'bogus'")
        );
        assert!(error(Profile::resolve("graph", None, &["seed".into()])).contains("NAME=VALUE"));
    }
}
