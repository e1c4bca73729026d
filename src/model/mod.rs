//! The entity schema: each property's wire name, column, EDM type and nullability, and the typed
//! values that flow between a request body, the store and the JSON representation. Both entity
//! types are described by the same tables, so decoding, encoding and SQL are written once.

pub mod analytics;
mod body;
pub mod export_job;
pub mod report;
mod schema;
pub mod sync_run;

pub use body::{
    BodyError, Deployment, PatchBody, decode_create, decode_import, decode_patch, decode_stored,
};
pub use schema::{
    AUTOPILOT_EVENT, DETAILS_NAVIGATION, EdmType, EntitySchema, POLICY_STATUS_DETAIL, Property,
    PropertyId, detail, event, property_id,
};

use crate::edm::{DateTimeOffset, Duration};

/// One property value, typed by the schema.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    String(String),
    DateTimeOffset(DateTimeOffset),
    Duration(Duration),
    Int32(i32),
    Boolean(bool),
    /// The member's underlying value.
    Enum(i64),
}

/// An entity: its key and one value per schema property, in schema order.
#[derive(Clone, Debug, PartialEq)]
pub struct Entity {
    pub id: String,
    pub values: Vec<Value>,
}

impl Entity {
    /// A new entity with a fresh lower-case GUID and every property at its default.
    pub fn with_defaults(schema: &EntitySchema) -> Self {
        Self::with_id(schema, uuid::Uuid::new_v4().to_string())
    }

    /// A new entity with the given key and every property at its default.
    pub fn with_id(schema: &EntitySchema, id: String) -> Self {
        Self {
            id,
            values: schema
                .properties
                .iter()
                .map(Property::default_value)
                .collect(),
        }
    }

    /// Sets a property (code that builds entities: the seed generator). Panics on a value of
    /// another EDM type than the property's: a bug of the caller, found by its tests, never
    /// silently stored.
    pub fn set(&mut self, schema: &EntitySchema, id: PropertyId, value: Value) {
        let property = &schema.properties[id.0];
        let fits = match (&value, property.edm) {
            (Value::Null, _) => property.nullable,
            (Value::String(_), EdmType::String)
            | (Value::Boolean(_), EdmType::Boolean)
            | (Value::DateTimeOffset(_), EdmType::DateTimeOffset)
            | (Value::Duration(_), EdmType::Duration)
            | (Value::Int32(_), EdmType::Int32)
            | (Value::Enum(_), EdmType::Enum(_)) => true,
            _ => false,
        };
        assert!(
            fits,
            "{value:?} does not fit {}.{}",
            schema.type_name, property.name
        );
        self.values[id.0] = value;
    }

    /// The canonical JSON representation: `@odata.type`, `id`, then every declared property,
    /// rendered from the values (reads render it from the typed columns).
    pub fn to_json(&self, schema: &EntitySchema) -> String {
        let mut out = String::with_capacity(1024);
        push_entity_open(&mut out, schema, &self.id);
        for (property, value) in schema.properties.iter().zip(&self.values) {
            push_property(&mut out, property, value.as_ref());
        }
        out.push('}');
        out
    }
}

/// A property value borrowed from wherever it lives (an [`Entity`], a database row): what the
/// JSON writer takes, so a row is rendered without first becoming owned values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ValueRef<'a> {
    Null,
    String(&'a str),
    DateTimeOffset(DateTimeOffset),
    Duration(Duration),
    Int32(i32),
    Boolean(bool),
    Enum(i64),
}

impl Value {
    pub fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Value::Null => ValueRef::Null,
            Value::String(text) => ValueRef::String(text),
            Value::DateTimeOffset(instant) => ValueRef::DateTimeOffset(*instant),
            Value::Duration(span) => ValueRef::Duration(*span),
            Value::Int32(number) => ValueRef::Int32(*number),
            Value::Boolean(flag) => ValueRef::Boolean(*flag),
            Value::Enum(underlying) => ValueRef::Enum(*underlying),
        }
    }
}

/// Opens an entity's canonical JSON: `{"@odata.type":…,"id":…` (properties follow, each with
/// [`push_property`], then `}`).
pub fn push_entity_open(out: &mut String, schema: &EntitySchema, id: &str) {
    out.push_str("{\"@odata.type\":\"#microsoft.graph.");
    out.push_str(schema.type_name);
    out.push_str("\",\"id\":");
    push_json_string(out, id);
}

/// Appends `,"name":value` for one property, in its canonical JSON form.
pub fn push_property(out: &mut String, property: &Property, value: ValueRef<'_>) {
    use std::fmt::Write;
    out.push(',');
    out.push('"');
    out.push_str(property.name);
    out.push_str("\":");
    match value {
        ValueRef::Null => out.push_str("null"),
        ValueRef::String(text) => push_json_string(out, text),
        ValueRef::DateTimeOffset(instant) => {
            out.push('"');
            instant.push_to(out);
            out.push('"');
        }
        ValueRef::Duration(span) => {
            let _ = write!(out, "\"{span}\"");
        }
        ValueRef::Int32(number) => {
            let _ = write!(out, "{number}");
        }
        ValueRef::Boolean(flag) => out.push_str(if flag { "true" } else { "false" }),
        ValueRef::Enum(underlying) => {
            let EdmType::Enum(enum_type) = property.edm else {
                unreachable!("enum values belong to enum properties")
            };
            out.push('"');
            out.push_str(enum_type.name_of(underlying).unwrap_or("unknown"));
            out.push('"');
        }
    }
}

/// Appends `text` as a JSON string, escaped exactly as serde_json escapes it (quote, backslash
/// and control characters; `\b \f \n \r \t` short, the rest `\u00xx`), without allocating.
pub fn push_json_string(out: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(text.len() + 2);
    out.push('"');
    let bytes = text.as_bytes();
    let mut clean_from = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        let escape: &str = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        // Every byte escaped is ASCII, so the slices end on character boundaries.
        out.push_str(&text[clean_from..index]);
        clean_from = index + 1;
        if escape.is_empty() {
            out.push_str("\\u00");
            out.push(HEX[usize::from(byte >> 4)] as char);
            out.push(HEX[usize::from(byte & 0xf)] as char);
        } else {
            out.push_str(escape);
        }
    }
    out.push_str(&text[clean_from..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        /// The escaper writes exactly what serde_json writes, for any text.
        #[test]
        fn json_strings_are_escaped_as_serde_json_escapes_them(text in any::<String>()) {
            let mut ours = String::new();
            super::push_json_string(&mut ours, &text);
            prop_assert_eq!(ours, serde_json::to_string(&text).unwrap());
        }

        #[test]
        fn control_characters_and_quotes_too(text in "[\\x00-\\x1f\"\\\\a-z\u{e9}\u{1F600}]{0,40}") {
            let mut ours = String::new();
            super::push_json_string(&mut ours, &text);
            prop_assert_eq!(ours, serde_json::to_string(&text).unwrap());
        }
    }
}
