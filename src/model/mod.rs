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
        out.push_str("{\"@odata.type\":\"#microsoft.graph.");
        out.push_str(schema.type_name);
        out.push_str("\",\"id\":");
        push_json_string(&mut out, &self.id);
        for (property, value) in schema.properties.iter().zip(&self.values) {
            out.push(',');
            push_json_string(&mut out, property.name);
            out.push(':');
            match value {
                Value::Null => out.push_str("null"),
                Value::String(text) => push_json_string(&mut out, text),
                Value::DateTimeOffset(instant) => {
                    out.push('"');
                    out.push_str(&instant.to_string());
                    out.push('"');
                }
                Value::Duration(span) => {
                    out.push('"');
                    out.push_str(&span.to_string());
                    out.push('"');
                }
                Value::Int32(number) => out.push_str(&number.to_string()),
                Value::Boolean(flag) => out.push_str(if *flag { "true" } else { "false" }),
                Value::Enum(underlying) => {
                    let EdmType::Enum(enum_type) = property.edm else {
                        unreachable!("enum values belong to enum properties")
                    };
                    out.push('"');
                    out.push_str(enum_type.name_of(*underlying).unwrap_or("unknown"));
                    out.push('"');
                }
            }
        }
        out.push('}');
        out
    }
}

fn push_json_string(out: &mut String, text: &str) {
    out.push_str(&serde_json::to_string(text).expect("strings always serialise"));
}
