//! Deterministic synthetic Autopilot deployments that look like a real fleet: the same seed and
//! tenant give byte-identical events on any machine (ChaCha8 from a fixed seed, no clock, no
//! hash-map order). Phase durations add up (device setup + account setup = deployment duration ≤
//! total), end follows start, failures carry plausible details, and each event carries the apps
//! and policies its Enrollment Status Page tracked.
//!
//! Why one file of ~700 lines: most of it is the fleet's tables (names, profiles, builds, failure
//! texts, tracked apps) and the one function that draws a deployment from them in a fixed order;
//! the order of random draws is the output, so it stays in one place. About 115 lines are tests.

use std::sync::Arc;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::edm::{DateTimeOffset, Duration, TICKS_PER_SECOND};
use crate::model::{
    AUTOPILOT_EVENT, Deployment, Entity, EntitySchema, POLICY_STATUS_DETAIL, PropertyId, Value,
    detail, event,
};
use crate::store::{LoadKind, Store, StoreError};

/// Picks from weighted choices (weights in any unit).
fn weighted<'a, T>(rng: &mut ChaCha8Rng, choices: &'a [(T, u32)]) -> &'a T {
    let total: u32 = choices.iter().map(|(_, weight)| weight).sum();
    let mut roll = rng.random_range(0..total);
    for (choice, weight) in choices {
        if roll < *weight {
            return choice;
        }
        roll -= weight;
    }
    &choices[choices.len() - 1].0
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

/// FNV-1a: a stable hash to mix the tenant into the seed (std's hasher is not stable).
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

const ENROLLMENT_TYPES: [(&str, u32); 7] = [
    ("azureADJoinedWithAutopilotProfile", 55),
    ("azureADJoinedWithWhiteGlove", 14),
    ("azureADJoinedUsingDeviceAuthWithAutopilotProfile", 10),
    ("offlineDomainJoined", 8),
    ("offlineDomainJoinedWithWhiteGlove", 5),
    ("azureADJoinedWithOfflineAutopilotProfile", 5),
    ("offlineDomainJoinedWithOfflineAutopilotProfile", 3),
];

const OUTCOMES: [(&str, u32); 6] = [
    ("success", 780),
    ("failure", 90),
    ("inProgress", 50),
    ("successWithTimeout", 40),
    ("successOnRetry", 30),
    ("notAttempted", 10),
];

const PROFILES: [&str; 4] = [
    "Autopilot - Standard User",
    "Autopilot - Pre-provisioned",
    "Autopilot - Kiosk (self-deploying)",
    "Autopilot - Hybrid Join",
];

const ESP_PROFILES: [(&str, &str); 3] = [
    ("ESP - Default", "4f0b2b8e-3c0e-4f7a-9d51-0c2b1f7d6a01"),
    (
        "ESP - Frontline Workers",
        "9a6f5c43-1d2e-4b8a-b7c5-5e0d9c3f2a02",
    ),
    ("ESP - Engineering", "c1e7a9d0-6b4f-4e21-8f3a-2d9b7e5c4a03"),
];

const OS_BUILDS: [(&str, u32); 5] = [
    ("10.0.19045.4046", 15),
    ("10.0.22621.3155", 20),
    ("10.0.22631.3296", 40),
    ("10.0.26100.2033", 20),
    ("10.0.26100.2605", 5),
];

const DEVICE_FAILURES: [&str; 5] = [
    "0x80180014: MDM enrollment was blocked by a device platform restriction.",
    "0x800705b4: The Enrollment Status Page timed out while installing required apps during device setup.",
    "0x81036502: App installation failed during device setup (Microsoft 365 Apps, exit code 17002).",
    "0x80070774: Hybrid Azure AD join failed: the domain controller could not be reached.",
    "0x801c03ea: TPM attestation failed during self-deploying mode.",
];

const ACCOUNT_FAILURES: [&str; 3] = [
    "0x800705b4: The Enrollment Status Page timed out during account setup.",
    "0x87d1041c: A required app was not detected after installation during account setup.",
    "0x80004005: Certificate profile 'Wi-Fi Corp' failed to install during account setup.",
];

/// (display name, policy type) of what an Enrollment Status Page tracks.
const TRACKED: [(&str, &str); 10] = [
    ("Microsoft 365 Apps for enterprise", "application"),
    ("Company Portal", "appModel"),
    ("Microsoft Teams", "application"),
    ("Microsoft Edge", "application"),
    ("Defender for Endpoint onboarding", "configurationPolicy"),
    ("BitLocker - Silent encryption", "configurationPolicy"),
    ("Windows Hello for Business", "configurationPolicy"),
    ("Wi-Fi Corp (certificate)", "configurationPolicy"),
    ("Always On VPN", "configurationPolicy"),
    ("Line-of-business app: Expenses", "appModel"),
];

const FIRST_NAMES: [&str; 16] = [
    "ada",
    "alan",
    "grace",
    "linus",
    "margaret",
    "dennis",
    "barbara",
    "ken",
    "frances",
    "edsger",
    "radia",
    "tim",
    "hedy",
    "john",
    "katherine",
    "donald",
];
const LAST_NAMES: [&str; 16] = [
    "lovelace",
    "turing",
    "hopper",
    "torvalds",
    "hamilton",
    "ritchie",
    "liskov",
    "thompson",
    "allen",
    "dijkstra",
    "perlman",
    "berners-lee",
    "lamarr",
    "backus",
    "johnson",
    "knuth",
];

/// The kind of fleet history to generate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Scenario {
    /// About 78% success, 9% failure, 5% in progress, spread over 90 days.
    #[default]
    MostlyHealthy,
    /// As healthy, except that in the last 7 days most deployments with the "ESP - Engineering"
    /// Enrollment Status Page fail installing Microsoft 365 Apps.
    BadRollout,
    /// As healthy, except that about a third of the last 2 days' deployments are stuck in
    /// progress.
    StuckInProgress,
}

/// The Enrollment Status Page whose rollout goes wrong in [`Scenario::BadRollout`].
const BAD_ROLLOUT_ESP: &str = "ESP - Engineering";

/// A generator for one tenant. `end` is the latest event time; events spread over the 90 days
/// before it.
pub struct FleetGenerator {
    rng: ChaCha8Rng,
    domain: String,
    end: DateTimeOffset,
    index: u64,
    scenario: Scenario,
    /// Devices whose deployment failed and that will be deployed again (repeat attempts).
    retries: Vec<Retry>,
}

/// A device to deploy again after a failure: the same serial number, device and enrollment type.
struct Retry {
    serial: String,
    device_id: String,
    enrollment_type: &'static str,
    failed_at: i64,
}

/// What blocks the Enrollment Status Page of a failed or timed-out deployment: the tracked app or
/// policy (display name, policy type), its complianceStatus and errorCode (HRESULTs as Graph
/// reports them, signed 32-bit).
struct Blocking {
    name: &'static str,
    policy_type: &'static str,
    status: &'static str,
    error_code: i32,
}

/// HRESULTs of the failures, as signed 32-bit error codes.
const fn hresult(code: u32) -> i32 {
    code as i32
}

impl FleetGenerator {
    pub fn new(tenant: &str, seed: u64, end: DateTimeOffset, scenario: Scenario) -> Self {
        let slug: String = tenant
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(24)
            .collect::<String>()
            .to_ascii_lowercase();
        let domain = if slug.is_empty() || slug.chars().all(|c| c.is_ascii_digit()) {
            "fleet.example.com".to_string()
        } else {
            format!("{slug}.onmicrosoft.com")
        };
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed ^ fnv1a(tenant)),
            domain,
            end,
            index: 0,
            scenario,
            retries: Vec::new(),
        }
    }

    fn guid(&mut self) -> String {
        let mut bytes: [u8; 16] = self.rng.random();
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        uuid::Uuid::from_bytes(bytes).to_string()
    }

    /// A duration of about `median` seconds, skewed towards long tails like real phases. Only
    /// IEEE-exact operations (no `ln`/`exp`, whose last bits vary between math libraries), so the
    /// ticks are the same on every machine.
    fn phase(&mut self, median_seconds: f64, spread: f64) -> i64 {
        let u1: f64 = self.rng.random();
        let u2: f64 = self.rng.random();
        // The product of two uniforms on [0.55, 1.45]: mean 1, a longer right tail.
        let factor = (0.55 + 0.9 * u1) * (0.55 + 0.9 * u2);
        let seconds = median_seconds * (1.0 + 2.0 * spread * (factor - 1.0)).max(0.05);
        // Whole 100 ns ticks, at least a second.
        ((seconds * TICKS_PER_SECOND as f64) as i64).max(TICKS_PER_SECOND)
    }

    fn serial(&mut self) -> String {
        const ALNUM: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ0123456789";
        let text = |rng: &mut ChaCha8Rng, length: usize| -> String {
            (0..length)
                .map(|_| ALNUM[rng.random_range(0..ALNUM.len())] as char)
                .collect()
        };
        match self.rng.random_range(0..4) {
            0 => format!("5CG{}", text(&mut self.rng, 7)),
            1 => format!("PF{}", text(&mut self.rng, 6)),
            2 => text(&mut self.rng, 7),
            _ => format!("{:012}", self.rng.random_range(0..1_000_000_000_000_u64)),
        }
    }

    /// What held up the Enrollment Status Page of a deployment, from its failure (the apps and
    /// policies the failure texts name) or outcome (a timeout waited on an app; a deployment in
    /// progress may be waiting on one).
    fn blocking(&mut self, failure: Option<&str>, outcome: &str) -> Option<Blocking> {
        let apps: Vec<(&'static str, &'static str)> = TRACKED
            .iter()
            .copied()
            .filter(|(_, policy_type)| *policy_type != "configurationPolicy")
            .collect();
        let app = |rng: &mut ChaCha8Rng, status, error_code| {
            let (name, policy_type) = *pick(rng, &apps);
            Some(Blocking {
                name,
                policy_type,
                status,
                error_code,
            })
        };
        match failure {
            Some(text) if text.starts_with("0x81036502") => Some(Blocking {
                name: "Microsoft 365 Apps for enterprise",
                policy_type: "application",
                status: "error",
                error_code: hresult(0x8103_6502),
            }),
            Some(text) if text.starts_with("0x800705b4") => {
                app(&mut self.rng, "notInstalled", hresult(0x8007_05B4))
            }
            Some(text) if text.starts_with("0x87d1041c") => {
                app(&mut self.rng, "error", hresult(0x87D1_041C))
            }
            Some(text) if text.contains("Wi-Fi Corp") => Some(Blocking {
                name: "Wi-Fi Corp (certificate)",
                policy_type: "configurationPolicy",
                status: "notCompliant",
                error_code: hresult(0x8000_4005),
            }),
            // Enrollment, join and attestation failures happen before the page tracks anything.
            Some(_) => None,
            None if outcome == "successWithTimeout" => {
                let code = if self.rng.random_bool(0.7) {
                    hresult(0x8007_05B4)
                } else {
                    hresult(0x8007_0643)
                };
                app(&mut self.rng, "notInstalled", code)
            }
            None if outcome == "inProgress" && self.rng.random_bool(0.5) => {
                app(&mut self.rng, "notInstalled", 0)
            }
            None => None,
        }
    }

    pub fn next_deployment(&mut self) -> Deployment {
        self.index += 1;
        let schema = &AUTOPILOT_EVENT;
        let mut event = Entity::with_id(schema, self.guid());
        let set = |event: &mut Entity, id: PropertyId, value: Value| event.set(schema, id, value);
        let enum_value = |id: PropertyId, member: &str| enum_member(schema, id, member);
        // About half the devices whose deployment failed are deployed again later.
        let retry = if !self.retries.is_empty() && self.rng.random_bool(0.5) {
            let at = self.rng.random_range(0..self.retries.len());
            Some(self.retries.swap_remove(at))
        } else {
            None
        };
        let drawn_type = *weighted(&mut self.rng, &ENROLLMENT_TYPES);
        let enrollment_type = retry.as_ref().map_or(drawn_type, |r| r.enrollment_type);
        let outcome = *weighted(&mut self.rng, &OUTCOMES);
        let (esp_name, esp_id) = *pick(&mut self.rng, &ESP_PROFILES);
        let profile = match enrollment_type {
            "azureADJoinedUsingDeviceAuthWithAutopilotProfile" => PROFILES[2],
            t if t.contains("WhiteGlove") => PROFILES[1],
            t if t.starts_with("offlineDomainJoined") => PROFILES[3],
            _ => PROFILES[0],
        };
        let self_deploying = enrollment_type == "azureADJoinedUsingDeviceAuthWithAutopilotProfile";

        // Times: start somewhere in the 90 days before `end`, phases after it.
        let window = 90 * 86_400 * TICKS_PER_SECOND;
        let drawn_start = self.end.ticks() - self.rng.random_range(0..window);
        // A repeat attempt starts between 20 minutes and 36 hours after the failure (if that is
        // before `end`; otherwise the device is not retried within the history).
        let gap = self.rng.random_range(1_200..129_600) * TICKS_PER_SECOND;
        let retry = retry.filter(|r| r.failed_at + gap <= self.end.ticks());
        let start = retry.as_ref().map_or(drawn_start, |r| r.failed_at + gap);
        let preparation = self.phase(100.0, 0.4);
        let mut device_setup = self.phase(14.0 * 60.0, 0.5);
        let mut account_setup = if self_deploying {
            0
        } else {
            self.phase(6.0 * 60.0, 0.6)
        };
        let oobe = self.phase(150.0, 0.3);
        // Scenarios change recent outcomes only (and draw from the generator only then, so the
        // healthy fleet of a seed stays the same).
        let end_ticks = self.end.ticks();
        let recent = |days: i64| start >= end_ticks - days * 86_400 * TICKS_PER_SECOND;
        let rollout_failure = self.scenario == Scenario::BadRollout
            && esp_name == BAD_ROLLOUT_ESP
            && recent(7)
            && self.rng.random_bool(0.7);
        let outcome = if rollout_failure {
            "failure"
        } else if self.scenario == Scenario::StuckInProgress
            && recent(2)
            && self.rng.random_bool(0.35)
        {
            "inProgress"
        } else {
            outcome
        };
        let (device_status, account_status, enrollment_state, failure) = match outcome {
            "failure" if rollout_failure => {
                account_setup = 0;
                (
                    "failure",
                    "notAttempted",
                    "enrolled",
                    Some(DEVICE_FAILURES[2]),
                )
            }
            "failure" => {
                if self.rng.random_bool(0.6) || self_deploying {
                    account_setup = 0;
                    let detail = *pick(&mut self.rng, &DEVICE_FAILURES);
                    let state = if detail.contains("0x80180014") {
                        "failed"
                    } else {
                        "enrolled"
                    };
                    ("failure", "notAttempted", state, Some(detail))
                } else {
                    (
                        "success",
                        "failure",
                        "enrolled",
                        Some(*pick(&mut self.rng, &ACCOUNT_FAILURES)),
                    )
                }
            }
            "inProgress" => {
                account_setup = 0;
                device_setup /= 2;
                ("inProgress", "notAttempted", "enrolled", None)
            }
            "successWithTimeout" => ("successWithTimeout", "success", "enrolled", None),
            "successOnRetry" => ("success", "successOnRetry", "enrolled", None),
            "notAttempted" => {
                device_setup = 0;
                account_setup = 0;
                ("notAttempted", "notAttempted", "notContacted", None)
            }
            _ => (
                "success",
                if self_deploying {
                    "notAttempted"
                } else {
                    "success"
                },
                "enrolled",
                None,
            ),
        };
        let deployment = device_setup + account_setup;
        let total = deployment + oobe + preparation;
        let enrollment_start = start + oobe;
        let registered = start
            - self.rng.random_range(1..120) * 86_400 * TICKS_PER_SECOND
            - self.rng.random_range(0..86_400 * TICKS_PER_SECOND);
        let finished = outcome != "inProgress";
        let end = if finished {
            start + total
        } else {
            DateTimeOffset::MIN.ticks()
        };
        let event_time = if finished { end } else { start + total / 2 };
        let instant = |ticks: i64| {
            Value::DateTimeOffset(DateTimeOffset::from_ticks(ticks).unwrap_or(DateTimeOffset::MIN))
        };
        let span = |ticks: i64| Value::Duration(Duration::from_ticks(ticks));

        let drawn_serial = self.serial();
        let serial = retry.as_ref().map_or(drawn_serial, |r| r.serial.clone());
        let first = *pick(&mut self.rng, &FIRST_NAMES);
        let last = *pick(&mut self.rng, &LAST_NAMES);
        let user_number = self.rng.random_range(1..400);
        let drawn_device = self.guid();
        let device_id = retry.as_ref().map_or(drawn_device, |r| r.device_id.clone());
        let user_id = self.guid();
        if outcome == "failure" && self.rng.random_bool(0.6) {
            self.retries.push(Retry {
                serial: serial.clone(),
                device_id: device_id.clone(),
                enrollment_type,
                failed_at: end,
            });
        }
        set(&mut event, event::DEVICE_ID, Value::String(device_id));
        if !self_deploying {
            set(&mut event, event::USER_ID, Value::String(user_id));
            set(
                &mut event,
                event::USER_PRINCIPAL_NAME,
                Value::String(format!("{first}.{last}{user_number}@{}", self.domain)),
            );
        }
        set(
            &mut event,
            event::DEVICE_SERIAL_NUMBER,
            Value::String(serial.clone()),
        );
        set(
            &mut event,
            event::MANAGED_DEVICE_NAME,
            Value::String(format!("AP-{}", &serial[serial.len().saturating_sub(7)..])),
        );
        set(&mut event, event::EVENT_DATE_TIME, instant(event_time));
        set(
            &mut event,
            event::DEVICE_REGISTERED_DATE_TIME,
            instant(registered),
        );
        set(
            &mut event,
            event::ENROLLMENT_START_DATE_TIME,
            instant(enrollment_start),
        );
        set(
            &mut event,
            event::DEPLOYMENT_START_DATE_TIME,
            instant(start),
        );
        set(&mut event, event::DEPLOYMENT_END_DATE_TIME, instant(end));
        set(
            &mut event,
            event::ENROLLMENT_TYPE,
            enum_value(event::ENROLLMENT_TYPE, enrollment_type),
        );
        set(
            &mut event,
            event::ENROLLMENT_STATE,
            enum_value(event::ENROLLMENT_STATE, enrollment_state),
        );
        set(
            &mut event,
            event::DEPLOYMENT_STATE,
            enum_value(event::DEPLOYMENT_STATE, outcome),
        );
        set(
            &mut event,
            event::DEVICE_SETUP_STATUS,
            enum_value(event::DEVICE_SETUP_STATUS, device_status),
        );
        set(
            &mut event,
            event::ACCOUNT_SETUP_STATUS,
            enum_value(event::ACCOUNT_SETUP_STATUS, account_status),
        );
        set(
            &mut event,
            event::WINDOWS_AUTOPILOT_DEPLOYMENT_PROFILE_DISPLAY_NAME,
            Value::String(profile.into()),
        );
        set(
            &mut event,
            event::WINDOWS10_ENROLLMENT_COMPLETION_PAGE_CONFIGURATION_DISPLAY_NAME,
            Value::String(esp_name.into()),
        );
        set(
            &mut event,
            event::WINDOWS10_ENROLLMENT_COMPLETION_PAGE_CONFIGURATION_ID,
            Value::String(esp_id.into()),
        );
        set(
            &mut event,
            event::OS_VERSION,
            Value::String(weighted(&mut self.rng, &OS_BUILDS).to_string()),
        );
        set(&mut event, event::DEPLOYMENT_DURATION, span(deployment));
        set(
            &mut event,
            event::DEPLOYMENT_TOTAL_DURATION,
            span(if finished { total } else { 0 }),
        );
        set(
            &mut event,
            event::DEVICE_PREPARATION_DURATION,
            span(preparation),
        );
        set(&mut event, event::DEVICE_SETUP_DURATION, span(device_setup));
        set(
            &mut event,
            event::ACCOUNT_SETUP_DURATION,
            span(account_setup),
        );
        let tracked_count = self.rng.random_range(0..=4_usize);
        set(
            &mut event,
            event::TARGETED_APP_COUNT,
            Value::Int32(self.rng.random_range(3..25)),
        );
        set(
            &mut event,
            event::TARGETED_POLICY_COUNT,
            Value::Int32(self.rng.random_range(5..40)),
        );
        if let Some(failure) = failure {
            set(
                &mut event,
                event::ENROLLMENT_FAILURE_DETAILS,
                Value::String(failure.into()),
            );
        }

        let blocking = self.blocking(failure, outcome);
        let mut details = Vec::with_capacity(tracked_count + 1);
        let first_tracked = self.rng.random_range(0..TRACKED.len());
        let mut tracked: Vec<(&'static str, &'static str, Option<&Blocking>)> = Vec::new();
        if let Some(blocking) = &blocking {
            tracked.push((blocking.name, blocking.policy_type, Some(blocking)));
        }
        for offset in 0..tracked_count {
            let (name, policy_type) = TRACKED[(first_tracked + offset) % TRACKED.len()];
            if blocking.as_ref().is_none_or(|b| b.name != name) {
                tracked.push((name, policy_type, None));
            }
        }
        for (name, policy_type, blocked) in tracked {
            let status = match (blocked, policy_type) {
                (Some(blocking), _) => blocking.status,
                (None, "configurationPolicy") => "compliant",
                _ => "installed",
            };
            let mut detail = Entity::with_id(&POLICY_STATUS_DETAIL, self.guid());
            let reported = if finished { end } else { event_time };
            let schema = &POLICY_STATUS_DETAIL;
            detail.set(schema, detail::DISPLAY_NAME, Value::String(name.into()));
            detail.set(
                schema,
                detail::POLICY_TYPE,
                enum_detail(detail::POLICY_TYPE, policy_type),
            );
            detail.set(
                schema,
                detail::COMPLIANCE_STATUS,
                enum_detail(detail::COMPLIANCE_STATUS, status),
            );
            // What blocked the page was tracked by it; the rest mostly are.
            let on_page = blocked.is_some() || self.rng.random_bool(0.8);
            detail.set(
                schema,
                detail::TRACKED_ON_ENROLLMENT_STATUS,
                Value::Boolean(on_page),
            );
            detail.set(
                schema,
                detail::LAST_REPORTED_DATE_TIME,
                instant(reported - self.rng.random_range(0..600) * TICKS_PER_SECOND),
            );
            detail.set(
                schema,
                detail::ERROR_CODE,
                Value::Int32(blocked.map_or(0, |blocking| blocking.error_code)),
            );
            details.push(detail);
        }
        Deployment { event, details }
    }
}

/// Events per transaction: large enough to amortise commits, small enough that a running server's
/// writes are not held up for long.
const CHUNK: u64 = 10_000;

/// What to seed.
pub struct SeedPlan {
    pub tenant: String,
    pub count: u64,
    pub seed: u64,
    pub scenario: Scenario,
    pub end: DateTimeOffset,
}

/// What a seed created.
pub struct SeedOutcome {
    pub events: u64,
    pub details: u64,
    /// Whether indexes were deferred (the tables were empty) and built again at the end.
    pub rebuilt_indexes: bool,
    pub rows_seconds: f64,
}

/// Generates and stores `plan`: generation runs while the previous chunk is written.
/// `progress` hears how many events are stored so far.
pub async fn seed_tenant(
    store: &Arc<Store>,
    plan: &SeedPlan,
    progress: impl Fn(u64),
) -> Result<SeedOutcome, StoreError> {
    let clock = Instant::now();
    let deferred = store.begin_bulk_load().await?;
    let loaded: Result<(u64, u64), StoreError> = async {
        let mut generator = FleetGenerator::new(&plan.tenant, plan.seed, plan.end, plan.scenario);
        let mut pending: Option<(u64, tokio::task::JoinHandle<Result<(), StoreError>>)> = None;
        let (mut generated, mut stored, mut details) = (0, 0, 0);
        while generated < plan.count {
            let size = CHUNK.min(plan.count - generated);
            let chunk: Vec<Deployment> = (0..size).map(|_| generator.next_deployment()).collect();
            details += chunk.iter().map(|d| d.details.len() as u64).sum::<u64>();
            generated += size;
            if let Some((written, task)) = pending.take() {
                task.await
                    .map_err(|error| anyhow::anyhow!("the seed writer stopped: {error}"))??;
                stored += written;
                progress(stored);
            }
            let store = store.clone();
            let tenant = plan.tenant.clone();
            pending = Some((
                size,
                tokio::spawn(
                    async move { store.bulk_load(&tenant, chunk, LoadKind::Insert).await },
                ),
            ));
        }
        if let Some((written, task)) = pending.take() {
            task.await
                .map_err(|error| anyhow::anyhow!("the seed writer stopped: {error}"))??;
            stored += written;
            progress(stored);
        }
        Ok((stored, details))
    }
    .await;
    let rows_seconds = clock.elapsed().as_secs_f64();
    if deferred {
        // Also after a failed load (a full disk): the server must not go on without indexes.
        let rebuilt = store.finish_bulk_load().await;
        if loaded.is_ok() {
            rebuilt?;
        }
    }
    let (stored, details) = loaded?;
    store.analyze().await?;
    store.checkpoint().await?;
    Ok(SeedOutcome {
        events: stored,
        details,
        rebuilt_indexes: deferred,
        rows_seconds,
    })
}

/// A member of the enum property `id` of `schema` as a value (the generator's tables name members
/// by their wire names; a wrong one fails the generator's tests).
fn enum_member(schema: &EntitySchema, id: PropertyId, member: &str) -> Value {
    let property = &schema.properties[id.0];
    let crate::model::EdmType::Enum(enum_type) = property.edm else {
        panic!("{} is not an enum", property.name)
    };
    let value = enum_type
        .value_of(member)
        .unwrap_or_else(|| panic!("{member} is not a member of {}", property.name));
    Value::Enum(value)
}

fn enum_detail(id: PropertyId, member: &str) -> Value {
    enum_member(&POLICY_STATUS_DETAIL, id, member)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edm::Seconds;
    use crate::model::decode_stored;

    fn end() -> DateTimeOffset {
        DateTimeOffset::parse("2026-11-01T00:00:00Z", Seconds::Required).unwrap()
    }

    #[test]
    fn the_same_seed_gives_the_same_fleet_and_another_seed_another() {
        let json = |seed| {
            let mut generator =
                FleetGenerator::new("contoso", seed, end(), Scenario::MostlyHealthy);
            (0..50)
                .map(|_| generator.next_deployment().event.to_json(&AUTOPILOT_EVENT))
                .collect::<Vec<_>>()
        };
        assert_eq!(json(7), json(7));
        assert_ne!(json(7), json(8));
    }

    #[test]
    fn generated_events_are_valid_and_their_phases_add_up() {
        let mut generator = FleetGenerator::new("contoso", 1, end(), Scenario::MostlyHealthy);
        let get = |entity: &Entity, name: &str| {
            entity.values[AUTOPILOT_EVENT.property(name).unwrap().0].clone()
        };
        let ticks = |value: Value| match value {
            Value::Duration(d) => d.ticks(),
            Value::DateTimeOffset(t) => t.ticks(),
            other => panic!("{other:?}"),
        };
        let mut failures = 0;
        let mut blocked = 0;
        let mut serials = std::collections::BTreeMap::new();
        for _ in 0..2000 {
            let deployment = generator.next_deployment();
            let event = &deployment.event;
            let json = event.to_json(&AUTOPILOT_EVENT);
            assert_eq!(&decode_stored(&AUTOPILOT_EVENT, &json).unwrap(), event);
            let device = ticks(get(event, "deviceSetupDuration"));
            let account = ticks(get(event, "accountSetupDuration"));
            let total = ticks(get(event, "deploymentTotalDuration"));
            assert_eq!(ticks(get(event, "deploymentDuration")), device + account);
            let start = ticks(get(event, "deploymentStartDateTime"));
            let finish = ticks(get(event, "deploymentEndDateTime"));
            if finish != 0 {
                assert!(device + account <= total);
                assert!(finish >= start);
            }
            if get(event, "deploymentState") == Value::Enum(3) {
                failures += 1;
                assert!(matches!(
                    get(event, "enrollmentFailureDetails"),
                    Value::String(_)
                ));
            }
            // Up to four tracked items, and what blocked the page.
            assert!(deployment.details.len() <= 5);
            for detail in &deployment.details {
                let code = detail.values[detail::ERROR_CODE.0].clone();
                if code != Value::Int32(0) {
                    blocked += 1;
                    assert_eq!(
                        detail.values[detail::TRACKED_ON_ENROLLMENT_STATUS.0],
                        Value::Boolean(true)
                    );
                }
            }
            if let Value::String(serial) = get(event, "deviceSerialNumber") {
                *serials.entry(serial).or_insert(0_u32) += 1;
            }
        }
        assert!(
            (100..300).contains(&failures),
            "about 9% failures, got {failures}"
        );
        assert!(
            blocked > 100,
            "apps block the page of failures and timeouts: {blocked}"
        );
        let repeated = serials.values().filter(|attempts| **attempts > 1).count();
        assert!(
            (20..200).contains(&repeated),
            "devices deployed again after a failure: {repeated}"
        );
    }

    #[tokio::test]
    async fn bulk_loaded_entities_read_back_exactly_as_generated() {
        use crate::model::{AUTOPILOT_EVENT, POLICY_STATUS_DETAIL};
        let directory = tempfile::tempdir().unwrap();
        let store = Store::open(
            &Store::sqlite_url(directory.path()),
            crate::store::Durability::Normal,
        )
        .await
        .unwrap();
        let end = crate::edm::DateTimeOffset::parse(
            "2026-11-01T00:00:00Z",
            crate::edm::Seconds::Required,
        )
        .unwrap();
        let mut generator = FleetGenerator::new("contoso", 3, end, Scenario::MostlyHealthy);
        let fleet: Vec<_> = (0..300).map(|_| generator.next_deployment()).collect();
        let expected: Vec<_> = fleet
            .iter()
            .map(|d| {
                let details: Vec<_> = d
                    .details
                    .iter()
                    .map(|detail| detail.to_json(&POLICY_STATUS_DETAIL))
                    .collect();
                (
                    d.event.id.clone(),
                    d.event.to_json(&AUTOPILOT_EVENT),
                    details,
                )
            })
            .collect();
        store
            .bulk_load("contoso", fleet, LoadKind::Insert)
            .await
            .unwrap();
        for (id, event, details) in expected {
            let target = crate::store::Target::Event { id: id.clone() };
            assert_eq!(
                store.get("contoso", &target).await.unwrap().body.as_ref(),
                event
            );
            let stored: Vec<_> = store
                .details_of("contoso", std::slice::from_ref(&id))
                .await
                .unwrap()
                .into_iter()
                .map(|(_, detail)| detail.body.to_string())
                .collect();
            assert_eq!(stored, details);
        }
        store.close().await;
    }
}
