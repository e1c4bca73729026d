//! Create, read, update and delete of events, as a Graph client sees them (api.md §2, §4–§6).

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

fn seed_example() -> Value {
    json!({
        "@odata.type": "#microsoft.graph.deviceManagementAutopilotEvent",
        "eventDateTime": "2016-12-31T23:56:50.5526409+03:00",
        "deviceRegisteredDateTime": "2017-01-01T00:00:05.810584+03:00",
        "enrollmentStartDateTime": "2017-01-01T00:00:19.2729934+03:00",
        "enrollmentType": "azureADJoinedWithAutopilotProfile",
        "deviceSerialNumber": "Device Serial Number value",
        "managedDeviceName": "Managed Device Name value",
        "userPrincipalName": "User Principal Name value",
        "windowsAutopilotDeploymentProfileDisplayName": "Profile",
        "enrollmentState": "enrolled",
        "windows10EnrollmentCompletionPageConfigurationDisplayName": "ESP",
        "deploymentState": "success",
        "osVersion": "10.0.19045.1",
        "deploymentDuration": "PT3M0.3227266S",
        "deploymentTotalDuration": "PT3M29.4901414S",
        "devicePreparationDuration": "PT54.2271471S",
        "deviceSetupDuration": "PT1M41.4257714S",
        "accountSetupDuration": "PT1M1.5584017S",
        "deploymentStartDateTime": "2017-01-01T00:03:11.6371007+03:00",
        "deploymentEndDateTime": "2017-01-01T00:00:43.0562247+03:00",
        "targetedAppCount": 0,
        "targetedPolicyCount": 3,
        "enrollmentFailureDetails": "Enrollment Failure Details value"
    })
}

const ALL_PROPERTIES: [&str; 28] = [
    "id",
    "deviceId",
    "userId",
    "eventDateTime",
    "deviceRegisteredDateTime",
    "enrollmentStartDateTime",
    "enrollmentType",
    "deviceSerialNumber",
    "managedDeviceName",
    "userPrincipalName",
    "windowsAutopilotDeploymentProfileDisplayName",
    "enrollmentState",
    "windows10EnrollmentCompletionPageConfigurationDisplayName",
    "windows10EnrollmentCompletionPageConfigurationId",
    "deploymentState",
    "deviceSetupStatus",
    "accountSetupStatus",
    "osVersion",
    "deploymentDuration",
    "deploymentTotalDuration",
    "devicePreparationDuration",
    "deviceSetupDuration",
    "accountSetupDuration",
    "deploymentStartDateTime",
    "deploymentEndDateTime",
    "targetedAppCount",
    "targetedPolicyCount",
    "enrollmentFailureDetails",
];

#[tokio::test]
async fn create_returns_201_with_location_etag_and_the_utc_representation() {
    let app = spawn_app().await;
    let response = app.post_json(&app.events_url(), &seed_example()).await;
    assert_eq!(response.status(), 201);
    let headers = response.headers().clone();
    assert_eq!(
        headers["content-type"],
        "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
    );
    assert_eq!(headers["odata-version"], "4.0");
    let body: Value = response.json().await.unwrap();
    let id = body["id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok() && id == id.to_lowercase());
    assert_eq!(
        headers["location"].to_str().unwrap(),
        format!("{}('{id}')", app.events_url())
    );
    assert_eq!(headers["etag"].to_str().unwrap(), body["@odata.etag"]);
    assert_eq!(
        body["@odata.context"],
        format!(
            "{}/$metadata#deviceManagement/autopilotEvents/$entity",
            app.root
        )
    );
    assert_eq!(
        body["@odata.type"],
        "#microsoft.graph.deviceManagementAutopilotEvent"
    );
    assert_eq!(body["eventDateTime"], "2016-12-31T20:56:50.5526409Z");
    assert_eq!(
        body["deviceRegisteredDateTime"],
        "2016-12-31T21:00:05.810584Z"
    );
    assert_eq!(
        body["deploymentEndDateTime"],
        "2016-12-31T21:00:43.0562247Z"
    );
    assert_eq!(body["deploymentDuration"], "PT3M0.3227266S");
    assert_eq!(body["targetedPolicyCount"], 3);
    for property in ALL_PROPERTIES {
        assert!(body.get(property).is_some(), "{property} missing");
    }
    assert!(
        body.get("policyStatusDetails").is_none(),
        "navigation only with $expand"
    );
}

#[tokio::test]
async fn a_partial_create_takes_the_documented_defaults_and_ignores_a_client_id() {
    let app = spawn_app().await;
    let body = app
        .create_event(json!({"id": "client-chosen", "deviceSerialNumber": "SN-1"}))
        .await;
    assert_ne!(body["id"], "client-chosen");
    assert_eq!(body["deviceSerialNumber"], "SN-1");
    assert_eq!(body["deviceId"], Value::Null);
    assert_eq!(body["eventDateTime"], "0001-01-01T00:00:00Z");
    assert_eq!(body["enrollmentType"], "unknown");
    assert_eq!(body["deploymentState"], "unknown");
    assert_eq!(body["deploymentTotalDuration"], "PT0S");
    assert_eq!(body["targetedAppCount"], 0);
}

#[tokio::test]
async fn get_returns_what_was_created_under_either_key_form_and_any_segment_case() {
    let app = spawn_app().await;
    let created = app.create_event(seed_example()).await;
    let id = created["id"].as_str().unwrap();
    let plain = app.get_json(&app.event_url(id)).await;
    let quoted = app
        .get_json(&format!(
            "{}/DEVICEMANAGEMENT/AutopilotEvents('{id}')",
            app.root
        ))
        .await;
    assert_eq!(plain, created);
    assert_eq!(quoted, created);
}

#[tokio::test]
async fn patch_changes_only_the_given_properties_and_returns_the_whole_entity() {
    let app = spawn_app().await;
    let created = app.create_event(seed_example()).await;
    let id = created["id"].as_str().unwrap();
    let response = app
        .patch_json(
            &app.event_url(id),
            &json!({"deploymentState": "failure", "managedDeviceName": null, "targetedAppCount": 7}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let etag = response.headers()["etag"].to_str().unwrap().to_string();
    let patched: Value = response.json().await.unwrap();
    assert_ne!(
        etag,
        created["@odata.etag"].as_str().unwrap(),
        "ETag changes on write"
    );
    assert_eq!(patched["deploymentState"], "failure");
    assert_eq!(patched["managedDeviceName"], Value::Null);
    assert_eq!(patched["targetedAppCount"], 7);
    let mut expected = created.clone();
    expected["deploymentState"] = json!("failure");
    expected["managedDeviceName"] = Value::Null;
    expected["targetedAppCount"] = json!(7);
    expected["@odata.etag"] = json!(etag);
    assert_eq!(patched, expected);
    assert_eq!(app.get_json(&app.event_url(id)).await, expected);
}

#[tokio::test]
async fn patch_with_an_unknown_property_returns_400_and_changes_nothing() {
    let app = spawn_app().await;
    let created = app.create_event(seed_example()).await;
    let url = app.event_url(created["id"].as_str().unwrap());
    let response = app
        .patch_json(
            &url,
            &json!({"deploymentState": "failure", "deviceColour": "red"}),
        )
        .await;
    let message = assert_graph_error(response, 400, "ModelValidationFailure").await;
    assert!(message.contains("deviceColour"), "{message}");
    assert_eq!(app.get_json(&url).await, created);
}

#[tokio::test]
async fn invalid_values_are_rejected_with_a_message_that_names_the_property_and_what_is_allowed() {
    let app = spawn_app().await;
    let created = app.create_event(seed_example()).await;
    let url = app.event_url(created["id"].as_str().unwrap());
    let cases = [
        (
            json!({"enrollmentState": "String"}),
            vec!["enrollmentState", "notContacted"],
        ),
        (
            json!({"deploymentState": "Success"}),
            vec!["deploymentState", "successOnRetry"],
        ),
        (
            json!({"eventDateTime": "2021-02-30T00:00:00Z"}),
            vec!["eventDateTime"],
        ),
        (
            json!({"eventDateTime": "2021-01-01T00:00:00.12345678Z"}),
            vec!["eventDateTime", "7"],
        ),
        (
            json!({"eventDateTime": "2021-01-01T00:00Z"}),
            vec!["eventDateTime", "seconds"],
        ),
        (
            json!({"eventDateTime": null}),
            vec!["eventDateTime", "null"],
        ),
        (
            json!({"deploymentDuration": "0:03:00.322727"}),
            vec!["deploymentDuration", "PT3M0.322727S"],
        ),
        (
            json!({"deploymentDuration": "P1Y"}),
            vec!["deploymentDuration"],
        ),
        (
            json!({"targetedAppCount": 2147483648_i64}),
            vec!["targetedAppCount", "Int32"],
        ),
        (json!({"targetedAppCount": 1.0}), vec!["targetedAppCount"]),
        (json!({"targetedAppCount": "1"}), vec!["targetedAppCount"]),
        (json!({"deviceId": 5}), vec!["deviceId", "string"]),
        (json!({"deviceId": "nul\u{0}byte"}), vec!["deviceId", "NUL"]),
        (
            json!({"@odata.type": "#microsoft.graph.user"}),
            vec!["@odata.type"],
        ),
        (json!({"id": "another-id"}), vec!["id"]),
        (
            json!({"policyStatusDetails": []}),
            vec!["policyStatusDetails"],
        ),
    ];
    for (body, expected) in cases {
        let response = app.patch_json(&url, &body).await;
        let message = assert_graph_error(response, 400, "ModelValidationFailure").await;
        for fragment in expected {
            assert!(message.contains(fragment), "{body}: {message}");
        }
    }
    assert_eq!(app.get_json(&url).await, created, "nothing changed");
}

#[tokio::test]
async fn bodies_that_are_not_one_json_object_are_refused() {
    let app = spawn_app().await;
    for raw in [
        "",
        "[]",
        "{",
        "{\"deviceId\":\"a\"} trailing",
        "{\"deviceId\":\"a\",\"deviceId\":\"b\"}",
        "\u{ff}",
    ] {
        let response = app
            .request(Method::POST, &app.events_url())
            .header("content-type", "application/json")
            .body(raw.as_bytes().to_vec())
            .send()
            .await
            .unwrap();
        assert_graph_error(response, 400, "BadRequest").await;
    }
    let response = app
        .request(Method::POST, &app.events_url())
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_graph_error(response, 415, "UnsupportedMediaType").await;
    let response = app
        .request(Method::POST, &app.events_url())
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_graph_error(response, 415, "UnsupportedMediaType").await;
    // A declared length over 4 MiB is refused before any of the body is sent.
    let head = raw_http(
        &app,
        &format!(
            "POST /beta/deviceManagement/autopilotEvents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            app.token,
            5 * 1024 * 1024
        ),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(head.contains("RequestEntityTooLarge"), "{head}");
    assert_eq!(app.count().await, 0, "nothing was created");
}

#[tokio::test]
async fn delete_returns_204_and_the_event_and_its_details_are_gone() {
    let app = spawn_app().await;
    let created = app
        .create_event(json!({"policyStatusDetails": [{"displayName": "Office", "policyType": "application"}]}))
        .await;
    let id = created["id"].as_str().unwrap();
    let details: Value = app.get_json(&app.details_url(id)).await;
    assert_eq!(details["value"].as_array().unwrap().len(), 1);
    let response = app.delete(&app.event_url(id)).await;
    assert_eq!(response.status(), 204);
    assert!(response.text().await.unwrap().is_empty());
    assert_graph_error(app.get(&app.event_url(id)).await, 404, "ResourceNotFound").await;
    assert_graph_error(app.get(&app.details_url(id)).await, 404, "ResourceNotFound").await;
    assert_graph_error(
        app.delete(&app.event_url(id)).await,
        404,
        "ResourceNotFound",
    )
    .await;
}

#[tokio::test]
async fn unknown_paths_verbs_and_versions_answer_as_graph_does() {
    let app = spawn_app().await;
    let message = assert_graph_error(
        app.get(&format!("{}/deviceManagement/managedDevices", app.root))
            .await,
        400,
        "BadRequest",
    )
    .await;
    assert_eq!(
        message,
        "Resource not found for the segment 'managedDevices'."
    );
    let v1 = format!("{}/v1.0/deviceManagement/autopilotEvents", app.base());
    let message = assert_graph_error(app.get(&v1).await, 400, "BadRequest").await;
    assert!(message.contains("'autopilotEvents'"), "{message}");
    let response = app
        .request(Method::PUT, &app.events_url())
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["allow"], "GET, POST");
    assert_graph_error(response, 405, "MethodNotAllowed").await;
    let response = app
        .request(Method::POST, &app.event_url("x"))
        .send()
        .await
        .unwrap();
    assert_graph_error(response, 405, "MethodNotAllowed").await;
    assert_graph_error(
        app.get(&app.event_url("no-such-id")).await,
        404,
        "ResourceNotFound",
    )
    .await;
}

#[tokio::test]
async fn every_response_carries_request_id_and_echoes_client_request_id() {
    let app = spawn_app().await;
    let response = app
        .request(Method::GET, &app.events_url())
        .header("client-request-id", "my-correlation-id")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["client-request-id"], "my-correlation-id");
    let request_id = response.headers()["request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(request_id).is_ok());
    let response = app.get(&app.events_url()).await;
    assert_eq!(
        response.headers()["client-request-id"],
        response.headers()["request-id"]
    );
}

#[tokio::test]
async fn if_match_guards_updates_and_deletes() {
    let app = spawn_app().await;
    let created = app.create_event(seed_example()).await;
    let url = app.event_url(created["id"].as_str().unwrap());
    let etag = created["@odata.etag"].as_str().unwrap();
    let stale = app
        .request(Method::PATCH, &url)
        .header("if-match", "W/\"0000000000000000\"")
        .json(&json!({"osVersion": "stale"}))
        .send()
        .await
        .unwrap();
    assert_graph_error(stale, 412, "PreconditionFailed").await;
    let fresh = app
        .request(Method::PATCH, &url)
        .header("if-match", etag)
        .json(&json!({"osVersion": "fresh"}))
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.status(), 200);
    // The old ETag is now stale for a delete too; `*` matches whatever is there.
    let response = app
        .request(Method::DELETE, &url)
        .header("if-match", etag)
        .send()
        .await
        .unwrap();
    assert_graph_error(response, 412, "PreconditionFailed").await;
    let response = app
        .request(Method::DELETE, &url)
        .header("if-match", "*")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
}

#[tokio::test]
async fn an_if_match_list_holding_a_star_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let event = app.create_event(json!({"osVersion": "1"})).await;
    let url = app.event_url(event["id"].as_str().unwrap());
    let etag = event["@odata.etag"].as_str().unwrap().to_string();
    for header in [
        format!("*, {etag}"),
        format!("{etag}, *"),
        format!("{etag},"),
    ] {
        let patch = app
            .request(reqwest::Method::PATCH, &url)
            .header("if-match", &header)
            .json(&json!({"osVersion": "2"}))
            .send()
            .await
            .unwrap();
        assert_graph_error(patch, 400, "BadRequest").await;
        let delete = app
            .request(reqwest::Method::DELETE, &url)
            .header("if-match", &header)
            .send()
            .await
            .unwrap();
        assert_graph_error(delete, 400, "BadRequest").await;
    }
    let stored = app.get_json(&url).await;
    assert_eq!(stored["osVersion"], "1");
    assert_eq!(stored["@odata.etag"], etag.as_str());
    // A missing entity is 404 whatever the header holds.
    let missing = app
        .request(reqwest::Method::DELETE, &app.event_url("nope"))
        .header("if-match", "*, W/\"x\"")
        .send()
        .await
        .unwrap();
    assert_graph_error(missing, 404, "ResourceNotFound").await;
}

#[tokio::test]
async fn concurrent_patches_with_the_same_etag_let_exactly_one_win() {
    let app = spawn_app().await;
    let created = app.create_event(seed_example()).await;
    let url = app.event_url(created["id"].as_str().unwrap());
    let etag = created["@odata.etag"].as_str().unwrap().to_string();
    let attempts = (0..16).map(|n| {
        app.request(Method::PATCH, &url)
            .header("if-match", etag.clone())
            .json(&json!({"osVersion": format!("v{n}")}))
            .send()
    });
    let statuses: Vec<u16> = concurrent_statuses(attempts).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 412).count(),
        15,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn a_patch_and_a_delete_racing_with_one_etag_let_exactly_one_win() {
    let app = spawn_app().await;
    for round in 0..12 {
        let created = app.create_event(seed_example()).await;
        let url = app.event_url(created["id"].as_str().unwrap());
        let etag = created["@odata.etag"].as_str().unwrap().to_string();
        let patch = app
            .request(Method::PATCH, &url)
            .header("if-match", &etag)
            .json(&json!({"osVersion": "patched"}))
            .send();
        let delete = app
            .request(Method::DELETE, &url)
            .header("if-match", &etag)
            .send();
        let statuses = concurrent_statuses([patch, delete].into_iter()).await;
        let won = statuses.iter().filter(|s| [200, 204].contains(*s)).count();
        assert_eq!(won, 1, "round {round}: {statuses:?}");
        assert!(
            statuses.iter().all(|s| [200, 204, 404, 412].contains(s)),
            "{statuses:?}"
        );
        // What stands is what won: the patched event, or nothing.
        let after = app.get(&url).await.status().as_u16();
        assert_eq!(
            after,
            if statuses[0] == 200 { 200 } else { 404 },
            "{statuses:?}"
        );
    }
}

/// Sends raw bytes and returns what the server answers before closing or going quiet.
async fn raw_http(app: &TestApp, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = app.base().trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 65536];
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut answer))
        .await
        .expect("answered without waiting for the body")
        .unwrap();
    String::from_utf8_lossy(&answer[..read]).into_owned()
}

#[tokio::test]
async fn many_clients_patching_the_same_few_events_all_succeed() {
    let app = spawn_app().await;
    let mut urls = Vec::new();
    for _ in 0..4 {
        let event = app.create_event(json!({})).await;
        urls.push(app.event_url(event["id"].as_str().unwrap()));
    }
    let mut attempts = Vec::new();
    for n in 0..480_usize {
        // Clients touch the events in different orders, as deadlock-prone loads do.
        let url = urls[(n * 7 + n / 5 + (n * n) % 3) % urls.len()].clone();
        let request = app
            .request(Method::PATCH, &url)
            .json(&json!({"targetedAppCount": n}))
            .send();
        attempts.push(tokio::spawn(request));
    }
    for attempt in attempts {
        let response = attempt.await.unwrap().unwrap();
        assert_eq!(response.status(), 200);
    }
}
