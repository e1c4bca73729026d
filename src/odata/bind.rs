//! Binding: a `$filter` syntax tree checked against the model, with every literal converted to the
//! type of the property it meets. The result, a [`Predicate`], is what SQL lowering (and the test
//! evaluator) consume; it cannot refer to an unknown property or compare unlike types.

use super::parser::{Ast, CompareOp, Literal, parse_filter};
use crate::model::{EdmType, EntitySchema, Property};
use crate::profile::TypeCastPaths;

/// A property usable in queries: a structural property or the key `id`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Column {
    pub name: &'static str,
    pub column: &'static str,
    pub edm: EdmType,
    pub nullable: bool,
}

/// The key column every schema shares.
pub const ID: Column = Column {
    name: "id",
    column: "id",
    edm: EdmType::String,
    nullable: false,
};

impl Column {
    fn of(property: &'static Property) -> Self {
        Column {
            name: property.name,
            column: property.column,
            edm: property.edm,
            nullable: property.nullable,
        }
    }

    /// Finds a property of `schema` by name, ignoring case as Graph's URL parser does, and allowing
    /// the `microsoft.graph.<type>/` cast prefix.
    pub fn find(schema: &'static EntitySchema, path: &str) -> Option<Column> {
        let name = match path.split_once('/') {
            Some((cast, name)) if cast.eq_ignore_ascii_case(&schema.qualified_name()) => name,
            Some(_) => return None,
            None => path,
        };
        if name.eq_ignore_ascii_case("id") {
            return Some(ID);
        }
        schema
            .properties
            .iter()
            .find(|property| property.name.eq_ignore_ascii_case(name))
            .map(Column::of)
    }
}

/// A literal converted to its column's storage form: ticks for DateTimeOffset and Duration,
/// underlying values for enums.
#[derive(Clone, Debug, PartialEq, PartialOrd)]
pub enum Scalar {
    Null,
    Integer(i64),
    Text(String),
    Boolean(bool),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    Column(Column),
    Value(Scalar),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StringFunction {
    StartsWith,
    EndsWith,
    Contains,
}

/// A checked boolean expression over one entity type.
#[derive(Clone, Debug, PartialEq)]
pub enum Predicate {
    Compare(CompareOp, Operand, Operand),
    In(Column, Vec<Scalar>),
    /// `column has value` on an enum: every bit of `value` is set in the column.
    Has(Column, i64),
    Text(StringFunction, Column, String),
    /// A Boolean property used as a predicate on its own.
    IsTrue(Column),
    Constant(bool),
    /// Chains of `and`/`or` are flat lists, so 1,000 terms never make 1,000 levels of recursion.
    And(Vec<Predicate>),
    Or(Vec<Predicate>),
    Not(Box<Predicate>),
}

/// `eventDateTime ge {cutoff}`: the events `retentionDays` serves (lists, counts, exports).
pub fn events_since(cutoff_ticks: i64) -> Predicate {
    let column = Column::find(&crate::model::AUTOPILOT_EVENT, "eventDateTime")
        .expect("events have eventDateTime");
    Predicate::Compare(
        CompareOp::Ge,
        Operand::Column(column),
        Operand::Value(Scalar::Integer(cutoff_ticks)),
    )
}

/// A `$filter` problem: the position in the text where it was found (0-based) and what is wrong,
/// naming the property or literal at fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterError {
    pub position: usize,
    pub message: String,
}

impl std::fmt::Display for FilterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Invalid $filter at position {}: {}.",
            self.position, self.message
        )
    }
}

impl std::error::Error for FilterError {}

type BindError = FilterError;

/// Parses and binds a `$filter` against `schema`.
pub fn bind_filter(schema: &'static EntitySchema, text: &str) -> Result<Predicate, FilterError> {
    bind_filter_with(schema, text, TypeCastPaths::Accept)
}

/// [`bind_filter`], refusing `microsoft.graph.<type>/property` paths when `casts` says so.
pub fn bind_filter_with(
    schema: &'static EntitySchema,
    text: &str,
    casts: TypeCastPaths,
) -> Result<Predicate, FilterError> {
    let ast = parse_filter(text).map_err(|error| FilterError {
        position: error.position,
        message: error.message,
    })?;
    Binder { schema, casts }.predicate(&ast)
}

/// The terms of a left-deep chain of `and` (or of `or`), in order, without recursion.
fn chain(ast: &Ast, and: bool) -> Vec<&Ast> {
    let mut terms = Vec::new();
    let mut current = ast;
    loop {
        match (current, and) {
            (Ast::And(left, right), true) | (Ast::Or(left, right), false) => {
                terms.push(right.as_ref());
                current = left;
            }
            _ => {
                terms.push(current);
                break;
            }
        }
    }
    terms.reverse();
    terms
}

struct Binder {
    schema: &'static EntitySchema,
    casts: TypeCastPaths,
}

enum Bound {
    Column(Column),
    Literal(Literal),
}

impl Binder {
    fn error(&self, position: usize, message: impl std::fmt::Display) -> BindError {
        FilterError {
            position,
            message: message.to_string(),
        }
    }

    fn column(&self, path: &str, position: usize) -> Result<Column, BindError> {
        if self.casts == TypeCastPaths::Reject && path.contains('/') {
            return Err(self.error(
                position,
                format!("the type cast path '{path}' is not supported; name the property alone"),
            ));
        }
        Column::find(self.schema, path).ok_or_else(|| {
            self.error(
                position,
                format!(
                    "could not find a property named '{path}' on type '{}'",
                    self.schema.qualified_name()
                ),
            )
        })
    }

    fn operand(&self, ast: &Ast) -> Result<Bound, BindError> {
        match ast {
            Ast::Property(path, position) => Ok(Bound::Column(self.column(path, *position)?)),
            Ast::Literal(literal, _) => Ok(Bound::Literal(literal.clone())),
            Ast::Call(name, _, position) => Err(self.error(
                *position,
                if ["startswith", "endswith", "contains"].contains(&name.as_str()) {
                    format!("{name} is already a condition; use it without a comparison")
                } else {
                    format!("the function '{name}' is not supported; use startswith, endswith or contains")
                },
            )),
            other => Err(self.error(
                other.position(),
                "expected a property or a literal here",
            )),
        }
    }

    fn predicate(&self, ast: &Ast) -> Result<Predicate, BindError> {
        match ast {
            Ast::And(..) => Ok(Predicate::And(
                chain(ast, true)
                    .into_iter()
                    .map(|term| self.predicate(term))
                    .collect::<Result<_, _>>()?,
            )),
            Ast::Or(..) => Ok(Predicate::Or(
                chain(ast, false)
                    .into_iter()
                    .map(|term| self.predicate(term))
                    .collect::<Result<_, _>>()?,
            )),
            Ast::Not(inner, _) => Ok(Predicate::Not(Box::new(self.predicate(inner)?))),
            Ast::Literal(Literal::Boolean(value), _) => Ok(Predicate::Constant(*value)),
            Ast::Property(path, position) => {
                let column = self.column(path, *position)?;
                if column.edm == EdmType::Boolean {
                    Ok(Predicate::IsTrue(column))
                } else {
                    Err(self.error(
                        *position,
                        format!(
                            "'{}' is a {}, not a Boolean condition; compare it with eq, ne, gt, ge, lt or le",
                            column.name,
                            column.edm.csdl_name()
                        ),
                    ))
                }
            }
            Ast::Compare(op, left, right, position) => self.compare(*op, left, right, *position),
            Ast::In(left, items, position) => {
                let Bound::Column(column) = self.operand(left)? else {
                    return Err(self.error(*position, "the left side of 'in' must be a property"));
                };
                let values = items
                    .iter()
                    .map(|item| match item {
                        Ast::Literal(literal, at) => self.convert(column, literal, *at),
                        other => Err(self.error(other.position(), "'in' lists only literals")),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Predicate::In(column, values))
            }
            Ast::Has(left, right, position) => {
                let Bound::Column(column) = self.operand(left)? else {
                    return Err(
                        self.error(*position, "the left side of 'has' must be an enum property")
                    );
                };
                if !matches!(column.edm, EdmType::Enum(_)) {
                    return Err(self.error(
                        *position,
                        format!(
                            "'has' applies to enum properties; '{}' is a {}",
                            column.name,
                            column.edm.csdl_name()
                        ),
                    ));
                }
                let Ast::Literal(literal, at) = right.as_ref() else {
                    return Err(self.error(
                        right.position(),
                        "the right side of 'has' must be an enum literal",
                    ));
                };
                match self.convert(column, literal, *at)? {
                    Scalar::Integer(value) => Ok(Predicate::Has(column, value)),
                    _ => Err(self.error(*at, "'has' needs an enum member")),
                }
            }
            Ast::Call(name, arguments, position) => self.call(name, arguments, *position),
            Ast::Literal(_, position) => {
                Err(self.error(*position, "a literal alone is not a condition"))
            }
        }
    }

    fn compare(
        &self,
        op: CompareOp,
        left: &Ast,
        right: &Ast,
        position: usize,
    ) -> Result<Predicate, BindError> {
        let left_bound = self.operand(left)?;
        let right_bound = self.operand(right)?;
        let (left_operand, right_operand) = match (left_bound, right_bound) {
            (Bound::Column(a), Bound::Column(b)) => {
                if a.edm != b.edm {
                    return Err(self.error(
                        position,
                        format!(
                            "cannot compare '{}' ({}) with '{}' ({})",
                            a.name,
                            a.edm.csdl_name(),
                            b.name,
                            b.edm.csdl_name()
                        ),
                    ));
                }
                (Operand::Column(a), Operand::Column(b))
            }
            (Bound::Column(column), Bound::Literal(literal)) => (
                Operand::Column(column),
                Operand::Value(self.convert(column, &literal, right.position())?),
            ),
            (Bound::Literal(literal), Bound::Column(column)) => (
                Operand::Value(self.convert(column, &literal, left.position())?),
                Operand::Column(column),
            ),
            (Bound::Literal(_), Bound::Literal(_)) => {
                return Err(self.error(position, "a comparison needs at least one property"));
            }
        };
        let ordered = !matches!(op, CompareOp::Eq | CompareOp::Ne);
        if ordered {
            for operand in [&left_operand, &right_operand] {
                if let Operand::Column(column) = operand
                    && column.edm == EdmType::Boolean
                {
                    return Err(self.error(
                        position,
                        format!("'{}' is a Boolean; use eq or ne", column.name),
                    ));
                }
            }
        }
        Ok(Predicate::Compare(op, left_operand, right_operand))
    }

    fn call(&self, name: &str, arguments: &[Ast], position: usize) -> Result<Predicate, BindError> {
        let function = match name {
            "startswith" => StringFunction::StartsWith,
            "endswith" => StringFunction::EndsWith,
            "contains" => StringFunction::Contains,
            other => {
                return Err(self.error(
                    position,
                    format!("the function '{other}' is not supported; use startswith, endswith or contains"),
                ));
            }
        };
        let [subject, needle] = arguments else {
            return Err(self.error(
                position,
                format!("{name} takes two arguments: a property and a string"),
            ));
        };
        let Bound::Column(column) = self.operand(subject)? else {
            return Err(self.error(
                subject.position(),
                format!("the first argument of {name} must be a property"),
            ));
        };
        if column.edm != EdmType::String {
            return Err(self.error(
                subject.position(),
                format!(
                    "{name} applies to string properties; '{}' is a {}",
                    column.name,
                    column.edm.csdl_name()
                ),
            ));
        }
        match needle {
            Ast::Literal(Literal::String(text), _) => {
                Ok(Predicate::Text(function, column, text.clone()))
            }
            other => Err(self.error(
                other.position(),
                format!("the second argument of {name} must be a string literal"),
            )),
        }
    }

    /// Converts a literal to the storage form of `column`'s type, or explains the mismatch.
    fn convert(
        &self,
        column: Column,
        literal: &Literal,
        position: usize,
    ) -> Result<Scalar, BindError> {
        let mismatch = |hint: &str| {
            self.error(
                position,
                format!("'{}' is a {}; {hint}", column.name, column.edm.csdl_name()),
            )
        };
        match (column.edm, literal) {
            (_, Literal::Null) => Ok(Scalar::Null),
            (EdmType::String, Literal::String(text)) => Ok(Scalar::Text(text.clone())),
            (EdmType::String, _) => {
                Err(mismatch("compare it with a quoted string such as 'value'"))
            }
            (EdmType::DateTimeOffset, Literal::DateTimeOffset(value)) => {
                Ok(Scalar::Integer(value.ticks()))
            }
            (EdmType::DateTimeOffset, _) => Err(mismatch(
                "compare it with an unquoted value such as 2021-03-01T00:00:00Z",
            )),
            (EdmType::Duration, Literal::Duration(value)) => Ok(Scalar::Integer(value.ticks())),
            (EdmType::Duration, _) => {
                Err(mismatch("compare it with a literal such as duration'PT5M'"))
            }
            (EdmType::Int32, Literal::Integer(number)) => Ok(Scalar::Integer(*number)),
            (EdmType::Int32, _) => Err(mismatch("compare it with an integer")),
            (EdmType::Boolean, Literal::Boolean(flag)) => Ok(Scalar::Boolean(*flag)),
            (EdmType::Boolean, _) => Err(mismatch("compare it with true or false")),
            (EdmType::Enum(enum_type), Literal::String(member)) => enum_type
                .value_of(member)
                .map(Scalar::Integer)
                .ok_or_else(|| {
                    self.error(
                        position,
                        format!(
                            "'{member}' is not a member of '{}'; allowed values: {}",
                            enum_type.qualified_name(),
                            enum_type.member_list()
                        ),
                    )
                }),
            (EdmType::Enum(enum_type), Literal::Typed(type_name, member)) => {
                if type_name != &enum_type.qualified_name() {
                    return Err(self.error(
                        position,
                        format!(
                            "'{}' is of type '{}', not '{type_name}'",
                            column.name,
                            enum_type.qualified_name()
                        ),
                    ));
                }
                self.convert(column, &Literal::String(member.clone()), position)
            }
            (EdmType::Enum(enum_type), _) => Err(mismatch(&format!(
                "compare it with a member name such as '{}'",
                enum_type.members[1].0
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AUTOPILOT_EVENT, POLICY_STATUS_DETAIL};

    fn bind(text: &str) -> Result<Predicate, String> {
        bind_filter(&AUTOPILOT_EVENT, text).map_err(|error| error.to_string())
    }

    #[test]
    fn an_error_carries_the_position_of_what_is_wrong() {
        let error = bind_filter(
            &AUTOPILOT_EVENT,
            "deploymentState eq 'failure' and nope eq 1",
        )
        .unwrap_err();
        assert_eq!(error.position, 33);
        assert!(error.message.contains("nope"), "{error:?}");
        let syntax = bind_filter(&AUTOPILOT_EVENT, "deploymentState eq").unwrap_err();
        assert_eq!(syntax.position, 18, "{syntax:?}");
    }

    #[test]
    fn literals_take_the_type_of_the_property_they_meet() {
        let Predicate::Compare(
            CompareOp::Eq,
            Operand::Column(column),
            Operand::Value(Scalar::Integer(3)),
        ) = bind("deploymentState eq 'failure'").unwrap()
        else {
            panic!()
        };
        assert_eq!(column.column, "deployment_state");
        assert!(
            bind("deploymentState eq microsoft.graph.windowsAutopilotDeploymentState'failure'")
                .is_ok()
        );
        assert!(
            bind("DeploymentState EQ 'failure'").is_err(),
            "operators are lower case"
        );
        assert!(
            bind("DEPLOYMENTSTATE eq 'failure'").is_ok(),
            "property names ignore case"
        );
        assert!(
            bind("eventDateTime ge 2021-01-01T00:00Z and deploymentDuration gt duration'PT5M'")
                .is_ok()
        );
        assert!(
            bind_filter(
                &POLICY_STATUS_DETAIL,
                "trackedOnEnrollmentStatus and errorCode ne 0"
            )
            .is_ok()
        );
    }

    #[test]
    fn type_and_name_errors_say_what_is_wrong_and_where() {
        for (text, fragments) in [
            ("colour eq 'red'", vec!["position 0", "'colour'"]),
            (
                "deploymentState eq 'done'",
                vec!["position 19", "'done'", "successOnRetry"],
            ),
            (
                "eventDateTime ge '2021-01-01T00:00:00Z'",
                vec!["position 17", "unquoted"],
            ),
            ("targetedAppCount eq 'x'", vec!["integer"]),
            ("deploymentDuration gt 5", vec!["duration'PT5M'"]),
            (
                "deploymentState eq microsoft.graph.enrollmentState'failed'",
                vec!["not 'microsoft.graph.enrollmentState'"],
            ),
            (
                "startswith(targetedAppCount, '1')",
                vec!["string properties"],
            ),
            ("tolower(deviceId) eq 'x'", vec!["tolower"]),
            ("deviceId", vec!["not a Boolean condition"]),
            ("deviceId has 'x'", vec!["enum properties"]),
            (
                "microsoft.graph.user/deviceId eq 'x'",
                vec!["could not find"],
            ),
            ("1 eq 1", vec!["at least one property"]),
        ] {
            let error = bind(text).unwrap_err();
            for fragment in fragments {
                assert!(error.contains(fragment), "{text}: {error}");
            }
        }
    }
}
