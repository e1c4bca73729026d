//! Result rows back into entities, entity JSON and cursor values, written once for every driver:
//! [`Cells`] is what a row must answer (text, integer, boolean by position); ticks become
//! instants and spans again, and booleans are integers in SQLite and booleans in PostgreSQL.

use std::borrow::Cow;

use sqlx::Row;

use super::{StoreError, StoredEntity};
use crate::edm::{DateTimeOffset, Duration};
use crate::model::{
    EdmType, Entity, EntitySchema, Property, Value, ValueRef, push_entity_open, push_property,
};
use crate::odata::Scalar;

/// A result row as the decoders read it, whichever driver produced it.
pub(super) trait Cells {
    /// A text column (borrowed from the row where the driver allows).
    fn text(&self, index: usize) -> Result<Option<Cow<'_, str>>, StoreError>;
    /// An integer column (ticks, enum members, counts, sequence numbers).
    fn integer(&self, index: usize) -> Result<Option<i64>, StoreError>;
    /// A boolean column: an integer in SQLite, a boolean in PostgreSQL.
    fn boolean(&self, index: usize) -> Result<Option<bool>, StoreError>;
}

fn decode_error(index: usize, wanted: &str) -> StoreError {
    StoreError::Internal(anyhow::anyhow!(
        "column {index} of a stored row is not {wanted}"
    ))
}

impl Cells for rusqlite::Row<'_> {
    fn text(&self, index: usize) -> Result<Option<Cow<'_, str>>, StoreError> {
        match self.get_ref(index)? {
            rusqlite::types::ValueRef::Null => Ok(None),
            rusqlite::types::ValueRef::Text(bytes) => std::str::from_utf8(bytes)
                .map(|text| Some(Cow::Borrowed(text)))
                .map_err(|_| decode_error(index, "UTF-8 text")),
            _ => Err(decode_error(index, "text")),
        }
    }

    fn integer(&self, index: usize) -> Result<Option<i64>, StoreError> {
        match self.get_ref(index)? {
            rusqlite::types::ValueRef::Null => Ok(None),
            rusqlite::types::ValueRef::Integer(number) => Ok(Some(number)),
            _ => Err(decode_error(index, "an integer")),
        }
    }

    fn boolean(&self, index: usize) -> Result<Option<bool>, StoreError> {
        Ok(self.integer(index)?.map(|number| number != 0))
    }
}

impl Cells for sqlx::any::AnyRow {
    fn text(&self, index: usize) -> Result<Option<Cow<'_, str>>, StoreError> {
        Ok(self.try_get::<Option<String>, _>(index)?.map(Cow::Owned))
    }

    fn integer(&self, index: usize) -> Result<Option<i64>, StoreError> {
        Ok(self.try_get::<Option<i64>, _>(index)?)
    }

    fn boolean(&self, index: usize) -> Result<Option<bool>, StoreError> {
        match self.try_get::<Option<bool>, _>(index) {
            Ok(flag) => Ok(flag),
            Err(_) => Ok(self.integer(index)?.map(|number| number != 0)),
        }
    }
}

impl Cells for sqlx::postgres::PgRow {
    fn text(&self, index: usize) -> Result<Option<Cow<'_, str>>, StoreError> {
        Ok(self.try_get::<Option<&str>, _>(index)?.map(Cow::Borrowed))
    }

    fn integer(&self, index: usize) -> Result<Option<i64>, StoreError> {
        Ok(self.try_get::<Option<i64>, _>(index)?)
    }

    fn boolean(&self, index: usize) -> Result<Option<bool>, StoreError> {
        Ok(self.try_get::<Option<bool>, _>(index)?)
    }
}

impl StoredEntity {
    /// Reads the [`sql::entity_columns`] of `schema` from a result row, starting at `first`, and
    /// writes the entity's JSON straight from the row's cells.
    pub(super) fn from_row(
        row: &impl Cells,
        first: usize,
        schema: &EntitySchema,
    ) -> Result<Self, StoreError> {
        let id = row
            .text(first)?
            .ok_or_else(|| decode_error(first, "an id"))?;
        let mut body = String::with_capacity(1536);
        push_entity_open(&mut body, schema, &id);
        for (position, property) in schema.properties.iter().enumerate() {
            let index = first + 2 + position;
            match property.edm {
                EdmType::String => {
                    let text = row.text(index)?;
                    let value = text.as_deref().map_or(ValueRef::Null, ValueRef::String);
                    push_property(&mut body, property, value);
                }
                _ => push_property(&mut body, property, scalar_value(row, index, property)?),
            }
        }
        body.push('}');
        Ok(StoredEntity {
            etag: row
                .text(first + 1)?
                .ok_or_else(|| decode_error(first + 1, "an ETag"))?
                .into_owned(),
            body: body.into(),
        })
    }
}

/// The typed entity of the [`sql::entity_columns`] of `schema` at `first` (its ETag skipped).
pub(super) fn entity_from_row(
    row: &impl Cells,
    first: usize,
    schema: &EntitySchema,
) -> Result<Entity, StoreError> {
    Ok(Entity {
        id: row
            .text(first)?
            .ok_or_else(|| decode_error(first, "an id"))?
            .into_owned(),
        values: schema
            .properties
            .iter()
            .enumerate()
            .map(|(position, property)| {
                let index = first + 2 + position;
                match property.edm {
                    EdmType::String => Ok(row
                        .text(index)?
                        .map_or(Value::Null, |text| Value::String(text.into_owned()))),
                    _ => Ok(owned(scalar_value(row, index, property)?)),
                }
            })
            .collect::<Result<_, StoreError>>()?,
    })
}

fn owned(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::String(text) => Value::String(text.to_string()),
        ValueRef::DateTimeOffset(instant) => Value::DateTimeOffset(instant),
        ValueRef::Duration(span) => Value::Duration(span),
        ValueRef::Int32(number) => Value::Int32(number),
        ValueRef::Boolean(flag) => Value::Boolean(flag),
        ValueRef::Enum(underlying) => Value::Enum(underlying),
    }
}

/// A property's column that is not text, as a value: ticks become instants and spans again.
fn scalar_value(
    row: &impl Cells,
    index: usize,
    property: &Property,
) -> Result<ValueRef<'static>, StoreError> {
    let value = match property.edm {
        EdmType::String => unreachable!("text is read borrowed, by the caller"),
        EdmType::Boolean => row.boolean(index)?.map(ValueRef::Boolean),
        EdmType::DateTimeOffset => row
            .integer(index)?
            .map(|t| {
                DateTimeOffset::from_ticks(t)
                    .map(ValueRef::DateTimeOffset)
                    .ok_or_else(|| {
                        StoreError::Internal(anyhow::anyhow!(
                            "{t} ticks are outside DateTimeOffset"
                        ))
                    })
            })
            .transpose()?,
        EdmType::Duration => row
            .integer(index)?
            .map(|t| ValueRef::Duration(Duration::from_ticks(t))),
        EdmType::Int32 => row
            .integer(index)?
            .map(|number| {
                i32::try_from(number)
                    .map(ValueRef::Int32)
                    .map_err(|_| decode_error(index, "an Int32"))
            })
            .transpose()?,
        EdmType::Enum(_) => row.integer(index)?.map(ValueRef::Enum),
    };
    Ok(value.unwrap_or(ValueRef::Null))
}

/// A sort column's value as a cursor scalar. Booleans are integers in SQLite and booleans in
/// PostgreSQL; both become [`Scalar::Boolean`].
pub(super) fn read_scalar(
    row: &impl Cells,
    index: usize,
    edm: EdmType,
) -> Result<Scalar, StoreError> {
    Ok(match edm {
        EdmType::String => row
            .text(index)?
            .map_or(Scalar::Null, |text| Scalar::Text(text.into_owned())),
        EdmType::Boolean => row.boolean(index)?.map_or(Scalar::Null, Scalar::Boolean),
        EdmType::DateTimeOffset | EdmType::Duration | EdmType::Int32 | EdmType::Enum(_) => {
            row.integer(index)?.map_or(Scalar::Null, Scalar::Integer)
        }
    })
}
