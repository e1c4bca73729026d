//! Exports: every event of a tenant with its policy status details, in insertion order, read in
//! pages so memory stays flat whatever the tenant's size. The NDJSON line of an event is what
//! `import` reads back (ETags are not exported: every write gives new ones).

use crate::model::AUTOPILOT_EVENT;
use crate::odata::Scalar;
use crate::store::{Collection, Listing, Store, StoreError, StoredEntity};

/// Events per page of an export.
pub const EXPORT_PAGE: u64 = 1000;

/// One exported event.
pub struct ExportedEvent {
    pub event: StoredEntity,
    pub details: Vec<StoredEntity>,
}

impl ExportedEvent {
    /// The event's JSON with its details inline (`policyStatusDetails`), on one line.
    pub fn json(&self) -> String {
        let mut line = String::with_capacity(self.event.body.len() + 400 * self.details.len());
        line.push_str(&self.event.body[..self.event.body.len() - 1]);
        line.push_str(",\"");
        line.push_str(crate::model::DETAILS_NAVIGATION);
        line.push_str("\":[");
        for (n, detail) in self.details.iter().enumerate() {
            if n > 0 {
                line.push(',');
            }
            line.push_str(&detail.body);
        }
        line.push_str("]}");
        line
    }

    /// The event as a CSV row of [`csv_header`]'s columns (details are not part of CSV).
    pub fn csv_row(&self) -> String {
        let object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&self.event.body).unwrap_or_default();
        let mut fields = vec![csv_field(object.get("id"))];
        fields.extend(
            AUTOPILOT_EVENT
                .properties
                .iter()
                .map(|property| csv_field(object.get(property.name))),
        );
        fields.push(self.details.len().to_string());
        fields.join(",")
    }
}

/// CSV columns: `id`, every event property, and how many policy status details it has.
pub fn csv_header() -> String {
    let mut columns = vec!["id".to_string()];
    columns.extend(
        AUTOPILOT_EVENT
            .properties
            .iter()
            .map(|p| p.name.to_string()),
    );
    columns.push("policyStatusDetailCount".into());
    columns.join(",")
}

/// RFC 4180: quoted when it holds a comma, quote or line break; null is empty.
fn csv_field(value: Option<&serde_json::Value>) -> String {
    let text = match value {
        None | Some(serde_json::Value::Null) => return String::new(),
        Some(serde_json::Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// Walks a tenant's events page by page, in insertion order.
pub struct ExportWalker {
    tenant: String,
    after: Option<Vec<Scalar>>,
    done: bool,
}

impl ExportWalker {
    pub fn new(tenant: &str) -> Self {
        Self {
            tenant: tenant.to_string(),
            after: None,
            done: false,
        }
    }

    /// The next page of events with their details; `None` once all were read.
    pub async fn next_page(
        &mut self,
        store: &Store,
    ) -> Result<Option<Vec<ExportedEvent>>, StoreError> {
        if self.done {
            return Ok(None);
        }
        let listing = Listing {
            collection: &Collection::Events,
            filter: None,
            order: &[],
            after: self.after.as_deref(),
            skip: 0,
            limit: EXPORT_PAGE,
        };
        let rows = store.page(&self.tenant, &listing).await?;
        if (rows.len() as u64) < EXPORT_PAGE {
            self.done = true;
        }
        let Some(last) = rows.last() else {
            return Ok(None);
        };
        self.after = Some(last.cursor.clone());
        let ids: Vec<String> = rows.iter().map(|row| row.id.clone()).collect();
        let mut by_event: std::collections::HashMap<String, Vec<StoredEntity>> =
            std::collections::HashMap::new();
        for (event_id, detail) in store.details_of(&self.tenant, &ids).await? {
            by_event.entry(event_id).or_default().push(detail);
        }
        let mut page = Vec::with_capacity(rows.len());
        for row in rows {
            page.push(ExportedEvent {
                details: by_event.remove(&row.id).unwrap_or_default(),
                event: row.entity,
            });
        }
        Ok(Some(page))
    }
}
