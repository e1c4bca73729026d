//! Exact EDM primitives: the wire forms of Graph's DateTimeOffset, Duration and enum types, with
//! parsing and printing as the single source of truth. Nothing here knows about HTTP or storage.

mod datetime_offset;
mod duration;

pub use datetime_offset::{DateTimeOffset, MAX_TICKS, Seconds, TICKS_PER_SECOND};
pub use duration::Duration;

#[cfg(test)]
mod oracle_tests;

/// An enum type of the `microsoft.graph` namespace: member names with their underlying values, in
/// declaration order.
#[derive(Debug)]
pub struct EnumType {
    pub name: &'static str,
    pub members: &'static [(&'static str, i64)],
}

impl EnumType {
    /// The underlying value of a member; names are case-sensitive, as in Graph.
    pub fn value_of(&self, member: &str) -> Option<i64> {
        self.members
            .iter()
            .find(|(name, _)| *name == member)
            .map(|(_, value)| *value)
    }

    pub fn name_of(&self, value: i64) -> Option<&'static str> {
        self.members
            .iter()
            .find(|(_, v)| *v == value)
            .map(|(name, _)| *name)
    }

    /// `microsoft.graph.windowsAutopilotDeploymentState`.
    pub fn qualified_name(&self) -> String {
        format!("microsoft.graph.{}", self.name)
    }

    /// The member names, comma separated, for error messages.
    pub fn member_list(&self) -> String {
        self.members
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

pub static ENROLLMENT_TYPE: EnumType = EnumType {
    name: "windowsAutopilotEnrollmentType",
    members: &[
        ("unknown", 0),
        ("azureADJoinedWithAutopilotProfile", 1),
        ("offlineDomainJoined", 2),
        ("azureADJoinedUsingDeviceAuthWithAutopilotProfile", 3),
        ("azureADJoinedUsingDeviceAuthWithoutAutopilotProfile", 4),
        ("azureADJoinedWithOfflineAutopilotProfile", 5),
        ("azureADJoinedWithWhiteGlove", 6),
        ("offlineDomainJoinedWithWhiteGlove", 7),
        ("offlineDomainJoinedWithOfflineAutopilotProfile", 8),
    ],
};

pub static ENROLLMENT_STATE: EnumType = EnumType {
    name: "enrollmentState",
    members: &[
        ("unknown", 0),
        ("enrolled", 1),
        ("pendingReset", 2),
        ("failed", 3),
        ("notContacted", 4),
        ("blocked", 5),
    ],
};

pub static DEPLOYMENT_STATE: EnumType = EnumType {
    name: "windowsAutopilotDeploymentState",
    members: &[
        ("unknown", 0),
        ("success", 1),
        ("inProgress", 2),
        ("failure", 3),
        ("successWithTimeout", 4),
        ("notAttempted", 5),
        ("disabled", 6),
        ("successOnRetry", 7),
    ],
};

pub static POLICY_TYPE: EnumType = EnumType {
    name: "deviceManagementAutopilotPolicyType",
    members: &[
        ("unknown", 0),
        ("application", 3),
        ("appModel", 7),
        ("configurationPolicy", 12),
    ],
};

pub static COMPLIANCE_STATUS: EnumType = EnumType {
    name: "deviceManagementAutopilotPolicyComplianceStatus",
    members: &[
        ("unknown", 0),
        ("compliant", 1),
        ("installed", 2),
        ("notCompliant", 3),
        ("notInstalled", 4),
        ("error", 5),
    ],
};

/// Every enum type of the service, for `$metadata`.
pub static ALL_ENUMS: [&EnumType; 5] = [
    &ENROLLMENT_TYPE,
    &ENROLLMENT_STATE,
    &DEPLOYMENT_STATE,
    &POLICY_TYPE,
    &COMPLIANCE_STATUS,
];
