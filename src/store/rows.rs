//! Result rows back into entities and cursor values: ticks become instants and spans again, and
//! booleans are integers in SQLite and booleans in PostgreSQL.

use sqlx::Row;

use super::StoredEntity;
use crate::edm::{DateTimeOffset, Duration};
use crate::model::{EdmType, Entity, EntitySchema, Property, Value};
use crate::odata::Scalar;

impl StoredEntity {
    /// Reads the [`sql::entity_columns`] of `schema` from a result row, starting at `first`, and
    /// renders the entity's JSON from them.
    pub(super) fn from_row(
        row: &sqlx::any::AnyRow,
        first: usize,
        schema: &EntitySchema,
    ) -> Result<Self, sqlx::Error> {
        let entity = entity_from_row(row, first, schema)?;
        Ok(StoredEntity {
            etag: row.try_get(first + 1)?,
            body: entity.to_json(schema),
        })
    }
}

/// The typed entity of the [`sql::entity_columns`] of `schema` at `first` (its ETag skipped).
pub(super) fn entity_from_row(
    row: &sqlx::any::AnyRow,
    first: usize,
    schema: &EntitySchema,
) -> Result<Entity, sqlx::Error> {
    Ok(Entity {
        id: row.try_get(first)?,
        values: schema
            .properties
            .iter()
            .enumerate()
            .map(|(position, property)| read_value(row, first + 2 + position, property))
            .collect::<Result<_, _>>()?,
    })
}

/// A property's typed column as a value. Ticks become instants and spans again; booleans are
/// integers in SQLite and booleans in PostgreSQL.
pub(super) fn read_value(
    row: &sqlx::any::AnyRow,
    index: usize,
    property: &Property,
) -> Result<Value, sqlx::Error> {
    let ticks = || row.try_get::<Option<i64>, _>(index);
    let value = match property.edm {
        EdmType::String => row.try_get::<Option<String>, _>(index)?.map(Value::String),
        EdmType::Boolean => match row.try_get::<Option<bool>, _>(index) {
            Ok(flag) => flag.map(Value::Boolean),
            Err(_) => ticks()?.map(|number| Value::Boolean(number != 0)),
        },
        EdmType::DateTimeOffset => ticks()?
            .map(|t| {
                DateTimeOffset::from_ticks(t)
                    .map(Value::DateTimeOffset)
                    .ok_or_else(|| {
                        sqlx::Error::Decode(format!("{t} ticks are outside DateTimeOffset").into())
                    })
            })
            .transpose()?,
        EdmType::Duration => ticks()?.map(|t| Value::Duration(Duration::from_ticks(t))),
        EdmType::Int32 => ticks()?
            .map(|number| i32::try_from(number).map(Value::Int32))
            .transpose()
            .map_err(|error| sqlx::Error::Decode(Box::new(error)))?,
        EdmType::Enum(_) => ticks()?.map(Value::Enum),
    };
    Ok(value.unwrap_or(Value::Null))
}

/// A sort column's value as a cursor scalar. Booleans are integers in SQLite and booleans in
/// PostgreSQL; both become [`Scalar::Boolean`].
pub(super) fn read_scalar(
    row: &sqlx::any::AnyRow,
    index: usize,
    edm: EdmType,
) -> Result<Scalar, sqlx::Error> {
    Ok(match edm {
        EdmType::String => row
            .try_get::<Option<String>, _>(index)?
            .map_or(Scalar::Null, Scalar::Text),
        EdmType::Boolean => Scalar::Boolean(
            row.try_get::<bool, _>(index)
                .or_else(|_| row.try_get::<i64, _>(index).map(|n| n != 0))?,
        ),
        EdmType::DateTimeOffset | EdmType::Duration | EdmType::Int32 | EdmType::Enum(_) => {
            Scalar::Integer(row.try_get(index)?)
        }
    })
}
