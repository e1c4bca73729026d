//! The analytics API (analytics.md §1–5): every figure compared with an independent computation
//! from the events listed through the Graph API, plus the contract's checks and paging.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

const READ_ONLY: &str = "DeviceManagementManagedDevices.Read.All";

/// Nanoseconds since the Unix epoch of a DateTimeOffset as Graph writes it.
fn ns(text: &str) -> i128 {
    text.parse::<jiff::Timestamp>()
        .unwrap_or_else(|error| panic!("{text}: {error}"))
        .as_nanosecond()
}

/// Ticks of a Duration `[-]P[nD][T[nH][nM][n[.f]S]]`, parsed here without the server's code.
fn ticks(text: &str) -> i64 {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let rest = rest.strip_prefix('P').expect("P");
    let (days, time) = rest.split_once('T').unwrap_or((rest, ""));
    let mut total: i128 = 0;
    if let Some(days) = days.strip_suffix('D') {
        total += days.parse::<i128>().unwrap() * 86_400 * 10_000_000;
    }
    let mut number = String::new();
    for c in time.chars() {
        match c {
            'H' => total += number.parse::<i128>().unwrap() * 3_600 * 10_000_000,
            'M' => total += number.parse::<i128>().unwrap() * 60 * 10_000_000,
            'S' => {
                let (whole, fraction) = number.split_once('.').unwrap_or((&number, ""));
                total += whole.parse::<i128>().unwrap() * 10_000_000;
                if !fraction.is_empty() {
                    total += format!("{fraction:0<7}").parse::<i128>().unwrap();
                }
            }
            _ => {
                number.push(c);
                continue;
            }
        }
        number.clear();
    }
    let total = i64::try_from(total).unwrap();
    if negative { -total } else { total }
}

/// An event as the oracle sees it, read from a Graph listing.
struct Event {
    json: Value,
    id: String,
    at: i128,
    state: String,
    details: Vec<Value>,
}

impl Event {
    fn of(json: &Value) -> Self {
        Event {
            id: json["id"].as_str().unwrap().to_string(),
            at: ns(json["eventDateTime"].as_str().unwrap()),
            state: json["deploymentState"].as_str().unwrap().to_string(),
            details: json["policyStatusDetails"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
            json: json.clone(),
        }
    }

    fn text(&self, name: &str) -> Option<&str> {
        self.json[name].as_str()
    }

    fn finished(&self) -> bool {
        matches!(
            self.state.as_str(),
            "success" | "successWithTimeout" | "successOnRetry" | "failure"
        )
    }

    fn duration(&self, name: &str) -> i64 {
        ticks(self.json[name].as_str().unwrap())
    }
}

/// Every event of the token's tenant, with details.
async fn listed(app: &TestApp) -> Vec<Event> {
    app.pages(&format!("{}?$expand=policyStatusDetails", app.events_url()))
        .values()
        .await
        .iter()
        .map(Event::of)
        .collect()
}

/// The oracle's idea of the filters: name → exact value.
type Filters<'a> = &'a [(&'a str, &'a str)];

fn passes(event: &Event, filters: Filters<'_>) -> bool {
    filters.iter().all(|(name, value)| {
        let property = match *name {
            "profile" => "windowsAutopilotDeploymentProfileDisplayName",
            "esp" => "windows10EnrollmentCompletionPageConfigurationDisplayName",
            other => other,
        };
        event.text(property) == Some(value)
    })
}

fn in_scope<'a>(events: &'a [Event], from: &str, to: &str, filters: Filters<'_>) -> Vec<&'a Event> {
    let (from, to) = (ns(from), ns(to));
    events
        .iter()
        .filter(|event| from <= event.at && event.at < to && passes(event, filters))
        .collect()
}

/// The counts every row has, computed from states.
fn counts(events: &[&Event]) -> Value {
    let of = |states: &[&str]| {
        events
            .iter()
            .filter(|event| states.contains(&event.state.as_str()))
            .count() as u64
    };
    let succeeded = of(&["success", "successWithTimeout", "successOnRetry"]);
    let failed = of(&["failure"]);
    let finished = succeeded + failed;
    json!({
        "deployments": events.len(),
        "succeeded": succeeded,
        "failed": failed,
        "inProgress": of(&["inProgress"]),
        "other": of(&["unknown", "notAttempted", "disabled"]),
        "timedOut": of(&["successWithTimeout", "successOnRetry"]),
        "finished": finished,
        "successRate": if finished == 0 { Value::Null } else { json!(succeeded as f64 / finished as f64) },
        "firstTimeRight": if finished == 0 { Value::Null } else { json!(of(&["success"]) as f64 / finished as f64) },
    })
}

/// Nearest-rank percentile straight from its definition: the smallest value with at least p %
/// of the values at or below it.
fn percentile(values: &[i64], p: u64) -> Option<i64> {
    let n = values.len() as u64;
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted
        .iter()
        .copied()
        .find(|v| 100 * sorted.iter().filter(|w| *w <= v).count() as u64 >= p * n)
}

fn as_ticks(value: &Value) -> Option<i64> {
    value.as_str().map(ticks)
}

async fn analytics(app: &TestApp, token: &str, path_and_query: &str) -> Value {
    let url = format!("{}/graphpilot/analytics/{path_and_query}", app.base());
    let response = app
        .client
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        200,
        "{url}: {}",
        response.text().await.unwrap()
    );
    response.json().await.unwrap()
}

fn query(from: &str, to: &str, filters: Filters<'_>) -> String {
    let mut parts = vec![format!("from={from}"), format!("to={to}")];
    for (name, value) in filters {
        let encoded: String = value
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        parts.push(format!("{name}={encoded}"));
    }
    parts.join("&")
}

/// Compares every endpoint's figures over one window and filter set with the oracle's.
async fn check_window(app: &TestApp, events: &[Event], from: &str, to: &str, filters: Filters<'_>) {
    let token = &app.token;
    let scope = in_scope(events, from, to, filters);
    let q = query(from, to, filters);
    let finished: Vec<&Event> = scope.iter().copied().filter(|e| e.finished()).collect();

    // summary
    let summary = analytics(app, token, &format!("summary?{q}")).await;
    let expected = counts(&scope);
    for name in [
        "deployments",
        "succeeded",
        "failed",
        "inProgress",
        "other",
        "finished",
        "timedOut",
        "successRate",
        "firstTimeRight",
    ] {
        assert_eq!(summary[name], expected[name], "summary {name} over {q}");
    }
    assert_eq!(ns(summary["from"].as_str().unwrap()), ns(from));
    assert_eq!(ns(summary["to"].as_str().unwrap()), ns(to));
    for (state, count) in summary["states"].as_object().unwrap() {
        let expected = scope.iter().filter(|e| e.state == *state).count() as u64;
        assert_eq!(count.as_u64(), Some(expected), "states.{state} over {q}");
    }
    assert_eq!(summary["states"].as_object().unwrap().len(), 8);
    for property in [
        "deploymentTotalDuration",
        "deviceSetupDuration",
        "accountSetupDuration",
        "deploymentDuration",
    ] {
        let values: Vec<i64> = finished.iter().map(|e| e.duration(property)).collect();
        for p in [50, 90, 95] {
            assert_eq!(
                as_ticks(&summary["durations"][property][format!("p{p}")]),
                percentile(&values, p),
                "{property} p{p} over {q}"
            );
        }
    }

    // timeline (days)
    let timeline = analytics(app, token, &format!("timeline?{q}")).await;
    let rows = timeline["rows"].as_array().unwrap();
    let day = 86_400 * 1_000_000_000_i128;
    let first = ns(from).div_euclid(day);
    let last = (ns(to) - 1).div_euclid(day);
    assert_eq!(
        rows.len() as i128,
        last - first + 1,
        "one row per day met: {q}"
    );
    for (offset, row) in rows.iter().enumerate() {
        let start = (first + offset as i128) * day;
        assert_eq!(ns(row["start"].as_str().unwrap()), start);
        assert_eq!(ns(row["end"].as_str().unwrap()), start + day);
        let inside: Vec<&Event> = scope
            .iter()
            .copied()
            .filter(|e| start <= e.at && e.at < start + day)
            .collect();
        let expected = counts(&inside);
        for name in [
            "deployments",
            "succeeded",
            "failed",
            "inProgress",
            "other",
            "timedOut",
            "successRate",
        ] {
            assert_eq!(
                row[name], expected[name],
                "timeline {name} of {} over {q}",
                row["start"]
            );
        }
    }

    // breakdown by every dimension
    for (by, property) in [
        ("profile", "windowsAutopilotDeploymentProfileDisplayName"),
        (
            "esp",
            "windows10EnrollmentCompletionPageConfigurationDisplayName",
        ),
        ("enrollmentType", "enrollmentType"),
        ("osVersion", "osVersion"),
    ] {
        let breakdown = analytics(app, token, &format!("breakdown?by={by}&top=100&{q}")).await;
        let mut groups: BTreeMap<Option<String>, Vec<&Event>> = BTreeMap::new();
        for event in &scope {
            groups
                .entry(event.text(property).map(str::to_string))
                .or_default()
                .push(event);
        }
        let mut expected: Vec<(Option<String>, Vec<&Event>)> = groups.into_iter().collect();
        expected.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(&b.0)));
        assert_eq!(
            breakdown["groups"],
            expected.len(),
            "breakdown by {by} over {q}"
        );
        let rows = breakdown["rows"].as_array().unwrap();
        assert_eq!(rows.len(), expected.len().min(100));
        for (row, (key, members)) in rows.iter().zip(&expected) {
            assert_eq!(
                row["key"].as_str(),
                key.as_deref(),
                "breakdown by {by}: {row}"
            );
            let expected_counts = counts(members);
            for name in [
                "deployments",
                "succeeded",
                "failed",
                "inProgress",
                "other",
                "successRate",
            ] {
                assert_eq!(
                    row[name], expected_counts[name],
                    "breakdown {by} {key:?} {name}"
                );
            }
            let totals: Vec<i64> = members
                .iter()
                .filter(|e| e.finished())
                .map(|e| e.duration("deploymentTotalDuration"))
                .collect();
            assert_eq!(
                as_ticks(&row["p50"]),
                percentile(&totals, 50),
                "{by} {key:?} p50"
            );
            assert_eq!(
                as_ticks(&row["p90"]),
                percentile(&totals, 90),
                "{by} {key:?} p90"
            );
        }
    }

    // failures
    let failures = analytics(app, token, &format!("failures?top=100&{q}")).await;
    let failed: Vec<&Event> = scope
        .iter()
        .copied()
        .filter(|e| e.state == "failure")
        .collect();
    assert_eq!(failures["failed"], failed.len());
    let mut reasons: BTreeMap<Option<String>, Vec<&Event>> = BTreeMap::new();
    for event in &failed {
        let reason = event
            .text("enrollmentFailureDetails")
            .filter(|text| !text.is_empty())
            .map(str::to_string);
        reasons.entry(reason).or_default().push(event);
    }
    let mut expected: Vec<(Option<String>, Vec<&Event>)> = reasons.into_iter().collect();
    expected.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(&b.0)));
    assert_eq!(failures["groups"], expected.len());
    for (row, (reason, members)) in failures["rows"].as_array().unwrap().iter().zip(&expected) {
        assert_eq!(row["reason"].as_str(), reason.as_deref());
        assert_eq!(row["count"], members.len());
        assert_eq!(
            row["share"],
            json!(members.len() as f64 / failed.len() as f64)
        );
        let phase = |e: &&Event| {
            if e.text("deviceSetupStatus") == Some("failure") {
                "deviceSetup"
            } else if e.text("accountSetupStatus") == Some("failure") {
                "accountSetup"
            } else {
                "unknown"
            }
        };
        for name in ["deviceSetup", "accountSetup", "unknown"] {
            let expected = members.iter().filter(|e| phase(e) == name).count();
            assert_eq!(row["phases"][name], expected, "phase {name} of {reason:?}");
        }
        let latest = members
            .iter()
            .max_by(|a, b| {
                a.at.cmp(&b.at)
                    .then_with(|| b.id.to_lowercase().cmp(&a.id.to_lowercase()))
            })
            .unwrap();
        assert_eq!(ns(row["lastEventDateTime"].as_str().unwrap()), latest.at);
        assert_eq!(row["lastEventId"], latest.id.as_str(), "{reason:?}");
    }

    // blockers
    let blockers = analytics(app, token, &format!("blockers?top=100&{q}")).await;
    type Key = (Option<String>, String);
    let mut groups: BTreeMap<Key, Vec<(&Event, &Value)>> = BTreeMap::new();
    for event in &scope {
        for detail in &event.details {
            let status = detail["complianceStatus"].as_str().unwrap();
            if detail["trackedOnEnrollmentStatus"] == true
                && ["error", "notInstalled", "notCompliant"].contains(&status)
            {
                let key = (
                    detail["displayName"].as_str().map(str::to_string),
                    detail["policyType"].as_str().unwrap().to_string(),
                );
                groups.entry(key).or_default().push((event, detail));
            }
        }
    }
    let mut expected: Vec<(Key, Vec<(&Event, &Value)>)> = groups.into_iter().collect();
    let affected = |rows: &[(&Event, &Value)]| {
        rows.iter()
            .map(|(e, _)| e.id.clone())
            .collect::<BTreeSet<_>>()
            .len()
    };
    expected.sort_by(|a, b| {
        affected(&b.1)
            .cmp(&affected(&a.1))
            .then_with(|| a.0.cmp(&b.0))
    });
    assert_eq!(blockers["groups"], expected.len(), "blockers over {q}");
    for (row, ((name, policy_type), members)) in
        blockers["rows"].as_array().unwrap().iter().zip(&expected)
    {
        assert_eq!(row["displayName"].as_str(), name.as_deref());
        assert_eq!(row["policyType"], policy_type.as_str());
        assert_eq!(row["details"], members.len());
        assert_eq!(row["affectedDeployments"], affected(members));
        let failed: BTreeSet<&str> = members
            .iter()
            .filter(|(e, _)| e.state == "failure")
            .map(|(e, _)| e.id.as_str())
            .collect();
        assert_eq!(row["failedDeployments"], failed.len());
        let mut codes: BTreeMap<i64, usize> = BTreeMap::new();
        for (_, detail) in members {
            let code = detail["errorCode"].as_i64().unwrap();
            if code != 0 {
                *codes.entry(code).or_default() += 1;
            }
        }
        // Most rows, ties to the smallest code (BTreeMap iterates codes ascending).
        let top = codes.iter().fold(
            None,
            |best: Option<(i64, usize)>, (code, rows)| match best {
                Some((_, most)) if most >= *rows => best,
                _ => Some((*code, *rows)),
            },
        );
        assert_eq!(
            row["topErrorCode"].as_i64(),
            top.map(|(code, _)| code),
            "{name:?}"
        );
        assert_eq!(row["topErrorCodeCount"], top.map_or(0, |(_, rows)| rows));
    }

    // stuck (every page), against asOf as the server reports it
    let mut url = format!(
        "{}/graphpilot/analytics/stuck?top=7&olderThan=PT3H&{q}",
        app.base()
    );
    let mut seen: Vec<Value> = Vec::new();
    let mut as_of = None;
    loop {
        let response = app
            .client
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let page: Value = response.json().await.unwrap();
        let page_as_of = page["asOf"].as_str().unwrap().to_string();
        assert_eq!(
            *as_of.get_or_insert(page_as_of.clone()),
            page_as_of,
            "asOf is kept"
        );
        let value = page["value"].as_array().unwrap();
        assert!(value.len() <= 7);
        seen.extend(value.iter().cloned());
        match page["nextLink"].as_str() {
            Some(next) => {
                assert!(!value.is_empty(), "no next link with an empty page");
                assert_eq!(page["count"], seen.len() + count_rest(app, next).await);
                url = next.to_string();
            }
            None => {
                assert_eq!(page["count"], seen.len(), "count = all matching rows");
                break;
            }
        }
    }
    let as_of = ns(&as_of.unwrap());
    let mut stuck: Vec<&Event> = scope
        .iter()
        .copied()
        .filter(|e| {
            e.state == "inProgress"
                && ns(e.text("deploymentStartDateTime").unwrap())
                    < as_of - 3 * 3_600 * 1_000_000_000
        })
        .collect();
    stuck.sort_by(|a, b| {
        ns(a.text("deploymentStartDateTime").unwrap())
            .cmp(&ns(b.text("deploymentStartDateTime").unwrap()))
            .then_with(|| a.id.to_lowercase().cmp(&b.id.to_lowercase()))
    });
    assert_eq!(seen.len(), stuck.len(), "stuck over {q}");
    for (row, event) in seen.iter().zip(&stuck) {
        assert_eq!(row["id"], event.id.as_str());
        for name in [
            "deviceSerialNumber",
            "managedDeviceName",
            "windowsAutopilotDeploymentProfileDisplayName",
            "deviceSetupStatus",
            "accountSetupStatus",
            "eventDateTime",
            "deploymentStartDateTime",
        ] {
            assert_eq!(row[name], event.json[name], "stuck {name}");
        }
        let age = i128::from(ticks(row["age"].as_str().unwrap())) * 100;
        assert_eq!(
            age,
            as_of - ns(event.text("deploymentStartDateTime").unwrap())
        );
    }
}

/// How many rows the pages from `url` on hold.
async fn count_rest(app: &TestApp, url: &str) -> usize {
    let mut total = 0;
    let mut next = Some(url.to_string());
    while let Some(url) = next {
        let page: Value = app.get(&url).await.json().await.unwrap();
        total += page["value"].as_array().unwrap().len();
        next = page["nextLink"].as_str().map(str::to_string);
    }
    total
}

fn event_body(at: &str, state: &str) -> Value {
    json!({
        "eventDateTime": at,
        "deploymentStartDateTime": at,
        "deploymentState": state,
        "deploymentTotalDuration": "PT20M",
        "deviceSetupDuration": "PT10M",
        "accountSetupDuration": "PT5M",
        "deploymentDuration": "PT15M",
        "windowsAutopilotDeploymentProfileDisplayName": "Edge profile",
        "enrollmentType": "azureADJoinedWithAutopilotProfile",
        "osVersion": "10.0.22631.4460",
    })
}

fn merged(mut base: Value, extra: Value) -> Value {
    for (name, value) in extra.as_object().unwrap() {
        base[name] = value.clone();
    }
    base
}

/// Events that exercise the edges: ties, nulls, `""`, zero and negative durations, window bounds,
/// the default start, blocking details with ties in error codes.
async fn create_edge_cases(app: &TestApp) {
    let cases = [
        // Exactly at `from` (in) and exactly at `to` (out).
        event_body("2026-06-01T00:00:00Z", "success"),
        event_body("2026-06-08T00:00:00Z", "success"),
        merged(
            event_body("2026-06-02T10:00:00Z", "success"),
            json!({"deploymentTotalDuration": "PT0S"}),
        ),
        merged(
            event_body("2026-06-02T10:00:00Z", "successOnRetry"),
            json!({"deploymentTotalDuration": "-PT1M"}),
        ),
        merged(
            event_body("2026-06-02T11:00:00Z", "successWithTimeout"),
            json!({"windowsAutopilotDeploymentProfileDisplayName": null}),
        ),
        merged(
            event_body("2026-06-02T11:00:00Z", "disabled"),
            json!({"windowsAutopilotDeploymentProfileDisplayName": ""}),
        ),
        merged(
            event_body("2026-06-03T00:00:00Z", "unknown"),
            json!({"osVersion": null}),
        ),
        merged(
            event_body("2026-06-03T00:00:00Z", "notAttempted"),
            json!({"enrollmentType": "offlineDomainJoined"}),
        ),
        // Failures: null and "" share a group; two at the same instant tie on id.
        merged(
            event_body("2026-06-04T08:00:00Z", "failure"),
            json!({"deviceSetupStatus": "failure", "enrollmentFailureDetails": "0x80180014"}),
        ),
        merged(
            event_body("2026-06-04T09:00:00Z", "failure"),
            json!({"deviceSetupStatus": "failure", "enrollmentFailureDetails": "0x80180014"}),
        ),
        merged(
            event_body("2026-06-04T09:00:00Z", "failure"),
            json!({"accountSetupStatus": "failure", "enrollmentFailureDetails": "0x80180014"}),
        ),
        merged(
            event_body("2026-06-04T10:00:00Z", "failure"),
            json!({"enrollmentFailureDetails": ""}),
        ),
        merged(
            event_body("2026-06-04T11:00:00Z", "failure"),
            json!({"enrollmentFailureDetails": null, "accountSetupStatus": "failure"}),
        ),
        merged(
            event_body("2026-06-04T12:00:00Z", "failure"),
            json!({"enrollmentFailureDetails": "Ärger"}),
        ),
        // Stuck: in progress with an old start, and with the default start.
        merged(
            event_body("2026-06-05T00:00:00Z", "inProgress"),
            json!({"deploymentStartDateTime": "2026-06-04T20:00:00Z"}),
        ),
        merged(
            event_body("2026-06-05T00:00:00Z", "inProgress"),
            json!({"deploymentStartDateTime": "0001-01-01T00:00:00Z"}),
        ),
        merged(
            event_body("2026-06-05T00:00:00Z", "inProgress"),
            json!({"deploymentStartDateTime": "2026-06-04T20:00:00Z"}),
        ),
        // Blocking details: equal error-code counts tie to the smallest; a null name; untracked.
        merged(
            event_body("2026-06-06T00:00:00Z", "failure"),
            json!({"policyStatusDetails": [
                {"displayName": "Company Portal", "policyType": "application", "complianceStatus": "error", "trackedOnEnrollmentStatus": true, "errorCode": -5},
                {"displayName": "Company Portal", "policyType": "application", "complianceStatus": "notInstalled", "trackedOnEnrollmentStatus": true, "errorCode": 7},
                {"displayName": "Company Portal", "policyType": "appModel", "complianceStatus": "notCompliant", "trackedOnEnrollmentStatus": true, "errorCode": 0},
                {"displayName": null, "policyType": "configurationPolicy", "complianceStatus": "error", "trackedOnEnrollmentStatus": true, "errorCode": 3},
                {"displayName": "Untracked", "policyType": "application", "complianceStatus": "error", "trackedOnEnrollmentStatus": false, "errorCode": 9},
                {"displayName": "Installed", "policyType": "application", "complianceStatus": "installed", "trackedOnEnrollmentStatus": true, "errorCode": 0},
            ]}),
        ),
        merged(
            event_body("2026-06-06T01:00:00Z", "success"),
            json!({"policyStatusDetails": [
                {"displayName": "Company Portal", "policyType": "application", "complianceStatus": "error", "trackedOnEnrollmentStatus": true, "errorCode": 7},
                {"displayName": "Company Portal", "policyType": "application", "complianceStatus": "error", "trackedOnEnrollmentStatus": true, "errorCode": -5},
            ]}),
        ),
    ];
    for body in cases {
        app.create_event(body).await;
    }
}

#[tokio::test]
async fn every_figure_equals_an_independent_computation_from_the_listed_events() {
    let app = spawn_app().await;
    create_edge_cases(&app).await;
    // A realistic fleet beside them, and another tenant's that must never count.
    for (tenant, count) in [("contoso", "1200"), ("fabrikam", "300")] {
        stdout_of(graphpilot_on(
            &app.storage,
            &["seed"],
            &[
                "--tenant",
                tenant,
                "--count",
                count,
                "--end",
                "2026-06-09T00:00:00Z",
                "--scenario",
                "bad-rollout",
            ],
        ));
    }
    let events = listed(&app).await;
    assert!(events.len() > 1200);
    let windows: [(&str, &str, Filters<'_>); 6] = [
        ("2026-06-01T00:00:00Z", "2026-06-08T00:00:00Z", &[]),
        ("2026-03-01T00:00:00+02:00", "2026-06-09T00:00:00Z", &[]),
        (
            "2026-05-10T06:30:00Z",
            "2026-06-09T00:00:00Z",
            &[
                ("profile", "Autopilot - Standard User"),
                ("enrollmentType", "azureADJoinedWithAutopilotProfile"),
            ],
        ),
        (
            "2026-01-01T00:00:00Z",
            "2026-06-09T00:00:00Z",
            &[("esp", "ESP - Engineering")],
        ),
        (
            "2026-06-01T00:00:00Z",
            "2026-06-08T00:00:00Z",
            &[("profile", "")],
        ),
        // Empty: a window with nothing in it.
        ("2030-01-01T00:00:00Z", "2030-01-03T00:00:00Z", &[]),
    ];
    for (from, to, filters) in windows {
        check_window(&app, &events, from, to, filters).await;
    }
}

#[tokio::test]
async fn the_default_window_is_the_30_days_before_the_request() {
    let app = spawn_app().await;
    let now = jiff::Timestamp::now();
    let at = |hours: i64| {
        (now - jiff::SignedDuration::from_hours(hours))
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    for hours in [1, 24 * 29, 24 * 31] {
        app.create_event(event_body(&at(hours), "success")).await;
    }
    let summary = analytics(&app, &app.token, "summary").await;
    assert_eq!(summary["deployments"], 2, "{summary}");
    let to = ns(summary["to"].as_str().unwrap());
    assert_eq!(
        to - ns(summary["from"].as_str().unwrap()),
        30 * 86_400 * 1_000_000_000
    );
    assert!((to - now.as_nanosecond()).abs() < 60 * 1_000_000_000);
    // `to` alone moves the window with it.
    let summary = analytics(&app, &app.token, &format!("summary?to={}", at(24 * 30))).await;
    assert_eq!(summary["deployments"], 1);
}

#[tokio::test]
async fn an_acknowledged_write_is_in_the_next_answer() {
    let app = spawn_app().await;
    let q = "from=2026-06-01T00:00:00Z&to=2026-06-02T00:00:00Z";
    for expected in 1..=3 {
        app.create_event(event_body("2026-06-01T12:00:00Z", "failure"))
            .await;
        let summary = analytics(&app, &app.token, &format!("summary?{q}")).await;
        assert_eq!(summary["failed"], expected);
    }
    let created = app
        .create_event(event_body("2026-06-01T13:00:00Z", "inProgress"))
        .await;
    let id = created["id"].as_str().unwrap();
    let response = app
        .patch_json(&app.event_url(id), &json!({"deploymentState": "success"}))
        .await;
    assert_eq!(response.status(), 200);
    let summary = analytics(&app, &app.token, &format!("summary?{q}")).await;
    assert_eq!(summary["succeeded"], 1);
    assert_eq!(summary["inProgress"], 0);
}

#[tokio::test]
async fn a_device_history_lists_its_attempts_newest_first_with_first_time_right() {
    let app = spawn_app().await;
    let serial = "5CG 1/2+3%";
    let mut ids = Vec::new();
    for (at, state) in [
        ("2026-06-01T00:00:00Z", "failure"),
        ("2026-06-02T00:00:00Z", "success"),
        ("2026-06-02T00:00:00Z", "successOnRetry"),
    ] {
        let event = app
            .create_event(merged(
                event_body(at, state),
                json!({"deviceSerialNumber": serial}),
            ))
            .await;
        ids.push(event["id"].as_str().unwrap().to_string());
    }
    app.create_event(merged(
        event_body("2026-06-03T00:00:00Z", "success"),
        json!({"deviceSerialNumber": "5cg 1/2+3%"}),
    ))
    .await;
    let path = "devices/5CG%201%2F2+3%25";
    let device = analytics(&app, &app.token, path).await;
    assert_eq!(device["deviceSerialNumber"], serial);
    assert_eq!(device["from"], Value::Null);
    assert_eq!(device["to"], Value::Null);
    assert_eq!(device["attempts"], 3);
    assert_eq!(device["succeeded"], 2);
    assert_eq!(device["failed"], 1);
    assert_eq!(device["firstTimeRight"], false);
    let value = device["value"].as_array().unwrap();
    // Newest first; the two at the same instant by id, descending.
    let mut tied = [ids[1].clone(), ids[2].clone()];
    tied.sort_by_key(|id| std::cmp::Reverse(id.to_lowercase()));
    assert_eq!(
        ids_of(value),
        [tied[0].clone(), tied[1].clone(), ids[0].clone()]
    );
    // Each as a GET shows it, without @odata.context.
    for event in value {
        let mut got = app
            .get_json(&app.event_url(event["id"].as_str().unwrap()))
            .await;
        got.as_object_mut().unwrap().remove("@odata.context");
        assert_eq!(*event, got);
    }
    // A window narrows it; an unknown serial is an empty history.
    let narrowed = analytics(
        &app,
        &app.token,
        &format!("{path}?from=2026-06-01T12:00:00Z"),
    )
    .await;
    assert_eq!(narrowed["attempts"], 2);
    // The oldest of the two at the same instant is the one with the smaller id.
    let oldest_is_success = ids[1].to_lowercase() < ids[2].to_lowercase();
    assert_eq!(narrowed["firstTimeRight"], oldest_is_success);
    assert!(
        narrowed["to"].is_string(),
        "the other bound takes its default"
    );
    let unknown = analytics(&app, &app.token, "devices/NOPE").await;
    assert_eq!(unknown["attempts"], 0);
    assert_eq!(unknown["firstTimeRight"], Value::Null);
    assert_eq!(unknown["value"], json!([]));
    // The only attempt, unfinished: null; a first success: true.
    app.create_event(merged(
        event_body("2026-06-01T00:00:00Z", "inProgress"),
        json!({"deviceSerialNumber": "ONE"}),
    ))
    .await;
    assert_eq!(
        analytics(&app, &app.token, "devices/ONE").await["firstTimeRight"],
        Value::Null
    );
    assert_eq!(
        analytics(&app, &app.token, "devices/5cg%201%2F2+3%25").await["firstTimeRight"],
        true
    );
}

#[tokio::test]
async fn stuck_pages_keep_their_as_of_and_refuse_tampered_or_foreign_tokens() {
    let app = spawn_app().await;
    for hour in 0..5 {
        app.create_event(merged(
            event_body(&format!("2026-06-01T0{hour}:00:00Z"), "inProgress"),
            json!({"deploymentStartDateTime": "2026-06-01T00:00:00Z"}),
        ))
        .await;
    }
    let q = "from=2026-05-01T00:00:00Z&to=2026-07-01T00:00:00Z";
    let first = analytics(&app, &app.token, &format!("stuck?top=2&{q}")).await;
    assert_eq!(first["count"], 5);
    assert_eq!(first["olderThan"], "PT2H");
    let next = first["nextLink"].as_str().unwrap().to_string();
    assert!(next.starts_with(&app.base()), "absolute: {next}");
    assert!(
        next.contains("top=2") && next.contains("skiptoken="),
        "{next}"
    );
    // An event created since still counts (it matches), but asOf stays the first page's.
    app.create_event(merged(
        event_body("2026-06-02T00:00:00Z", "inProgress"),
        json!({"deploymentStartDateTime": "2026-06-01T00:00:00Z"}),
    ))
    .await;
    let second: Value = app.get(&next).await.json().await.unwrap();
    assert_eq!(second["asOf"], first["asOf"]);
    assert_eq!(second["count"], 6);
    // Tampered, another tenant's, or with other parameters: 400 naming skiptoken.
    let tampered = next.replace("skiptoken=", "skiptoken=x");
    let message = assert_graph_error(app.get(&tampered).await, 400, "BadRequest").await;
    assert!(message.contains("skiptoken"), "{message}");
    let other = mint(&app.data_dir, "fabrikam", "app-one", &["--role", READ_ONLY]);
    let response = app
        .client
        .get(&next)
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_graph_error(response, 400, "BadRequest").await;
    let changed = next.replace("top=2", "top=3");
    assert_graph_error(app.get(&changed).await, 400, "BadRequest").await;
    // Walking every page gives each row once.
    let mut ids = Vec::new();
    let mut url = Some(format!(
        "{}/graphpilot/analytics/stuck?top=1&{q}",
        app.base()
    ));
    while let Some(current) = url {
        let page: Value = app.get(&current).await.json().await.unwrap();
        ids.extend(ids_of(page["value"].as_array().unwrap()));
        url = page["nextLink"].as_str().map(str::to_string);
    }
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!((ids.len(), unique.len()), (6, 6));
}

#[tokio::test]
async fn requests_are_checked_in_the_contracts_order_and_bad_parameters_named() {
    let app = spawn_app().await;
    let url = |path: &str| format!("{}/graphpilot/analytics/{path}", app.base());
    // 401 without or with a bad token, with the challenge.
    let response = app
        .client
        .get(url("summary?bucket=x"))
        .send()
        .await
        .unwrap();
    assert!(response.headers().contains_key("www-authenticate"));
    assert_graph_error(response, 401, "InvalidAuthenticationToken").await;
    let response = app
        .client
        .get(url("summary"))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_graph_error(response, 401, "InvalidAuthenticationToken").await;
    // 403 without a read permission, before any parameter is looked at.
    let no_permission = mint(&app.data_dir, "contoso", "app-two", &[]);
    let response = app
        .client
        .get(url("summary?from=bad"))
        .bearer_auth(&no_permission)
        .send()
        .await
        .unwrap();
    assert_graph_error(response, 403, "Forbidden").await;
    // Unknown endpoint, other methods.
    assert_graph_error(app.get(&url("nope")).await, 404, "NotFound").await;
    let response = app
        .request(Method::POST, &url("summary"))
        .send()
        .await
        .unwrap();
    assert_graph_error(response, 405, "MethodNotAllowed").await;
    // Read-only tokens read; the answer is JSON with the request ids.
    let reader = mint(
        &app.data_dir,
        "contoso",
        "app-three",
        &["--role", READ_ONLY],
    );
    let response = app
        .client
        .get(url("summary"))
        .bearer_auth(&reader)
        .header("client-request-id", "mine-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(response.headers()["client-request-id"], "mine-1");
    assert!(response.headers().contains_key("request-id"));
    // Each bad parameter is a 400 naming it.
    for (path, named) in [
        ("summary?From=2026-06-01T00:00:00Z", "From"),
        ("summary?bucket=day", "bucket"),
        (
            "summary?from=2026-06-01T00:00:00Z&from=2026-06-01T00:00:00Z",
            "from",
        ),
        ("summary?from=2026-06-01", "from"),
        ("summary?from=2026-06-01T00:00Z", "from"),
        ("summary?to=2026-06-01T00:00:00.12345678Z", "to"),
        (
            "summary?from=2026-06-02T00:00:00Z&to=2026-06-01T00:00:00Z",
            "from",
        ),
        (
            "summary?from=2026-06-01T00:00:00Z&to=2026-06-01T00:00:00Z",
            "from",
        ),
        (
            "summary?enrollmentType=AzureADJoinedWithAutopilotProfile",
            "enrollmentType",
        ),
        ("timeline?bucket=month", "bucket"),
        (
            "timeline?bucket=day&from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
            "bucket",
        ),
        ("breakdown", "by"),
        ("breakdown?by=state", "by"),
        ("breakdown?by=profile&top=0", "top"),
        ("breakdown?by=profile&top=101", "top"),
        ("failures?top=abc", "top"),
        ("blockers?top=-1", "top"),
        ("stuck?top=1001", "top"),
        ("stuck?olderThan=-PT1H", "olderThan"),
        ("stuck?olderThan=2h", "olderThan"),
        ("stuck?skiptoken=abc", "skiptoken"),
        ("devices/X?bucket=day", "bucket"),
        ("failures?by=profile", "by"),
    ] {
        let message = assert_graph_error(app.get(&url(path)).await, 400, "BadRequest").await;
        assert!(message.contains(&format!("'{named}'")), "{path}: {message}");
    }
    // A query string beyond the limit is 414, as on /beta.
    let long = format!("summary?profile={}", "x".repeat(40 * 1024));
    assert_graph_error(app.get(&url(&long)).await, 414, "RequestUriTooLong").await;
    // Within the limits: accepted.
    for path in [
        "timeline?bucket=week&from=2007-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
        "stuck?top=1000&olderThan=PT0S",
        "breakdown?by=osVersion&top=100",
        "summary?profile=&esp=x%00y",
    ] {
        assert_eq!(app.get(&url(path)).await.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn analytics_requests_count_against_the_read_budget() {
    let app = spawn_app_with(Options {
        throttling: "intune",
        ..Options::default()
    })
    .await;
    let url = format!("{}/graphpilot/analytics/summary", app.base());
    // 1,000 requests per app per 20-second window; a window that began mid-burst allows twice.
    for sent in 1..=2_001 {
        let response = app.get(&url).await;
        if response.status() == 429 {
            assert!(sent > 1_000, "throttled after {sent}");
            assert!(response.headers().contains_key("retry-after"));
            assert_graph_error(response, 429, "TooManyRequests").await;
            // The budget is the Graph API's too.
            assert_eq!(app.get(&app.events_url()).await.status(), 429);
            return;
        }
        assert_eq!(response.status(), 200);
    }
    panic!("analytics requests were never throttled");
}
