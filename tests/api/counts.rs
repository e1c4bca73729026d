//! `/$count` against a count made here from every event read back, for filters whose time terms
//! fall inside days, on midnights and across them — before and after writes move events.

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::helpers::*;

type Test = Box<dyn Fn(&Value) -> bool>;

fn instant(event: &Value) -> Timestamp {
    event["eventDateTime"].as_str().unwrap().parse().unwrap()
}

fn text(event: &Value, property: &str) -> Option<String> {
    event[property].as_str().map(str::to_string)
}

/// Filters, each with the same test written over an event's JSON.
fn filters(pivot: Timestamp, midnight: Timestamp, profile: &str, os: &str) -> Vec<(String, Test)> {
    let (p, m) = (pivot.to_string(), midnight.to_string());
    let (profile_owned, os_owned) = (profile.to_string(), os.to_string());
    let profile_of = move |e: &Value| text(e, "windowsAutopilotDeploymentProfileDisplayName");
    let state = |e: &Value| text(e, "deploymentState").unwrap();
    vec![
        (String::new(), Box::new(|_: &Value| true)),
        (
            "deploymentState eq 'failure'".into(),
            Box::new(move |e| state(e) == "failure"),
        ),
        (
            format!("eventDateTime ge {p}"),
            Box::new(move |e| instant(e) >= pivot),
        ),
        (
            format!("eventDateTime gt {p}"),
            Box::new(move |e| instant(e) > pivot),
        ),
        (
            format!("eventDateTime le {p}"),
            Box::new(move |e| instant(e) <= pivot),
        ),
        (
            format!("eventDateTime eq {p}"),
            Box::new(move |e| instant(e) == pivot),
        ),
        (
            format!("not (eventDateTime ne {p})"),
            Box::new(move |e| instant(e) == pivot),
        ),
        (
            format!("eventDateTime ge {m}"),
            Box::new(move |e| instant(e) >= midnight),
        ),
        (
            format!("eventDateTime lt {m} or deploymentState eq 'failure'"),
            Box::new(move |e| instant(e) < midnight || state(e) == "failure"),
        ),
        (
            format!("{p} lt eventDateTime and enrollmentType ne 'offlineDomainJoined'"),
            Box::new(move |e| {
                instant(e) > pivot && text(e, "enrollmentType").unwrap() != "offlineDomainJoined"
            }),
        ),
        (
            format!("deploymentState in ('failure', 'inProgress') and not (eventDateTime lt {m})"),
            Box::new(move |e| {
                ["failure", "inProgress"].contains(&state(e).as_str()) && instant(e) >= midnight
            }),
        ),
        (
            format!("windowsAutopilotDeploymentProfileDisplayName eq '{profile}'"),
            Box::new(move |e| profile_of(e).as_deref() == Some(profile_owned.as_str())),
        ),
        (
            "windowsAutopilotDeploymentProfileDisplayName eq null".into(),
            Box::new(move |e| profile_of(e).is_none()),
        ),
        (
            format!("osVersion ne '{os}' and accountSetupStatus eq 'failure'"),
            Box::new(move |e| {
                text(e, "osVersion").as_deref() != Some(os_owned.as_str())
                    && text(e, "accountSetupStatus").unwrap() == "failure"
            }),
        ),
        (
            "startswith(osVersion, '10.0')".into(),
            Box::new(|e| text(e, "osVersion").is_some_and(|v| v.starts_with("10.0"))),
        ),
        // Columns the rollup does not keep: counted from the events.
        (
            "deploymentTotalDuration gt duration'PT30M'".into(),
            Box::new(|e| {
                let duration: jiff::SignedDuration = e["deploymentTotalDuration"]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                duration > jiff::SignedDuration::from_mins(30)
            }),
        ),
    ]
}

async fn assert_counts_match(
    app: &TestApp,
    pivot: Timestamp,
    midnight: Timestamp,
    profile: &str,
    os: &str,
) {
    let events = app
        .pages(&format!("{}?$top=999", app.events_url()))
        .values()
        .await;
    for (filter, test) in filters(pivot, midnight, profile, os) {
        let expected = events.iter().filter(|event| test(event)).count() as u64;
        let url = if filter.is_empty() {
            format!("{}/$count", app.events_url())
        } else {
            format!("{}/$count?$filter={}", app.events_url(), urlencode(&filter))
        };
        let response = app.get(&url).await;
        assert_eq!(response.status(), 200, "{filter}");
        let counted: u64 = response.text().await.unwrap().parse().unwrap();
        assert_eq!(counted, expected, "`/$count` of `{filter}`");
    }
}

fn urlencode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[tokio::test]
async fn counts_match_every_event_read_back_before_and_after_writes_move_events_between_days() {
    let app = spawn_app().await;
    stdout_of(graphpilot_on(
        &app.storage,
        &["seed"],
        &[
            "--tenant",
            "contoso",
            "--count",
            "400",
            "--end",
            "2026-11-01T00:00:00Z",
        ],
    ));
    let events = app
        .pages(&format!("{}?$top=999", app.events_url()))
        .values()
        .await;
    assert_eq!(events.len(), 400);
    let pivot = instant(&events[200]);
    let midnight: Timestamp = format!("{}T00:00:00Z", &pivot.to_string()[..10])
        .parse()
        .unwrap();
    let profile = events
        .iter()
        .find_map(|e| text(e, "windowsAutopilotDeploymentProfileDisplayName"))
        .unwrap();
    let os = events.iter().find_map(|e| text(e, "osVersion")).unwrap();
    assert_counts_match(&app, pivot, midnight, &profile, &os).await;

    // Writes that move events across states, days, profiles and in and out of the tenant.
    for (n, event) in events.iter().take(60).enumerate() {
        let url = app.event_url(event["id"].as_str().unwrap());
        let response = match n % 4 {
            0 => app.patch_json(&url, &json!({"deploymentState": "failure"})).await,
            1 => app.patch_json(&url, &json!({"eventDateTime": pivot.to_string()})).await,
            2 => app.patch_json(&url, &json!({"windowsAutopilotDeploymentProfileDisplayName": null, "osVersion": "10.0.1"})).await,
            _ => app.delete(&url).await,
        };
        assert!(response.status().is_success(), "{n}: {}", response.status());
    }
    for n in 0..10 {
        app.create_event(json!({
            "deviceSerialNumber": format!("COUNT-{n}"),
            "eventDateTime": midnight.to_string(),
            "deploymentState": "inProgress",
            "enrollmentType": "azureADJoinedWithAutopilotProfile",
        }))
        .await;
    }
    assert_counts_match(&app, pivot, midnight, &profile, &os).await;
}
