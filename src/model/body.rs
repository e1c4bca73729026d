//! Request bodies → typed values (api.md §6, §14). Parse, don't validate: handlers only ever see a
//! checked [`Deployment`] or [`PatchBody`].
//!
//! Why one file of ~700 lines: the three decoders (create, PATCH, import) share one strict JSON
//! reader (duplicate keys, depth, trailing bytes) and one property checker, and about 120 lines
//! are their tests; split, each half would import the other's internals.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value as Json};

use super::{
    DETAILS_NAVIGATION, EdmType, Entity, EntitySchema, POLICY_STATUS_DETAIL, Property, Value,
};
use crate::edm::{DateTimeOffset, Duration, Seconds};

/// The deepest JSON nesting a body may have (api.md §14).
const MAX_DEPTH: usize = 64;
/// The most policy status details one deep insert may carry.
const MAX_DEEP_INSERT: usize = 1000;

/// Why a body was refused. Both become 400; the code differs as in Graph.
#[derive(Debug, PartialEq)]
pub enum BodyError {
    /// Not a usable JSON object at all, or a value the resource refuses outright (an unknown
    /// report, an unsupported format): `BadRequest`.
    Malformed(String),
    /// Well-formed JSON that does not fit the model (`ModelValidationFailure`).
    Invalid(String),
}

/// An Autopilot deployment: an event with its policy status details, as a create body with a deep
/// insert, an import record and the seed generator give it (fresh or kept ids, defaults filled). A
/// policy status detail's own create body decodes to one whose `event` is the detail, without
/// details.
#[derive(Debug)]
pub struct Deployment {
    pub event: Entity,
    pub details: Vec<Entity>,
}

/// A checked PATCH body: the properties present, by schema position, with their new values.
#[derive(Debug)]
pub struct PatchBody {
    pub changes: Vec<(usize, Value)>,
}

impl PatchBody {
    /// The schema positions this PATCH sets.
    pub fn positions(&self) -> Vec<usize> {
        self.changes.iter().map(|(position, _)| *position).collect()
    }

    pub fn apply(&self, entity: &mut Entity) {
        for (position, value) in &self.changes {
            entity.values[*position] = value.clone();
        }
    }
}

/// Decodes a POST body. `id` is ignored (the server assigns keys); `policyStatusDetails` is accepted
/// as a deep insert when `allow_details` is set.
pub fn decode_create(
    schema: &EntitySchema,
    bytes: &[u8],
    allow_details: bool,
) -> Result<Deployment, BodyError> {
    let members = parse_object(bytes)?;
    let mut details = Vec::new();
    let fresh_id = uuid::Uuid::new_v4().to_string();
    let entity = build_entity(schema, fresh_id, members, |name, json| match name {
        "id" => Ok(true),
        DETAILS_NAVIGATION if allow_details => {
            details = decode_details(json, false)?;
            Ok(true)
        }
        _ => Ok(false),
    })?;
    Ok(Deployment {
        event: entity,
        details,
    })
}

/// Decodes one record of an import (an event as Graph or `export` writes it): like a create body
/// with inline details, but the ids of the event and of each detail are kept, since an import
/// upserts by id; annotations (`@odata.etag`, `policyStatusDetails@odata.context`) are skipped.
pub fn decode_import(bytes: &[u8]) -> Result<Deployment, BodyError> {
    let schema = &super::AUTOPILOT_EVENT;
    let mut members = parse_object(bytes)?;
    python_durations_as_iso(schema, &mut members);
    let mut details = Vec::new();
    let mut id = None;
    let mut entity = build_entity(schema, String::new(), members, |name, json| match name {
        "id" => {
            id = Some(record_id(json, schema)?);
            Ok(true)
        }
        DETAILS_NAVIGATION => {
            details = decode_details(json, true)?;
            Ok(true)
        }
        _ => Ok(name
            .strip_prefix(DETAILS_NAVIGATION)
            .is_some_and(|rest| rest.starts_with('@'))),
    })?;
    entity.id = id.ok_or_else(|| {
        BodyError::Invalid("An imported event needs its 'id' (imports upsert by id).".into())
    })?;
    Ok(Deployment {
        event: entity,
        details,
    })
}

/// Durations written as Python's `str(timedelta)` (files saved by the official Python SDK) in
/// their ISO 8601 form; anything else is left for the strict decoder to judge.
fn python_durations_as_iso(schema: &EntitySchema, members: &mut [(String, Json)]) {
    for (name, json) in members.iter_mut() {
        let is_duration = schema
            .property(name)
            .is_some_and(|(_, property)| matches!(property.edm, EdmType::Duration));
        if let (true, Json::String(text)) = (is_duration, &*json)
            && Duration::parse(text).is_err()
            && let Some(duration) = Duration::from_python_timedelta(text)
        {
            *json = Json::String(duration.to_string());
        }
    }
}

/// A kept key: a non-empty string of at most 128 characters.
fn record_id(json: &Json, schema: &EntitySchema) -> Result<String, BodyError> {
    match json.as_str() {
        Some(id) if !id.is_empty() && id.len() <= 128 && !id.contains('\0') => Ok(id.to_string()),
        _ => Err(BodyError::Invalid(format!(
            "Property 'id' of a {} must be a non-empty string of at most 128 characters.",
            schema.type_name
        ))),
    }
}

/// Decodes a PATCH body for the entity with key `key`; an `id` in the body must equal it.
pub fn decode_patch(
    schema: &EntitySchema,
    bytes: &[u8],
    key: &str,
) -> Result<PatchBody, BodyError> {
    let members = parse_object(bytes)?;
    let mut changes = Vec::new();
    for (name, json) in members {
        if name == "id" {
            match json.as_str() {
                Some(id) if id.eq_ignore_ascii_case(key) => continue,
                _ => {
                    return Err(BodyError::Invalid(format!(
                        "Property 'id' is read-only; when present in a PATCH body it must equal the key '{key}'."
                    )));
                }
            }
        }
        if let Some(change) = decode_member(schema, &name, &json)? {
            changes.push(change);
        }
    }
    Ok(PatchBody { changes })
}

/// Decodes the canonical JSON this service stored itself.
pub fn decode_stored(schema: &EntitySchema, json: &str) -> Result<Entity, String> {
    let map: Map<String, Json> = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let id = map
        .get("id")
        .and_then(Json::as_str)
        .ok_or("stored entity has no id")?
        .to_string();
    let mut entity = Entity::with_defaults(schema);
    entity.id = id;
    for (position, property) in schema.properties.iter().enumerate() {
        if let Some(json) = map.get(property.name) {
            entity.values[position] =
                convert(schema, property, json).map_err(|e| format!("{e:?}"))?;
        }
    }
    Ok(entity)
}

/// Inline details; their ids are kept when `keep_ids` (imports), else fresh ones are assigned.
fn decode_details(json: &Json, keep_ids: bool) -> Result<Vec<Entity>, BodyError> {
    let Json::Array(items) = json else {
        return Err(BodyError::Invalid(
            "Property 'policyStatusDetails' must be an array of deviceManagementAutopilotPolicyStatusDetail objects.".into(),
        ));
    };
    if items.len() > MAX_DEEP_INSERT {
        return Err(BodyError::Invalid(format!(
            "Property 'policyStatusDetails' may carry at most {MAX_DEEP_INSERT} items in one request."
        )));
    }
    items
        .iter()
        .map(|item| {
            let Json::Object(map) = item else {
                return Err(BodyError::Invalid(
                    "Each item of 'policyStatusDetails' must be a JSON object.".into(),
                ));
            };
            let mut members: Vec<(String, Json)> =
                map.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            if keep_ids {
                python_durations_as_iso(&POLICY_STATUS_DETAIL, &mut members);
            }
            let mut id = None;
            // Kept ids replace the placeholder; new details get a fresh one.
            let id_placeholder = if keep_ids {
                String::new()
            } else {
                uuid::Uuid::new_v4().to_string()
            };
            let mut detail = build_entity(
                &POLICY_STATUS_DETAIL,
                id_placeholder,
                members,
                |name, json| {
                    if name == "id" && keep_ids {
                        id = Some(record_id(json, &POLICY_STATUS_DETAIL)?);
                    }
                    Ok(name == "id")
                },
            )?;
            if keep_ids {
                detail.id = id.ok_or_else(|| {
                    BodyError::Invalid(
                        "Each imported policy status detail needs its 'id' (imports upsert by id)."
                            .into(),
                    )
                })?;
            }
            Ok(detail)
        })
        .collect()
}

/// Builds a new entity from members; `special` handles (and returns true for) members that are not
/// structural properties of the schema.
fn build_entity(
    schema: &EntitySchema,
    id: String,
    members: Vec<(String, Json)>,
    mut special: impl FnMut(&str, &Json) -> Result<bool, BodyError>,
) -> Result<Entity, BodyError> {
    let mut entity = Entity::with_id(schema, id);
    for (name, json) in members {
        if special(&name, &json)? {
            continue;
        }
        if let Some((position, value)) = decode_member(schema, &name, &json)? {
            entity.values[position] = value;
        }
    }
    Ok(entity)
}

/// One body member: a structural property (Some), an annotation to skip (None), or an error.
fn decode_member(
    schema: &EntitySchema,
    name: &str,
    json: &Json,
) -> Result<Option<(usize, Value)>, BodyError> {
    if name == "@odata.type" {
        let wanted = schema.qualified_name();
        return match json.as_str().map(|t| t.strip_prefix('#').unwrap_or(t)) {
            Some(named) if named == wanted => Ok(None),
            _ => Err(BodyError::Invalid(format!(
                "'@odata.type' must be '#{wanted}' for this resource; got {json}."
            ))),
        };
    }
    // Instance annotations (`@odata.etag` from a GET echoed back) and annotations of known
    // properties carry no data for us.
    if let Some((annotated, _)) = name.split_once('@')
        && (annotated.is_empty() || schema.property(annotated).is_some())
    {
        return Ok(None);
    }
    if name == DETAILS_NAVIGATION && schema.type_name == "deviceManagementAutopilotEvent" {
        return Err(BodyError::Invalid(
            "The navigation property 'policyStatusDetails' cannot be changed here; create, update or delete details at …/autopilotEvents/{id}/policyStatusDetails.".into(),
        ));
    }
    let Some((position, property)) = schema.property(name) else {
        return Err(BodyError::Invalid(format!(
            "Property '{name}' does not exist on type '{}'. Property names are case-sensitive.",
            schema.qualified_name()
        )));
    };
    Ok(Some((position, convert(schema, property, json)?)))
}

/// Converts one JSON value to the property's EDM type, or says what the property allows.
fn convert(schema: &EntitySchema, property: &Property, json: &Json) -> Result<Value, BodyError> {
    let name = property.name;
    let invalid = |what: String| BodyError::Invalid(format!("Property '{name}': {what}"));
    if json.is_null() {
        return if property.nullable {
            Ok(Value::Null)
        } else {
            Err(invalid(format!(
                "null is not allowed; the property is a non-nullable {} of '{}'.",
                property.edm.csdl_name(),
                schema.qualified_name()
            )))
        };
    }
    let expected = |kind: &str| invalid(format!("expected {kind}, got {}.", json_kind(json)));
    match property.edm {
        EdmType::String => {
            let text = json.as_str().ok_or_else(|| expected("a JSON string"))?;
            if text.contains('\0') {
                return Err(invalid(
                    "strings must not contain NUL (U+0000) characters.".into(),
                ));
            }
            Ok(Value::String(text.to_string()))
        }
        EdmType::DateTimeOffset => {
            let text = json.as_str().ok_or_else(|| {
                expected("an Edm.DateTimeOffset string such as '2021-03-01T08:30:00Z'")
            })?;
            DateTimeOffset::parse(text, Seconds::Required)
                .map(Value::DateTimeOffset)
                .map_err(|reason| {
                    invalid(format!(
                        "'{text}' is not a valid Edm.DateTimeOffset ({reason}). Use ISO 8601 with seconds and an offset, e.g. '2021-03-01T08:30:00Z'."
                    ))
                })
        }
        EdmType::Duration => {
            let text = json
                .as_str()
                .ok_or_else(|| expected("an Edm.Duration string such as 'PT3M0.5S'"))?;
            Duration::parse(text)
                .map(Value::Duration)
                .map_err(|reason| {
                    invalid(format!("'{text}' is not a valid Edm.Duration: {reason}."))
                })
        }
        EdmType::Int32 => {
            let number = json
                .as_i64()
                .filter(|_| !json.is_f64())
                .ok_or_else(|| expected("an Edm.Int32 (a whole number, not quoted)"))?;
            i32::try_from(number).map(Value::Int32).map_err(|_| {
                invalid(format!(
                    "{number} is outside the Edm.Int32 range {}…{}.",
                    i32::MIN,
                    i32::MAX
                ))
            })
        }
        EdmType::Boolean => json
            .as_bool()
            .map(Value::Boolean)
            .ok_or_else(|| expected("true or false")),
        EdmType::Enum(enum_type) => {
            let member = json.as_str().ok_or_else(|| {
                expected(&format!(
                    "a member name of '{}'",
                    enum_type.qualified_name()
                ))
            })?;
            enum_type.value_of(member).map(Value::Enum).ok_or_else(|| {
                invalid(format!(
                    "'{member}' is not a member of '{}'. Allowed values: {}.",
                    enum_type.qualified_name(),
                    enum_type.member_list()
                ))
            })
        }
    }
}

fn json_kind(json: &Json) -> String {
    match json {
        Json::Null => "null".into(),
        Json::Bool(flag) => format!("the boolean {flag}"),
        Json::Number(number) => format!("the number {number}"),
        Json::String(text) if text.chars().count() > 64 => "a string".into(),
        Json::String(text) => format!("the string '{text}'"),
        Json::Array(_) => "an array".into(),
        Json::Object(_) => "an object".into(),
    }
}

/// Parses a body that must be one JSON object: no duplicate keys at any depth, nesting at most
/// [`MAX_DEPTH`], nothing after the value.
pub fn parse_object(bytes: &[u8]) -> Result<Vec<(String, Json)>, BodyError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(BodyError::Malformed(
            "The request body is empty; send a JSON object.".into(),
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = StrictJson { depth: 0 }
        .deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value))
        .map_err(|error| {
            BodyError::Malformed(format!("The request body is not valid JSON: {error}."))
        })?;
    match value {
        TopLevel::Object(members) => Ok(members),
        TopLevel::Other(other) => Err(BodyError::Malformed(format!(
            "The request body must be a JSON object; got {}.",
            json_kind(&other)
        ))),
    }
}

/// Members of a body's top level compared one by one for duplicates; beyond, a hash set.
const LINEAR_SCAN_MEMBERS: usize = 32;

/// A body's top level: an object's members in order (no hashing for the common case of a flat
/// object: duplicate keys are found by comparing with the few members before, or by hashing past
/// [`LINEAR_SCAN_MEMBERS`]), or anything else.
enum TopLevel {
    Object(Vec<(String, Json)>),
    Other(Json),
}

/// Deserialises into `serde_json::Value` refusing duplicate keys and deep nesting.
struct StrictJson {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for StrictJson {
    type Value = TopLevel;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<TopLevel, D::Error> {
        deserializer.deserialize_any(TopLevelVisitor)
    }
}

/// Nested values: `serde_json::Value` with the same checks.
struct NestedJson {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for NestedJson {
    type Value = Json;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(StrictJson { depth: self.depth })
    }
}

struct TopLevelVisitor;

impl<'de> Visitor<'de> for TopLevelVisitor {
    type Value = TopLevel;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<TopLevel, A::Error> {
        let mut members: Vec<(String, Json)> = Vec::with_capacity(32);
        // Past a few members (an entity has about 30), duplicates are found by hashing: a
        // hostile object of 200,000 keys took minutes of linear scans.
        let mut index: Option<std::collections::HashSet<String>> = None;
        while let Some(key) = access.next_key::<String>()? {
            let duplicate = match &mut index {
                Some(index) => !index.insert(key.clone()),
                None => members.iter().any(|(seen, _)| *seen == key),
            };
            if duplicate {
                return Err(de::Error::custom(format_args!("duplicate key '{key}'")));
            }
            let value = access.next_value_seed(NestedJson { depth: 1 })?;
            members.push((key, value));
            if index.is_none() && members.len() == LINEAR_SCAN_MEMBERS {
                index = Some(members.iter().map(|(key, _)| key.clone()).collect());
            }
        }
        Ok(TopLevel::Object(members))
    }

    fn visit_bool<E>(self, v: bool) -> Result<TopLevel, E> {
        Ok(TopLevel::Other(Json::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<TopLevel, E> {
        Ok(TopLevel::Other(Json::from(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<TopLevel, E> {
        Ok(TopLevel::Other(Json::from(v)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<TopLevel, E> {
        StrictJson { depth: 0 }.visit_f64(v).map(TopLevel::Other)
    }
    fn visit_str<E>(self, v: &str) -> Result<TopLevel, E> {
        Ok(TopLevel::Other(Json::String(v.to_string())))
    }
    fn visit_unit<E>(self) -> Result<TopLevel, E> {
        Ok(TopLevel::Other(Json::Null))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<TopLevel, A::Error> {
        StrictJson { depth: 0 }.visit_seq(seq).map(TopLevel::Other)
    }
}

impl StrictJson {
    fn nested<E: de::Error>(&self) -> Result<StrictJson, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom(format_args!(
                "nesting deeper than {MAX_DEPTH} levels"
            )));
        }
        Ok(StrictJson {
            depth: self.depth + 1,
        })
    }

    fn as_seed(&self) -> NestedJson {
        NestedJson { depth: self.depth }
    }
}

impl<'de> Visitor<'de> for StrictJson {
    type Value = Json;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json, E> {
        serde_json::Number::from_f64(v)
            .map(Json::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }
    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_none<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self.nested::<A::Error>()?.as_seed())? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Json, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate key '{key}'")));
            }
            let value = access.next_value_seed(self.nested::<A::Error>()?.as_seed())?;
            map.insert(key, value);
        }
        Ok(Json::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AUTOPILOT_EVENT;

    fn create(body: &str) -> Result<Deployment, BodyError> {
        decode_create(&AUTOPILOT_EVENT, body.as_bytes(), true)
    }

    fn message(error: BodyError) -> String {
        match error {
            BodyError::Malformed(m) | BodyError::Invalid(m) => m,
        }
    }

    #[test]
    fn omitted_properties_take_their_defaults() {
        let body = create("{}").unwrap();
        let json: Json = serde_json::from_str(&body.event.to_json(&AUTOPILOT_EVENT)).unwrap();
        assert_eq!(json["eventDateTime"], "0001-01-01T00:00:00Z");
        assert_eq!(json["deploymentDuration"], "PT0S");
        assert_eq!(json["enrollmentType"], "unknown");
        assert_eq!(json["targetedAppCount"], 0);
        assert_eq!(json["deviceId"], Json::Null);
    }

    #[test]
    fn the_seed_example_enum_value_is_rejected_with_the_members() {
        let error = message(create(r#"{"enrollmentState":"String"}"#).unwrap_err());
        assert!(error.contains("'enrollmentState'"), "{error}");
        assert!(error.contains("notContacted"), "{error}");
    }

    #[test]
    fn structural_problems_are_malformed_not_invalid() {
        for body in [
            "",
            "[]",
            "{",
            r#"{"a":1} x"#,
            r#"{"deviceId":"a","deviceId":"b"}"#,
            "\"text\"",
        ] {
            assert!(
                matches!(create(body), Err(BodyError::Malformed(_))),
                "{body}"
            );
        }
        let deep = format!("{{\"deviceId\":{}1{}}}", "[".repeat(100), "]".repeat(100));
        let error = message(create(&deep).unwrap_err());
        assert!(error.contains("nesting"), "{error}");
    }

    #[test]
    fn duplicates_are_found_among_many_members_too() {
        for (first, second) in [(0, 5), (3, 31), (0, 40), (35, 36), (10, 199_999)] {
            let members: Vec<String> = (0..200_000)
                .map(|n| {
                    let name = if n == second { first } else { n };
                    format!("\"k{name}\":1")
                })
                .collect();
            let error = message(create(&format!("{{{}}}", members.join(","))).unwrap_err());
            assert!(
                error.contains(&format!("duplicate key 'k{first}'")),
                "{error}"
            );
        }
    }

    #[test]
    fn int32_accepts_only_whole_numbers_in_range() {
        assert!(create(r#"{"targetedAppCount":2147483647}"#).is_ok());
        for bad in ["2147483648", "1.0", "\"1\"", "1e3", "-2147483649", "true"] {
            let body = format!("{{\"targetedAppCount\":{bad}}}");
            assert!(matches!(create(&body), Err(BodyError::Invalid(_))), "{bad}");
        }
        assert!(matches!(
            create(r#"{"targetedAppCount":1e400}"#),
            Err(BodyError::Malformed(_))
        ));
    }

    #[test]
    fn null_is_refused_for_non_nullable_properties_only() {
        assert!(create(r#"{"deviceId":null}"#).is_ok());
        let error = message(create(r#"{"eventDateTime":null}"#).unwrap_err());
        assert!(error.contains("non-nullable"), "{error}");
    }

    #[test]
    fn patch_id_must_match_the_key() {
        let key = "8f0c4a47-43a0-4b8e-a1a9-9c4d6c1e7f11";
        assert!(
            decode_patch(
                &AUTOPILOT_EVENT,
                format!(r#"{{"id":"{key}"}}"#).as_bytes(),
                key
            )
            .is_ok()
        );
        assert!(decode_patch(&AUTOPILOT_EVENT, br#"{"id":"other"}"#, key).is_err());
    }

    #[test]
    fn odata_type_must_name_this_resource() {
        assert!(
            create(r##"{"@odata.type":"#microsoft.graph.deviceManagementAutopilotEvent"}"##)
                .is_ok()
        );
        assert!(create(r##"{"@odata.type":"#microsoft.graph.user"}"##).is_err());
    }

    #[test]
    fn stored_json_decodes_to_the_same_entity() {
        let body = create(r#"{"deviceId":"d","eventDateTime":"2016-12-31T23:56:50.5526409+03:00","deploymentDuration":"PT3M0.3227266S","deploymentState":"failure","targetedPolicyCount":3}"#).unwrap();
        let json = body.event.to_json(&AUTOPILOT_EVENT);
        assert_eq!(decode_stored(&AUTOPILOT_EVENT, &json).unwrap(), body.event);
    }
}
