//! The request journal: the last N requests (a bounded ring, in memory), with who made them and
//! how they ended, for people debugging their clients (`GET /graphpilot/requests`,
//! `graphpilot requests --tail`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::edm::DateTimeOffset;

/// One finished request.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JournalEntry {
    /// Position in the journal since the start (increasing; `--tail` asks for what is after).
    pub sequence: u64,
    /// Written out as text only when asked for (formatting it per request cost more than
    /// keeping it).
    #[serde(serialize_with = "as_text")]
    pub time: DateTimeOffset,
    pub request_id: String,
    pub client_request_id: String,
    pub tenant: Option<String>,
    pub app: Option<String>,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub status: u16,
    pub latency_ms: f64,
    /// Refused by the request limits (429 from throttling).
    pub throttled: bool,
    /// Answered by an injected fault rather than by the service.
    pub faulted: bool,
}

fn as_text<S: serde::Serializer>(time: &DateTimeOffset, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(time)
}

/// Who the request turned out to be from; the dispatcher fills it in once the token checks out.
#[derive(Clone, Default, Debug)]
pub struct Caller {
    slot: Arc<Mutex<Option<(String, String)>>>,
}

impl Caller {
    pub fn set(&self, tenant: &str, app: &str) {
        *self.slot.lock().expect("caller lock") = Some((tenant.to_string(), app.to_string()));
    }

    pub fn get(&self) -> Option<(String, String)> {
        self.slot.lock().expect("caller lock").clone()
    }
}

/// Marks a response as produced by fault injection (a response extension).
#[derive(Clone, Copy, Debug)]
pub struct Faulted;

/// What to look for in the journal.
#[derive(Debug, Default)]
pub struct JournalFilter {
    pub tenant: Option<String>,
    pub app: Option<String>,
    pub status: Option<u16>,
    /// Matches paths that contain this text (case-insensitive).
    pub path: Option<String>,
    pub since: Option<DateTimeOffset>,
    pub until: Option<DateTimeOffset>,
    /// Only entries after this sequence number.
    pub after: Option<u64>,
    pub limit: usize,
}

pub struct Journal {
    capacity: usize,
    entries: Mutex<(u64, VecDeque<(DateTimeOffset, JournalEntry)>)>,
}

impl Journal {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Mutex::new((0, VecDeque::with_capacity(capacity.min(65_536)))),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Appends an entry (its sequence is assigned here), dropping the oldest beyond capacity.
    pub fn record(&self, at: DateTimeOffset, mut entry: JournalEntry) {
        if self.capacity == 0 {
            return;
        }
        let mut guard = self.entries.lock().expect("journal lock");
        let (next, entries) = &mut *guard;
        *next += 1;
        entry.sequence = *next;
        if entries.len() == self.capacity {
            entries.pop_front();
        }
        entries.push_back((at, entry));
    }

    /// Matching entries, oldest first, at most `filter.limit` (the newest ones).
    pub fn query(&self, filter: &JournalFilter) -> Vec<JournalEntry> {
        let guard = self.entries.lock().expect("journal lock");
        let path = filter.path.as_ref().map(|path| path.to_ascii_lowercase());
        let mut matches: Vec<JournalEntry> = guard
            .1
            .iter()
            .rev()
            .filter(|(at, entry)| {
                filter.after.is_none_or(|after| entry.sequence > after)
                    && filter.since.is_none_or(|since| *at >= since)
                    && filter.until.is_none_or(|until| *at <= until)
                    && filter.status.is_none_or(|status| entry.status == status)
                    && filter
                        .tenant
                        .as_ref()
                        .is_none_or(|tenant| entry.tenant.as_ref() == Some(tenant))
                    && filter
                        .app
                        .as_ref()
                        .is_none_or(|app| entry.app.as_ref() == Some(app))
                    && path
                        .as_ref()
                        .is_none_or(|path| entry.path.to_ascii_lowercase().contains(path))
            })
            .take(filter.limit)
            .map(|(_, entry)| entry.clone())
            .collect();
        matches.reverse();
        matches
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, status: u16) -> JournalEntry {
        JournalEntry {
            sequence: 0,
            time: DateTimeOffset::MIN,
            request_id: path.into(),
            client_request_id: path.into(),
            tenant: Some("contoso".into()),
            app: None,
            method: "GET".into(),
            path: path.into(),
            query: None,
            status,
            latency_ms: 0.1,
            throttled: false,
            faulted: false,
        }
    }

    #[test]
    fn the_journal_keeps_the_newest_entries_and_filters_them() {
        let journal = Journal::new(3);
        for (n, status) in [200, 404, 200, 429].into_iter().enumerate() {
            journal.record(DateTimeOffset::now(), entry(&format!("/p{n}"), status));
        }
        let all = journal.query(&JournalFilter {
            limit: 10,
            ..JournalFilter::default()
        });
        let paths: Vec<_> = all.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["/p1", "/p2", "/p3"]);
        assert_eq!(all[2].sequence, 4);
        let not_found = journal.query(&JournalFilter {
            status: Some(404),
            limit: 10,
            ..JournalFilter::default()
        });
        assert_eq!(not_found.len(), 1);
        let after = journal.query(&JournalFilter {
            after: Some(3),
            limit: 10,
            ..JournalFilter::default()
        });
        assert_eq!(after.len(), 1);
        let newest = journal.query(&JournalFilter {
            limit: 1,
            ..JournalFilter::default()
        });
        assert_eq!(newest[0].path, "/p3");
    }
}
