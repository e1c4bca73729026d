//! OData querying over HTTP (api.md §7, §8): $filter, $orderby, $select, $expand, $count, $top,
//! $skip and keyset paging, against a fleet seeded by `graphpilot seed` while the server runs.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::helpers::*;

/// Seeds `count` events into tenant contoso of the running app's storage.
fn seed(app: &TestApp, count: u32, seed: u32) {
    let (count, seed) = (count.to_string(), seed.to_string());
    stdout_of(graphpilot_on(
        &app.storage,
        &["seed"],
        &["--tenant", "contoso", "--count", &count, "--seed", &seed],
    ));
}

/// Every event of the tenant, following next links.
async fn all_events(app: &TestApp, query: &str) -> Vec<Value> {
    app.pages(&format!("{}?{query}", app.events_url()))
        .values()
        .await
}

fn ids(events: &[Value]) -> Vec<String> {
    ids_of(events)
}

fn id_set(events: &[Value]) -> HashSet<String> {
    ids(events).into_iter().collect()
}

/// What a filter should keep, decided in the test from the JSON alone.
type Expectation = Box<dyn Fn(&Value) -> bool>;

/// Ids of `events` for which `keep` holds.
fn expected(events: &[Value], keep: impl Fn(&Value) -> bool) -> HashSet<String> {
    id_set(
        &events
            .iter()
            .filter(|e| keep(e))
            .cloned()
            .collect::<Vec<_>>(),
    )
}

#[tokio::test]
async fn filters_select_exactly_the_matching_events() {
    let app = spawn_app_with(Options {
        page_size: 200,
        ..Options::default()
    })
    .await;
    seed(&app, 400, 11);
    let everything = all_events(&app, "").await;
    assert_eq!(everything.len(), 400);
    let text = |e: &Value, p: &str| e[p].as_str().map(str::to_string);
    let cases: Vec<(&str, Expectation)> = vec![
        (
            "deploymentState eq 'failure'",
            Box::new(|e| e["deploymentState"] == "failure"),
        ),
        (
            "deploymentState ne 'success'",
            Box::new(|e| e["deploymentState"] != "success"),
        ),
        (
            "deploymentState in ('inProgress', 'successOnRetry') and not (enrollmentType eq 'offlineDomainJoined')",
            Box::new(|e| {
                ["inProgress", "successOnRetry"].contains(&e["deploymentState"].as_str().unwrap())
                    && e["enrollmentType"] != "offlineDomainJoined"
            }),
        ),
        (
            "userPrincipalName eq null",
            Box::new(|e| e["userPrincipalName"].is_null()),
        ),
        (
            "userPrincipalName ne null",
            Box::new(|e| !e["userPrincipalName"].is_null()),
        ),
        ("enrollmentFailureDetails ne 'x'", Box::new(|_| true)),
        ("not (userPrincipalName eq 'nobody')", Box::new(|_| true)),
        (
            "startswith(deviceSerialNumber, '5CG')",
            Box::new(move |e| text(e, "deviceSerialNumber").unwrap().starts_with("5CG")),
        ),
        ("startswith(deviceSerialNumber, '5cg')", Box::new(|_| false)),
        (
            "contains(enrollmentFailureDetails, 'timed out')",
            Box::new(move |e| {
                text(e, "enrollmentFailureDetails").is_some_and(|t| t.contains("timed out"))
            }),
        ),
        (
            "endswith(userPrincipalName, '.onmicrosoft.com')",
            Box::new(move |e| {
                text(e, "userPrincipalName").is_some_and(|t| t.ends_with(".onmicrosoft.com"))
            }),
        ),
        (
            "deploymentTotalDuration gt duration'PT30M'",
            Box::new(|e| {
                let total = e["deploymentTotalDuration"].as_str().unwrap();
                jiff::SignedDuration::from_secs(30 * 60)
                    < total
                        .parse::<jiff::Span>()
                        .unwrap()
                        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
                        .unwrap()
            }),
        ),
        (
            "targetedAppCount ge 20 or targetedPolicyCount lt 6",
            Box::new(|e| {
                e["targetedAppCount"].as_i64().unwrap() >= 20
                    || e["targetedPolicyCount"].as_i64().unwrap() < 6
            }),
        ),
        (
            "enrollmentType has 'azureADJoinedWithWhiteGlove'",
            Box::new(|e| {
                let value = [
                    "unknown",
                    "azureADJoinedWithAutopilotProfile",
                    "offlineDomainJoined",
                    "azureADJoinedUsingDeviceAuthWithAutopilotProfile",
                    "azureADJoinedUsingDeviceAuthWithoutAutopilotProfile",
                    "azureADJoinedWithOfflineAutopilotProfile",
                    "azureADJoinedWithWhiteGlove",
                    "offlineDomainJoinedWithWhiteGlove",
                    "offlineDomainJoinedWithOfflineAutopilotProfile",
                ]
                .iter()
                .position(|m| *m == e["enrollmentType"])
                .unwrap();
                value & 6 == 6
            }),
        ),
        (
            "microsoft.graph.deviceManagementAutopilotEvent/deploymentState eq microsoft.graph.windowsAutopilotDeploymentState'failure'",
            Box::new(|e| e["deploymentState"] == "failure"),
        ),
        (
            "DEPLOYMENTSTATE eq 'failure'",
            Box::new(|e| e["deploymentState"] == "failure"),
        ),
        (
            "deploymentEndDateTime eq 0001-01-01T00:00:00Z",
            Box::new(|e| e["deploymentEndDateTime"] == "0001-01-01T00:00:00Z"),
        ),
    ];
    for (filter, keep) in cases {
        let query = format!("$filter={}", urlencode(filter));
        let found = all_events(&app, &query).await;
        assert_eq!(id_set(&found), expected(&everything, keep), "{filter}");
        let count = app
            .get(&format!("{}/$count?{query}", app.events_url()))
            .await
            .text()
            .await
            .unwrap();
        assert_eq!(count, found.len().to_string(), "/$count of {filter}");
    }
}

#[tokio::test]
async fn datetime_filters_compare_instants_whatever_the_offset() {
    let app = spawn_app().await;
    let early = app
        .create_event(json!({"eventDateTime": "2021-03-01T08:00:00Z"}))
        .await;
    let late = app
        .create_event(json!({"eventDateTime": "2021-03-01T08:00:00.0000001Z"}))
        .await;
    for (filter, expected) in [
        (
            "eventDateTime ge 2021-03-01T09:00:00+01:00",
            vec![&early, &late],
        ),
        ("eventDateTime gt 2021-03-01T09:00:00+01:00", vec![&late]),
        ("eventDateTime lt 2021-03-01T08:00Z", vec![]),
        ("eventDateTime le 2021-03-01T03:00:00-05:00", vec![&early]),
    ] {
        // A bare '+' in the query string is a plus, not a space.
        let url = format!(
            "{}?$filter={}",
            app.events_url(),
            filter.replace(' ', "%20")
        );
        let page = app.get_json(&url).await;
        assert_eq!(
            ids(page["value"].as_array().unwrap()),
            ids(&expected.into_iter().cloned().collect::<Vec<_>>()),
            "{filter}"
        );
    }
}

#[tokio::test]
async fn orderby_pages_walk_in_order_with_ties_broken_by_id_and_no_duplicates() {
    let app = spawn_app().await;
    seed(&app, 300, 5);
    for (orderby, key) in [
        ("eventDateTime desc", "eventDateTime"),
        ("deploymentState,eventDateTime", "deploymentState"),
        ("userPrincipalName", "userPrincipalName"),
        ("osVersion desc", "osVersion"),
    ] {
        let query = format!("$orderby={}&$top=37", urlencode(orderby));
        let walked = all_events(&app, &query).await;
        assert_eq!(walked.len(), 300, "{orderby}");
        assert_eq!(id_set(&walked).len(), 300, "no duplicates for {orderby}");
        let descending = orderby.ends_with("desc");
        for pair in walked.windows(2) {
            let (a, b) = (&pair[0][key], &pair[1][key]);
            let ordering = compare_json(a, b, key);
            if descending {
                assert!(ordering.is_ge(), "{orderby}: {a} before {b}");
            } else {
                assert!(ordering.is_le(), "{orderby}: {a} before {b}");
            }
        }
    }
    // Ties on the only key are broken by id.
    let by_state = all_events(&app, "$orderby=deploymentState&$top=1000").await;
    for pair in by_state.windows(2) {
        if pair[0]["deploymentState"] == pair[1]["deploymentState"] {
            assert!(pair[0]["id"].as_str() < pair[1]["id"].as_str());
        }
    }
}

/// Orders two property values as the service does: enums by underlying value, nulls first.
fn compare_json(a: &Value, b: &Value, key: &str) -> std::cmp::Ordering {
    let states = [
        "unknown",
        "success",
        "inProgress",
        "failure",
        "successWithTimeout",
        "notAttempted",
        "disabled",
        "successOnRetry",
    ];
    match (a, b) {
        (Value::Null, Value::Null) => std::cmp::Ordering::Equal,
        (Value::Null, _) => std::cmp::Ordering::Less,
        (_, Value::Null) => std::cmp::Ordering::Greater,
        _ if key == "deploymentState" => {
            let rank = |v: &Value| {
                states
                    .iter()
                    .position(|s| *s == v.as_str().unwrap())
                    .unwrap()
            };
            rank(a).cmp(&rank(b))
        }
        _ => a.as_str().unwrap().cmp(b.as_str().unwrap()),
    }
}

#[tokio::test]
async fn an_ordered_walk_stays_exact_while_others_insert() {
    let app = spawn_app().await;
    seed(&app, 120, 9);
    let before = all_events(&app, "").await;
    let mut seen = Vec::new();
    let mut pages = app.pages(&format!(
        "{}?$orderby=eventDateTime%20desc&$top=25&$count=true",
        app.events_url()
    ));
    while let Some(page) = pages.next().await {
        seen.extend(ids(page["value"].as_array().unwrap()));
        app.create_event(json!({"eventDateTime": "2030-01-01T00:00:00Z"}))
            .await;
    }
    let unique: HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len());
    assert!(
        id_set(&before).is_subset(&unique),
        "no event that existed throughout was skipped"
    );
}

#[tokio::test]
async fn count_top_skip_and_select_combine() {
    let app = spawn_app().await;
    seed(&app, 60, 3);
    let failures = all_events(&app, "$filter=deploymentState%20ne%20'success'").await;
    let page = app
        .get_json(&format!(
            "{}?$filter=deploymentState%20ne%20'success'&$count=true&$top=2&$skip=1&$select=deploymentState,deviceSerialNumber&$orderby=deviceSerialNumber",
            app.events_url()
        ))
        .await;
    assert_eq!(page["@odata.count"], failures.len());
    assert_eq!(
        page["@odata.context"],
        format!(
            "{}/$metadata#deviceManagement/autopilotEvents(deploymentState,deviceSerialNumber)",
            app.root
        )
    );
    let values = page["value"].as_array().unwrap();
    assert_eq!(values.len(), 2);
    let mut serials: Vec<&str> = failures
        .iter()
        .map(|e| e["deviceSerialNumber"].as_str().unwrap())
        .collect();
    serials.sort();
    assert_eq!(
        values[0]["deviceSerialNumber"], serials[1],
        "$skip=1 skipped the first"
    );
    let keys: Vec<&String> = values[0].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "@odata.etag",
            "@odata.type",
            "id",
            "deviceSerialNumber",
            "deploymentState"
        ]
    );
    let next = page["@odata.nextLink"].as_str().unwrap();
    let second = app.get_json(next).await;
    assert_eq!(second["value"][0]["deviceSerialNumber"], serials[3]);
}

#[tokio::test]
async fn expand_inlines_policy_status_details_with_a_nested_select() {
    let app = spawn_app().await;
    let event = app
        .create_event(json!({"policyStatusDetails": [
            {"displayName": "Company Portal", "policyType": "appModel", "complianceStatus": "installed"},
            {"displayName": "BitLocker", "policyType": "configurationPolicy", "errorCode": 5}
        ]}))
        .await;
    app.create_event(json!({})).await;
    let page = app
        .get_json(&format!(
            "{}?$expand=policyStatusDetails($select=displayName)&$select=deviceId",
            app.events_url()
        ))
        .await;
    assert_eq!(
        page["@odata.context"],
        format!(
            "{}/$metadata#deviceManagement/autopilotEvents(deviceId,policyStatusDetails(displayName))",
            app.root
        )
    );
    let first = &page["value"][0];
    assert_eq!(first["id"], event["id"]);
    let details = first["policyStatusDetails"].as_array().unwrap();
    assert_eq!(details.len(), 2);
    assert_eq!(details[0]["displayName"], "Company Portal");
    assert!(details[0].get("errorCode").is_none());
    assert_eq!(page["value"][1]["policyStatusDetails"], json!([]));
    let one = app
        .get_json(&format!(
            "{}?$expand=policyStatusDetails",
            app.event_url(event["id"].as_str().unwrap())
        ))
        .await;
    assert_eq!(one["policyStatusDetails"][1]["errorCode"], 5);
    assert_eq!(
        one["deploymentState"], "unknown",
        "no $select: every property"
    );
}

#[tokio::test]
async fn details_collections_take_the_same_query_options() {
    let app = spawn_app().await;
    let event = app
        .create_event(json!({"policyStatusDetails": [
            {"displayName": "A", "complianceStatus": "error", "trackedOnEnrollmentStatus": true},
            {"displayName": "B", "complianceStatus": "installed"},
            {"displayName": "C", "complianceStatus": "error"}
        ]}))
        .await;
    let url = app.details_url(event["id"].as_str().unwrap());
    let errors = app
        .get_json(&format!(
            "{url}?$filter=complianceStatus%20eq%20'error'&$orderby=displayName%20desc"
        ))
        .await;
    let names: Vec<&str> = errors["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["displayName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["C", "A"]);
    let tracked = app
        .get_json(&format!("{url}?$filter=trackedOnEnrollmentStatus"))
        .await;
    assert_eq!(tracked["value"].as_array().unwrap().len(), 1);
    let count = app
        .get(&format!(
            "{url}/$count?$filter=complianceStatus%20eq%20'error'"
        ))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(count, "2");
}

#[tokio::test]
async fn bad_filters_are_400_naming_the_position_or_the_name() {
    let app = spawn_app().await;
    let deep = format!("{}deviceId eq 'x'{}", "(".repeat(101), ")".repeat(101));
    let many = vec!["id eq 'x'"; 1001].join(" or ");
    for (filter, fragment) in [
        ("colour eq 'red'", "'colour'"),
        ("deploymentState eq 'String'", "successOnRetry"),
        ("deploymentState eq", "position 18"),
        ("eventDateTime ge '2021-01-01'", "position 17"),
        ("targetedAppCount eq 1.5", "position 20"),
        ("deviceId eq 'unterminated", "unterminated"),
        ("tolower(deviceId) eq 'x'", "tolower"),
        (deep.as_str(), "nested deeper than 100"),
        (many.as_str(), "more than 1000 terms"),
    ] {
        let url = format!("{}?$filter={}", app.events_url(), urlencode(filter));
        let message = assert_graph_error(app.get(&url).await, 400, "BadRequest").await;
        assert!(message.contains(fragment), "{filter}: {message}");
    }
    let long = format!(
        "{}?$filter=deviceId%20eq%20'{}'",
        app.events_url(),
        "x".repeat(33 * 1024)
    );
    assert_graph_error(app.get(&long).await, 414, "RequestUriTooLong").await;
    for (query, fragment) in [
        ("$orderby=colour", "'colour'"),
        ("$orderby=eventDateTime%20sideways", "asc or desc"),
        ("$expand=devices", "'devices'"),
        ("$search=%22x%22", "$search"),
    ] {
        let message = assert_graph_error(
            app.get(&format!("{}?{query}", app.events_url())).await,
            400,
            "BadRequest",
        )
        .await;
        assert!(message.contains(fragment), "{query}: {message}");
    }
}

/// Percent-encodes a query value (spaces, quotes, parentheses, plus signs).
fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' | b',' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn a_select_list_with_any_item_that_is_not_a_property_is_refused() {
    let app = spawn_app().await;
    app.create_event(json!({"deviceSerialNumber": "SN-SELECT"}))
        .await;
    for select in [
        "*,foo",
        "foo,*",
        "id,foo",
        "deviceSerialNumber,nope",
        "*,",
        ",*",
        "*,*,bogus",
    ] {
        let url = format!("{}?$select={select}", app.events_url());
        let response = app.get(&url).await;
        let message = assert_graph_error(response, 400, "BadRequest").await;
        assert!(!message.is_empty(), "{select}");
    }
    for select in ["*", "*,id", "id,deviceSerialNumber", "deviceSerialNumber,*"] {
        let url = format!("{}?$select={select}", app.events_url());
        assert_eq!(app.get(&url).await.status(), 200, "{select}");
    }
}
