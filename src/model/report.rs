//! The `AutopilotV1DeploymentStatus` report (reports-and-sync.md A2): its columns in Graph's order,
//! the English texts of its enums, and an event as the cells of the columns a job writes.

use super::{AUTOPILOT_EVENT, EdmType, Entity, Value};
use crate::edm::{DEPLOYMENT_STATE, ENROLLMENT_STATE, ENROLLMENT_TYPE, EnumType};

/// The one report graphpilot exports.
pub const AUTOPILOT_V1: &str = "AutopilotV1DeploymentStatus";

/// Where a column's cells come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    /// An event property, by name.
    Property(&'static str),
    /// Nothing events say: always empty.
    Empty,
    /// The constant `Windows`.
    Windows,
}

struct ReportColumn {
    name: &'static str,
    source: Source,
}

const fn column(name: &'static str, source: Source) -> ReportColumn {
    ReportColumn { name, source }
}

use Source::{Empty, Property as P, Windows};

/// The default columns, in Graph's documented order.
const COLUMNS: [ReportColumn; 27] = [
    column("AccountSetupDuration", P("accountSetupDuration")),
    column(
        "AutopilotProfileName",
        P("windowsAutopilotDeploymentProfileDisplayName"),
    ),
    column("DeploymentDuration", P("deploymentDuration")),
    column("DeploymentEndDateTime", P("deploymentEndDateTime")),
    column("DeploymentStartDateTime", P("deploymentStartDateTime")),
    column("DeploymentState", P("deploymentState")),
    column("DeploymentTotalDuration", P("deploymentTotalDuration")),
    column("DeviceId", P("deviceId")),
    column("DeviceName", P("managedDeviceName")),
    column("DeviceRegisteredDateTime", P("deviceRegisteredDateTime")),
    column("DeviceSerialNumber", P("deviceSerialNumber")),
    column("DeviceSetupDuration", P("deviceSetupDuration")),
    column("DeviceSetupStatus", P("deviceSetupStatus")),
    column("EnrollmentDateTime", P("enrollmentStartDateTime")),
    column("EnrollmentMethod", P("enrollmentType")),
    column("EnrollmentStatus", P("enrollmentState")),
    column(
        "ESPPolicyId",
        P("windows10EnrollmentCompletionPageConfigurationId"),
    ),
    column(
        "ESPPolicyName",
        P("windows10EnrollmentCompletionPageConfigurationDisplayName"),
    ),
    column("EspDeviceSetupFailureDetails", Empty),
    column("EspUserSetupFailureDetails", Empty),
    column("FailureDetails", P("enrollmentFailureDetails")),
    column("FailureReason", Empty),
    column("OS", Windows),
    column("OSVersion", P("osVersion")),
    column("UPN", P("userPrincipalName")),
    column("UserId", P("userId")),
    column("UserSetupStatus", P("accountSetupStatus")),
];

/// The English texts of an enum type's members, in member order.
fn texts_of(enum_type: &EnumType) -> &'static [&'static str] {
    if std::ptr::eq(enum_type, &DEPLOYMENT_STATE) {
        &[
            "Unknown",
            "Success",
            "In progress",
            "Failure",
            "Success with timeout",
            "Not attempted",
            "Disabled",
            "Success on retry",
        ]
    } else if std::ptr::eq(enum_type, &ENROLLMENT_STATE) {
        &[
            "Unknown",
            "Enrolled",
            "Pending reset",
            "Failed",
            "Not contacted",
            "Blocked",
        ]
    } else if std::ptr::eq(enum_type, &ENROLLMENT_TYPE) {
        &[
            "Unknown",
            "Azure AD joined with Autopilot profile",
            "Offline domain joined",
            "Azure AD joined using device auth with Autopilot profile",
            "Azure AD joined using device auth without Autopilot profile",
            "Azure AD joined with offline Autopilot profile",
            "Azure AD joined with white glove",
            "Offline domain joined with white glove",
            "Offline domain joined with offline Autopilot profile",
        ]
    } else {
        &[]
    }
}

/// The file format of a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Json => "json",
        }
    }

    pub fn parse(text: &str) -> Option<Format> {
        match text.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// How enum columns are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Localization {
    /// The underlying integer, then `<Col>_loc` with the text.
    AdditionalColumn,
    /// The text alone.
    Replace,
}

impl Localization {
    pub fn as_str(self) -> &'static str {
        match self {
            Localization::AdditionalColumn => "localizedValuesAsAdditionalColumn",
            Localization::Replace => "replaceLocalizableValues",
        }
    }

    pub fn parse(text: &str) -> Option<Localization> {
        [Localization::AdditionalColumn, Localization::Replace]
            .into_iter()
            .find(|candidate| candidate.as_str().eq_ignore_ascii_case(text))
    }
}

/// What an output column holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A property's value as its JSON text (strings as stored).
    Value(usize),
    /// An enum property's underlying integer.
    EnumValue(usize),
    /// An enum property's English text.
    EnumText(usize),
    Empty,
    Windows,
}

/// One column of a report file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputColumn {
    pub name: String,
    kind: Kind,
}

/// One cell of a report row.
#[derive(Debug, PartialEq)]
pub enum Cell<'a> {
    Empty,
    /// An enum's underlying value (JSON writes it as a number).
    Integer(i64),
    Text(std::borrow::Cow<'a, str>),
}

/// The columns a job writes: its selection (or the defaults), enum columns localized as asked.
pub fn output_columns(selected: &[usize], localization: Localization) -> Vec<OutputColumn> {
    let defaults: Vec<usize> = (0..COLUMNS.len()).collect();
    let chosen = if selected.is_empty() {
        &defaults
    } else {
        selected
    };
    let mut columns = Vec::new();
    for &index in chosen {
        let column = &COLUMNS[index];
        match column.source {
            Source::Empty => columns.push(OutputColumn {
                name: column.name.into(),
                kind: Kind::Empty,
            }),
            Source::Windows => columns.push(OutputColumn {
                name: column.name.into(),
                kind: Kind::Windows,
            }),
            Source::Property(name) => {
                let (position, property) = AUTOPILOT_EVENT
                    .property(name)
                    .expect("report columns name event properties");
                match (property.edm, localization) {
                    (EdmType::Enum(_), Localization::AdditionalColumn) => {
                        columns.push(OutputColumn {
                            name: column.name.into(),
                            kind: Kind::EnumValue(position),
                        });
                        columns.push(OutputColumn {
                            name: format!("{}_loc", column.name),
                            kind: Kind::EnumText(position),
                        });
                    }
                    (EdmType::Enum(_), Localization::Replace) => columns.push(OutputColumn {
                        name: column.name.into(),
                        kind: Kind::EnumText(position),
                    }),
                    _ => columns.push(OutputColumn {
                        name: column.name.into(),
                        kind: Kind::Value(position),
                    }),
                }
            }
        }
    }
    columns
}

impl OutputColumn {
    /// This column's cell for an event.
    pub fn cell<'a>(&self, event: &'a Entity) -> Cell<'a> {
        use std::borrow::Cow;
        let text_of = |position: usize, value: i64| {
            let EdmType::Enum(enum_type) = AUTOPILOT_EVENT.properties[position].edm else {
                return Cell::Empty;
            };
            enum_type
                .members
                .iter()
                .position(|(_, underlying)| *underlying == value)
                .and_then(|index| texts_of(enum_type).get(index))
                .map_or(Cell::Empty, |text| Cell::Text(Cow::Borrowed(text)))
        };
        match self.kind {
            Kind::Empty => Cell::Empty,
            Kind::Windows => Cell::Text(Cow::Borrowed("Windows")),
            Kind::EnumValue(position) => match &event.values[position] {
                Value::Enum(value) => Cell::Integer(*value),
                _ => Cell::Empty,
            },
            Kind::EnumText(position) => match &event.values[position] {
                Value::Enum(value) => text_of(position, *value),
                _ => Cell::Empty,
            },
            Kind::Value(position) => match &event.values[position] {
                Value::Null => Cell::Empty,
                Value::String(text) => Cell::Text(Cow::Borrowed(text)),
                Value::DateTimeOffset(instant) => Cell::Text(Cow::Owned(instant.to_string())),
                Value::Duration(span) => Cell::Text(Cow::Owned(span.to_string())),
                Value::Int32(number) => Cell::Text(Cow::Owned(number.to_string())),
                Value::Boolean(flag) => {
                    Cell::Text(Cow::Borrowed(if *flag { "true" } else { "false" }))
                }
                Value::Enum(value) => Cell::Integer(*value),
            },
        }
    }
}
/// The selected column indices of a stored job's `select` (checked when it was created).
pub fn select_columns(select: &[String]) -> Vec<usize> {
    select
        .iter()
        .filter_map(|name| {
            COLUMNS
                .iter()
                .position(|column| column.name.eq_ignore_ascii_case(name))
        })
        .collect()
}
/// The index of a report column, its name matched case-insensitively.
pub fn column_index(name: &str) -> Option<usize> {
    COLUMNS
        .iter()
        .position(|column| column.name.eq_ignore_ascii_case(name))
}

/// The report's column names, in order, for messages.
pub fn column_names() -> String {
    COLUMNS
        .iter()
        .map(|c| c.name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_columns_localize_enums_beside_their_values() {
        let names: Vec<String> = output_columns(&[], Localization::AdditionalColumn)
            .into_iter()
            .map(|column| column.name)
            .collect();
        assert_eq!(names.len(), 27 + 5);
        assert_eq!(names[5], "DeploymentState");
        assert_eq!(names[6], "DeploymentState_loc");
        assert_eq!(names.last().unwrap(), "UserSetupStatus_loc");
    }

    #[test]
    fn cells_follow_the_contract() {
        let mut event = Entity::with_id(&AUTOPILOT_EVENT, "e".into());
        let (state, _) = AUTOPILOT_EVENT.property("deploymentState").unwrap();
        event.values[state] = Value::Enum(4);
        let columns = output_columns(
            &select_columns(&["deploymentstate".into(), "OS".into(), "UPN".into()]),
            Localization::AdditionalColumn,
        );
        let cells: Vec<Cell> = columns.iter().map(|column| column.cell(&event)).collect();
        assert_eq!(cells[0], Cell::Integer(4));
        assert_eq!(
            cells[1],
            Cell::Text(std::borrow::Cow::Borrowed("Success with timeout"))
        );
        assert_eq!(cells[2], Cell::Text(std::borrow::Cow::Borrowed("Windows")));
        assert_eq!(cells[3], Cell::Empty);
    }
}
