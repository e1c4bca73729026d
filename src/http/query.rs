//! Query options resolved against the model for one request (api.md §7): the bound filter, the
//! sort, the selected properties and the expansion, plus how they shape context URLs, entity
//! representations and paging cursors.

use serde_json::Value as Json;

use super::error::ApiError;
use super::response::push_entity;
use crate::edm::DateTimeOffset;
use crate::model::{AUTOPILOT_EVENT, EntitySchema, POLICY_STATUS_DETAIL};
use crate::odata::{
    Column, Predicate, QueryOptions, Scalar, SortDirection, bind_filter_with, events_since,
};
use crate::profile::{OrderBy, Quirks};
use crate::store::{SortKeys, StoredEntity, sort_keys};

/// The navigation property of events.
use crate::model::DETAILS_NAVIGATION as DETAILS;

/// `$select` resolved to canonical property names (`None`: every property).
pub type Selection = Option<Vec<&'static str>>;

pub struct ResolvedQuery {
    pub filter: Option<Predicate>,
    pub order: Vec<(Column, SortDirection)>,
    pub select: Selection,
    /// `Some` when `$expand=policyStatusDetails`, with the nested `$select`.
    pub expand: Option<Selection>,
}

impl ResolvedQuery {
    /// Binds the options to `schema` under the server's quirks: `typeCastPaths` for `$filter`,
    /// `orderBy` for `$orderby` on events, and `retentionDays`, which hides old events from
    /// every list and count by adding `eventDateTime ge {cutoff}` to the filter.
    pub fn resolve(
        schema: &'static EntitySchema,
        options: &QueryOptions,
        quirks: &Quirks,
    ) -> Result<Self, ApiError> {
        let is_events = std::ptr::eq(schema, &AUTOPILOT_EVENT);
        let mut filter = options
            .filter
            .as_deref()
            .map(|text| bind_filter_with(schema, text, quirks.type_cast_paths))
            .transpose()
            .map_err(|error| ApiError::bad_request(error.to_string()))?;
        if is_events && let Some(cutoff) = quirks.retention_cutoff_ticks(DateTimeOffset::now()) {
            let retained = events_since(cutoff);
            filter = Some(match filter {
                Some(given) => Predicate::And(vec![retained, given]),
                None => retained,
            });
        }
        let mut order = Vec::new();
        let keys = match (&options.orderby, quirks.order_by) {
            (Some(keys), OrderBy::Reject) if is_events => {
                return Err(ApiError::bad_request(format!(
                    "The query specified in the URI is not valid. The property '{}' cannot be used in the $orderby query option.",
                    keys.first().map_or("", |key| key.name.as_str())
                )));
            }
            (Some(_), OrderBy::Ignore) if is_events => None,
            (keys, _) => keys.as_ref(),
        };
        for key in keys.into_iter().flatten() {
            let column = Column::find(schema, &key.name).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "Could not find a property named '{}' on type '{}' ($orderby).",
                    key.name,
                    schema.qualified_name()
                ))
            })?;
            order.push((column, key.direction));
        }
        let select = resolve_select(schema, options.select.as_deref(), "$select")?;
        let expand = match &options.expand {
            None => None,
            Some(expand) => {
                if !is_events || !(expand.name.eq_ignore_ascii_case(DETAILS) || expand.name == "*")
                {
                    return Err(ApiError::bad_request(format!(
                        "Could not find a navigation property named '{}' on type '{}' ($expand).",
                        expand.name,
                        schema.qualified_name()
                    )));
                }
                Some(resolve_select(
                    &POLICY_STATUS_DETAIL,
                    expand.select.as_deref(),
                    "$expand/$select",
                )?)
            }
        };
        Ok(Self {
            filter,
            order,
            select,
            expand,
        })
    }

    /// The `(…)` part of a context URL: selected properties and expanded navigations.
    pub fn context_suffix(&self) -> String {
        let mut items: Vec<String> = self
            .select
            .iter()
            .flatten()
            .filter(|name| **name != DETAILS)
            .map(|name| name.to_string())
            .collect();
        if let Some(nested) = &self.expand {
            items.push(format!(
                "{DETAILS}({})",
                nested
                    .as_ref()
                    .map(|names| names.join(","))
                    .unwrap_or_default()
            ));
        }
        if items.is_empty() {
            String::new()
        } else {
            format!("({})", items.join(","))
        }
    }

    /// One entity's JSON (without context), projected by `$select`, with expanded details.
    pub fn render(
        &self,
        out: &mut String,
        entity: &StoredEntity,
        details: Option<&[&StoredEntity]>,
    ) -> Result<(), ApiError> {
        let start = out.len();
        render_selected(out, entity, self.select.as_deref())?;
        if let (Some(nested), Some(details)) = (&self.expand, details) {
            out.pop(); // the closing brace
            if out.len() > start + 1 {
                out.push(',');
            }
            out.push('"');
            out.push_str(DETAILS);
            out.push_str("\":[");
            for (index, detail) in details.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                render_selected(out, detail, nested.as_deref())?;
            }
            out.push_str("]}");
        }
        Ok(())
    }

    /// The next-page cursor as JSON, from a row's sort values.
    pub fn cursor_json(cursor: &[Scalar]) -> Json {
        Json::Array(
            cursor
                .iter()
                .map(|value| match value {
                    Scalar::Null => Json::Null,
                    Scalar::Integer(number) => Json::from(*number),
                    Scalar::Text(text) => Json::from(text.as_str()),
                    Scalar::Boolean(flag) => Json::from(*flag),
                })
                .collect(),
        )
    }

    /// Reads a cursor back, checking each value against the sort it belongs to.
    pub fn cursor_from_json(&self, json: &Json) -> Option<Vec<Scalar>> {
        let items = json.as_array()?;
        match sort_keys(&self.order) {
            SortKeys::Insertion => match items.as_slice() {
                [seq] => Some(vec![Scalar::Integer(seq.as_i64()?)]),
                _ => None,
            },
            SortKeys::Columns(keys) => {
                if items.len() != keys.len() {
                    return None;
                }
                keys.iter()
                    .zip(items)
                    .map(|((column, _), item)| match item {
                        Json::Null if column.nullable => Some(Scalar::Null),
                        Json::String(text) => Some(Scalar::Text(text.clone())),
                        Json::Bool(flag) => Some(Scalar::Boolean(*flag)),
                        Json::Number(number) => number.as_i64().map(Scalar::Integer),
                        _ => None,
                    })
                    .collect()
            }
        }
    }
}

fn resolve_select(
    schema: &'static EntitySchema,
    names: Option<&[String]>,
    option: &str,
) -> Result<Selection, ApiError> {
    let Some(names) = names else {
        return Ok(None);
    };
    // Every item must be a property (or `*`), whatever else the list holds: `*,foo` is refused.
    let mut selected = Vec::new();
    let mut everything = false;
    for name in names {
        if name == "*" {
            everything = true;
            continue;
        }
        let canonical =
            if std::ptr::eq(schema, &AUTOPILOT_EVENT) && name.eq_ignore_ascii_case(DETAILS) {
                DETAILS
            } else {
                Column::find(schema, name)
                    .map(|column| column.name)
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "Could not find a property named '{name}' on type '{}' ({option}).",
                            schema.qualified_name()
                        ))
                    })?
            };
        if !selected.contains(&canonical) {
            selected.push(canonical);
        }
    }
    Ok((!everything).then_some(selected))
}

/// Writes an entity with `@odata.etag`, `@odata.type`, `id` and the selected properties.
fn render_selected(
    out: &mut String,
    entity: &StoredEntity,
    select: Option<&[&'static str]>,
) -> Result<(), ApiError> {
    let Some(select) = select else {
        push_entity(out, None, entity);
        return Ok(());
    };
    let map: serde_json::Map<String, Json> =
        serde_json::from_str(&entity.body).map_err(|error| ApiError::internal(&error))?;
    let mut projected = serde_json::Map::new();
    projected.insert("@odata.etag".into(), entity.etag.clone().into());
    for (name, value) in map {
        if name == "@odata.type" || name == "id" || select.contains(&name.as_str()) {
            projected.insert(name, value);
        }
    }
    out.push_str(&Json::Object(projected).to_string());
    Ok(())
}
