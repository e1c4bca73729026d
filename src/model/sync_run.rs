//! `graphpilot sync`'s runs (reports-and-sync.md C): a run record as stored and on the wire, and
//! the rule that chooses a run's mode and filter from the watermark and the last full run.

use serde_json::{Value as Json, json};

use crate::edm::DateTimeOffset;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// Everything the source serves.
    Full,
    /// `eventDateTime ge W − overlap`.
    Incremental,
}

impl SyncMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncMode::Full => "full",
            SyncMode::Incremental => "incremental",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [SyncMode::Full, SyncMode::Incremental]
            .into_iter()
            .find(|mode| mode.as_str() == text)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunStatus {
    Running,
    Completed,
    Failed,
    Interrupted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            RunStatus::Running,
            RunStatus::Completed,
            RunStatus::Failed,
            RunStatus::Interrupted,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }
}

/// One failed attempt of a request.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptError {
    pub date_time: String,
    pub url: String,
    /// None: the connection or TLS failed.
    pub status: Option<u16>,
    pub message: String,
}

/// A run record.
#[derive(Clone, Debug, PartialEq)]
pub struct SyncRun {
    pub id: String,
    /// The local tenant.
    pub tenant: String,
    /// The source's URL as given.
    pub source: String,
    pub source_tenant: String,
    pub mode: SyncMode,
    pub status: RunStatus,
    pub start: DateTimeOffset,
    pub end: Option<DateTimeOffset>,
    pub filter_from: Option<DateTimeOffset>,
    pub watermark: Option<DateTimeOffset>,
    pub pages: i64,
    pub fetched: i64,
    pub upserted: i64,
    pub unchanged: i64,
    pub errors: Vec<AttemptError>,
}

impl SyncRun {
    pub fn to_json(&self) -> Json {
        let instant = |value: Option<DateTimeOffset>| value.map(|at| at.to_string());
        json!({
            "id": self.id,
            "tenant": self.tenant,
            "source": self.source,
            "sourceTenant": self.source_tenant,
            "mode": self.mode.as_str(),
            "status": self.status.as_str(),
            "startDateTime": self.start.to_string(),
            "endDateTime": instant(self.end),
            "filterFrom": instant(self.filter_from),
            "watermark": instant(self.watermark),
            "pages": self.pages,
            "fetched": self.fetched,
            "upserted": self.upserted,
            "unchanged": self.unchanged,
            "errors": self.errors,
        })
    }
}

/// What a run reads: everything, or from `W − overlap`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub mode: SyncMode,
    pub filter_from: Option<DateTimeOffset>,
}

/// The rule: a full run when asked (`--full`), when no completed run left a watermark, or when
/// the last completed full run started longer than `full_every` ago; otherwise incremental from
/// `W − overlap`, W being the largest `eventDateTime` completed runs received (from the data,
/// not a clock).
pub fn plan(
    now: DateTimeOffset,
    forced_full: bool,
    watermark: Option<DateTimeOffset>,
    last_full_start: Option<DateTimeOffset>,
    full_every: std::time::Duration,
    overlap: std::time::Duration,
) -> Plan {
    let ticks = |span: std::time::Duration| (span.as_nanos() / 100).min(i64::MAX as u128) as i64;
    let full = Plan {
        mode: SyncMode::Full,
        filter_from: None,
    };
    let Some(watermark) = watermark else {
        return full;
    };
    let stale = last_full_start
        .is_none_or(|start| now.ticks().saturating_sub(start.ticks()) >= ticks(full_every));
    if forced_full || stale {
        return full;
    }
    let from = watermark.ticks().saturating_sub(ticks(overlap)).max(0);
    Plan {
        mode: SyncMode::Incremental,
        filter_from: DateTimeOffset::from_ticks(from),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(text: &str) -> DateTimeOffset {
        DateTimeOffset::parse(text, crate::edm::Seconds::Required).unwrap()
    }

    #[test]
    fn the_watermark_rule() {
        let now = at("2026-12-02T12:00:00Z");
        let day = Duration::from_secs(86_400);
        let overlap = Duration::from_secs(48 * 3600);
        // Nothing completed yet: full.
        assert_eq!(
            plan(now, false, None, None, day, overlap).mode,
            SyncMode::Full
        );
        // A recent full run and a watermark: incremental from W − overlap.
        let recent = Some(at("2026-12-02T06:00:00Z"));
        let w = Some(at("2026-12-02T11:00:00Z"));
        let incremental = plan(now, false, w, recent, day, overlap);
        assert_eq!(incremental.mode, SyncMode::Incremental);
        assert_eq!(incremental.filter_from, Some(at("2026-11-30T11:00:00Z")));
        // --full, or the last full run older than --full-every: full again.
        assert_eq!(
            plan(now, true, w, recent, day, overlap).mode,
            SyncMode::Full
        );
        let old = Some(at("2026-11-30T12:00:00Z"));
        assert_eq!(plan(now, false, w, old, day, overlap).mode, SyncMode::Full);
    }
}
