//! The two entity types of api.md §2 and §3, property by property.

use super::Value;
use crate::edm::{
    COMPLIANCE_STATUS, DEPLOYMENT_STATE, DateTimeOffset, Duration, ENROLLMENT_STATE,
    ENROLLMENT_TYPE, EnumType, POLICY_TYPE,
};

/// The EDM type of a structural property.
#[derive(Clone, Copy, Debug)]
pub enum EdmType {
    String,
    DateTimeOffset,
    Duration,
    Int32,
    Boolean,
    Enum(&'static EnumType),
}

impl EdmType {
    /// The CSDL name (`Edm.String`, `microsoft.graph.enrollmentState`).
    pub fn csdl_name(self) -> String {
        match self {
            EdmType::String => "Edm.String".into(),
            EdmType::DateTimeOffset => "Edm.DateTimeOffset".into(),
            EdmType::Duration => "Edm.Duration".into(),
            EdmType::Int32 => "Edm.Int32".into(),
            EdmType::Boolean => "Edm.Boolean".into(),
            EdmType::Enum(enum_type) => enum_type.qualified_name(),
        }
    }
}

/// Types are equal when they are the same primitive, or the very same enum type.
impl PartialEq for EdmType {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (EdmType::Enum(a), EdmType::Enum(b)) => std::ptr::eq(*a, *b),
            (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
        }
    }
}

/// A structural property: how it is named on the wire and in SQL, and what it holds.
#[derive(Debug)]
pub struct Property {
    pub name: &'static str,
    pub column: &'static str,
    pub edm: EdmType,
    pub nullable: bool,
}

impl Property {
    const fn new(name: &'static str, column: &'static str, edm: EdmType, nullable: bool) -> Self {
        Self {
            name,
            column,
            edm,
            nullable,
        }
    }

    /// The value a create body that omits this property gets (api.md §2/§3 "default").
    pub fn default_value(&self) -> Value {
        if self.nullable {
            return Value::Null;
        }
        match self.edm {
            EdmType::String => Value::String(String::new()),
            EdmType::DateTimeOffset => Value::DateTimeOffset(DateTimeOffset::MIN),
            EdmType::Duration => Value::Duration(Duration::ZERO),
            EdmType::Int32 => Value::Int32(0),
            EdmType::Boolean => Value::Boolean(false),
            EdmType::Enum(enum_type) => Value::Enum(enum_type.members[0].1),
        }
    }
}

/// An entity type and the table that holds it.
#[derive(Debug)]
pub struct EntitySchema {
    /// The unqualified type name (`deviceManagementAutopilotEvent`).
    pub type_name: &'static str,
    pub table: &'static str,
    /// Structural properties other than `id`, in declaration order.
    pub properties: &'static [Property],
}

impl EntitySchema {
    pub fn qualified_name(&self) -> String {
        format!("microsoft.graph.{}", self.type_name)
    }

    /// The property of that exact (case-sensitive) name, with its position.
    pub fn property(&self, name: &str) -> Option<(usize, &'static Property)> {
        self.properties
            .iter()
            .enumerate()
            .find(|(_, property)| property.name == name)
    }
}

use EdmType as T;

/// The event's contained navigation to its policy status details.
pub const DETAILS_NAVIGATION: &str = "policyStatusDetails";

/// The properties of [`AUTOPILOT_EVENT`], in declaration order.
const EVENT_PROPERTIES: &[Property] = &[
    Property::new("deviceId", "device_id", T::String, true),
    Property::new("userId", "user_id", T::String, true),
    Property::new("eventDateTime", "event_date_time", T::DateTimeOffset, false),
    Property::new(
        "deviceRegisteredDateTime",
        "device_registered_date_time",
        T::DateTimeOffset,
        false,
    ),
    Property::new(
        "enrollmentStartDateTime",
        "enrollment_start_date_time",
        T::DateTimeOffset,
        false,
    ),
    Property::new(
        "enrollmentType",
        "enrollment_type",
        T::Enum(&ENROLLMENT_TYPE),
        false,
    ),
    Property::new(
        "deviceSerialNumber",
        "device_serial_number",
        T::String,
        true,
    ),
    Property::new("managedDeviceName", "managed_device_name", T::String, true),
    Property::new("userPrincipalName", "user_principal_name", T::String, true),
    Property::new(
        "windowsAutopilotDeploymentProfileDisplayName",
        "deployment_profile_display_name",
        T::String,
        true,
    ),
    Property::new(
        "enrollmentState",
        "enrollment_state",
        T::Enum(&ENROLLMENT_STATE),
        false,
    ),
    Property::new(
        "windows10EnrollmentCompletionPageConfigurationDisplayName",
        "esp_configuration_display_name",
        T::String,
        true,
    ),
    Property::new(
        "windows10EnrollmentCompletionPageConfigurationId",
        "esp_configuration_id",
        T::String,
        true,
    ),
    Property::new(
        "deploymentState",
        "deployment_state",
        T::Enum(&DEPLOYMENT_STATE),
        false,
    ),
    Property::new(
        "deviceSetupStatus",
        "device_setup_status",
        T::Enum(&DEPLOYMENT_STATE),
        false,
    ),
    Property::new(
        "accountSetupStatus",
        "account_setup_status",
        T::Enum(&DEPLOYMENT_STATE),
        false,
    ),
    Property::new("osVersion", "os_version", T::String, true),
    Property::new(
        "deploymentDuration",
        "deployment_duration",
        T::Duration,
        false,
    ),
    Property::new(
        "deploymentTotalDuration",
        "deployment_total_duration",
        T::Duration,
        false,
    ),
    Property::new(
        "devicePreparationDuration",
        "device_preparation_duration",
        T::Duration,
        false,
    ),
    Property::new(
        "deviceSetupDuration",
        "device_setup_duration",
        T::Duration,
        false,
    ),
    Property::new(
        "accountSetupDuration",
        "account_setup_duration",
        T::Duration,
        false,
    ),
    Property::new(
        "deploymentStartDateTime",
        "deployment_start_date_time",
        T::DateTimeOffset,
        false,
    ),
    Property::new(
        "deploymentEndDateTime",
        "deployment_end_date_time",
        T::DateTimeOffset,
        false,
    ),
    Property::new("targetedAppCount", "targeted_app_count", T::Int32, false),
    Property::new(
        "targetedPolicyCount",
        "targeted_policy_count",
        T::Int32,
        false,
    ),
    Property::new(
        "enrollmentFailureDetails",
        "enrollment_failure_details",
        T::String,
        true,
    ),
];

pub static AUTOPILOT_EVENT: EntitySchema = EntitySchema {
    type_name: "deviceManagementAutopilotEvent",
    table: "autopilot_events",
    properties: EVENT_PROPERTIES,
};

/// The properties of [`POLICY_STATUS_DETAIL`], in declaration order.
const DETAIL_PROPERTIES: &[Property] = &[
    Property::new("displayName", "display_name", T::String, true),
    Property::new("policyType", "policy_type", T::Enum(&POLICY_TYPE), false),
    Property::new(
        "complianceStatus",
        "compliance_status",
        T::Enum(&COMPLIANCE_STATUS),
        false,
    ),
    Property::new(
        "trackedOnEnrollmentStatus",
        "tracked_on_enrollment_status",
        T::Boolean,
        false,
    ),
    Property::new(
        "lastReportedDateTime",
        "last_reported_date_time",
        T::DateTimeOffset,
        false,
    ),
    Property::new("errorCode", "error_code", T::Int32, false),
];

pub static POLICY_STATUS_DETAIL: EntitySchema = EntitySchema {
    type_name: "deviceManagementAutopilotPolicyStatusDetail",
    table: "policy_status_details",
    properties: DETAIL_PROPERTIES,
};

/// The properties of [`AUTOPILOT_EVENT`] by name, resolved when the program is compiled: code that builds
/// entities (the seed generator) names them as constants, and a name the schema does not have
/// does not build.
pub mod event {
    use super::{EVENT_PROPERTIES, PropertyId, property_id};

    pub const DEVICE_ID: PropertyId = property_id(EVENT_PROPERTIES, "deviceId");
    pub const USER_ID: PropertyId = property_id(EVENT_PROPERTIES, "userId");
    pub const EVENT_DATE_TIME: PropertyId = property_id(EVENT_PROPERTIES, "eventDateTime");
    pub const DEVICE_REGISTERED_DATE_TIME: PropertyId =
        property_id(EVENT_PROPERTIES, "deviceRegisteredDateTime");
    pub const ENROLLMENT_START_DATE_TIME: PropertyId =
        property_id(EVENT_PROPERTIES, "enrollmentStartDateTime");
    pub const ENROLLMENT_TYPE: PropertyId = property_id(EVENT_PROPERTIES, "enrollmentType");
    pub const DEVICE_SERIAL_NUMBER: PropertyId =
        property_id(EVENT_PROPERTIES, "deviceSerialNumber");
    pub const MANAGED_DEVICE_NAME: PropertyId = property_id(EVENT_PROPERTIES, "managedDeviceName");
    pub const USER_PRINCIPAL_NAME: PropertyId = property_id(EVENT_PROPERTIES, "userPrincipalName");
    pub const WINDOWS_AUTOPILOT_DEPLOYMENT_PROFILE_DISPLAY_NAME: PropertyId = property_id(
        EVENT_PROPERTIES,
        "windowsAutopilotDeploymentProfileDisplayName",
    );
    pub const ENROLLMENT_STATE: PropertyId = property_id(EVENT_PROPERTIES, "enrollmentState");
    pub const WINDOWS10_ENROLLMENT_COMPLETION_PAGE_CONFIGURATION_DISPLAY_NAME: PropertyId =
        property_id(
            EVENT_PROPERTIES,
            "windows10EnrollmentCompletionPageConfigurationDisplayName",
        );
    pub const WINDOWS10_ENROLLMENT_COMPLETION_PAGE_CONFIGURATION_ID: PropertyId = property_id(
        EVENT_PROPERTIES,
        "windows10EnrollmentCompletionPageConfigurationId",
    );
    pub const DEPLOYMENT_STATE: PropertyId = property_id(EVENT_PROPERTIES, "deploymentState");
    pub const DEVICE_SETUP_STATUS: PropertyId = property_id(EVENT_PROPERTIES, "deviceSetupStatus");
    pub const ACCOUNT_SETUP_STATUS: PropertyId =
        property_id(EVENT_PROPERTIES, "accountSetupStatus");
    pub const OS_VERSION: PropertyId = property_id(EVENT_PROPERTIES, "osVersion");
    pub const DEPLOYMENT_DURATION: PropertyId = property_id(EVENT_PROPERTIES, "deploymentDuration");
    pub const DEPLOYMENT_TOTAL_DURATION: PropertyId =
        property_id(EVENT_PROPERTIES, "deploymentTotalDuration");
    pub const DEVICE_PREPARATION_DURATION: PropertyId =
        property_id(EVENT_PROPERTIES, "devicePreparationDuration");
    pub const DEVICE_SETUP_DURATION: PropertyId =
        property_id(EVENT_PROPERTIES, "deviceSetupDuration");
    pub const ACCOUNT_SETUP_DURATION: PropertyId =
        property_id(EVENT_PROPERTIES, "accountSetupDuration");
    pub const DEPLOYMENT_START_DATE_TIME: PropertyId =
        property_id(EVENT_PROPERTIES, "deploymentStartDateTime");
    pub const DEPLOYMENT_END_DATE_TIME: PropertyId =
        property_id(EVENT_PROPERTIES, "deploymentEndDateTime");
    pub const TARGETED_APP_COUNT: PropertyId = property_id(EVENT_PROPERTIES, "targetedAppCount");
    pub const TARGETED_POLICY_COUNT: PropertyId =
        property_id(EVENT_PROPERTIES, "targetedPolicyCount");
    pub const ENROLLMENT_FAILURE_DETAILS: PropertyId =
        property_id(EVENT_PROPERTIES, "enrollmentFailureDetails");
}

/// The properties of [`POLICY_STATUS_DETAIL`] by name, resolved when the program is compiled: code that builds
/// entities (the seed generator) names them as constants, and a name the schema does not have
/// does not build.
pub mod detail {
    use super::{DETAIL_PROPERTIES, PropertyId, property_id};

    pub const DISPLAY_NAME: PropertyId = property_id(DETAIL_PROPERTIES, "displayName");
    pub const POLICY_TYPE: PropertyId = property_id(DETAIL_PROPERTIES, "policyType");
    pub const COMPLIANCE_STATUS: PropertyId = property_id(DETAIL_PROPERTIES, "complianceStatus");
    pub const TRACKED_ON_ENROLLMENT_STATUS: PropertyId =
        property_id(DETAIL_PROPERTIES, "trackedOnEnrollmentStatus");
    pub const LAST_REPORTED_DATE_TIME: PropertyId =
        property_id(DETAIL_PROPERTIES, "lastReportedDateTime");
    pub const ERROR_CODE: PropertyId = property_id(DETAIL_PROPERTIES, "errorCode");
}

/// A property of a schema by its position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PropertyId(pub usize);

/// The position of `name` among `properties`; evaluated at compile time for the constants of
/// [`event`] and [`detail`], where an unknown name stops the build:
///
/// ```
/// use graphpilot::model::{AUTOPILOT_EVENT, PropertyId, event, property_id};
/// const SERIAL: PropertyId = property_id(AUTOPILOT_EVENT.properties, "deviceSerialNumber");
/// assert_eq!(SERIAL, event::DEVICE_SERIAL_NUMBER);
/// ```
///
/// ```compile_fail
/// use graphpilot::model::{AUTOPILOT_EVENT, PropertyId, property_id};
/// const MISSPELT: PropertyId = property_id(AUTOPILOT_EVENT.properties, "deviceSerial");
/// ```
pub const fn property_id(properties: &[Property], name: &str) -> PropertyId {
    let mut position = 0;
    while position < properties.len() {
        let candidate = properties[position].name.as_bytes();
        let wanted = name.as_bytes();
        if candidate.len() == wanted.len() {
            let mut index = 0;
            while index < wanted.len() && candidate[index] == wanted[index] {
                index += 1;
            }
            if index == wanted.len() {
                return PropertyId(position);
            }
        }
        position += 1;
    }
    panic!("no property of that name")
}
