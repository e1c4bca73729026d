//! policyStatusDetails contained in an event (api.md §3).

use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn details_have_their_own_crud_count_and_defaults_under_their_event() {
    let app = spawn_app().await;
    let event = app.create_event(json!({"deviceSerialNumber": "SN"})).await;
    let event_id = event["id"].as_str().unwrap();
    let url = app.details_url(event_id);
    let response = app
        .post_json(&url, &json!({"displayName": "Company Portal", "policyType": "application", "complianceStatus": "installed", "trackedOnEnrollmentStatus": true, "lastReportedDateTime": "2024-05-01T10:00:00+02:00", "errorCode": -2016345060}))
        .await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let detail_id = created["id"].as_str().unwrap();
    assert_eq!(
        created["@odata.type"],
        "#microsoft.graph.deviceManagementAutopilotPolicyStatusDetail"
    );
    assert_eq!(created["lastReportedDateTime"], "2024-05-01T08:00:00Z");
    assert_eq!(created["errorCode"], -2016345060_i64);
    assert_eq!(
        created["@odata.context"],
        format!(
            "{}/$metadata#deviceManagement/autopilotEvents('{event_id}')/policyStatusDetails/$entity",
            app.root
        )
    );
    let defaults: Value = app.post_json(&url, &json!({})).await.json().await.unwrap();
    assert_eq!(defaults["displayName"], Value::Null);
    assert_eq!(defaults["policyType"], "unknown");
    assert_eq!(defaults["complianceStatus"], "unknown");
    assert_eq!(defaults["trackedOnEnrollmentStatus"], false);
    assert_eq!(defaults["lastReportedDateTime"], "0001-01-01T00:00:00Z");
    assert_eq!(defaults["errorCode"], 0);

    let list = app.get_json(&url).await;
    assert_eq!(list["value"].as_array().unwrap().len(), 2);
    let count = app
        .get(&format!("{url}/$count"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(count, "2");

    let item_url = format!("{url}('{detail_id}')");
    let patched: Value = app
        .patch_json(
            &item_url,
            &json!({"complianceStatus": "error", "trackedOnEnrollmentStatus": false}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(patched["complianceStatus"], "error");
    assert_eq!(patched["displayName"], "Company Portal");
    let message = assert_graph_error(
        app.patch_json(&item_url, &json!({"policyType": "script"}))
            .await,
        400,
        "ModelValidationFailure",
    )
    .await;
    assert!(message.contains("configurationPolicy"), "{message}");
    assert_eq!(app.delete(&item_url).await.status(), 204);
    assert_graph_error(app.get(&item_url).await, 404, "ResourceNotFound").await;
}

#[tokio::test]
async fn details_of_a_missing_event_are_404_even_with_a_bad_body() {
    let app = spawn_app().await;
    let url = app.details_url("00000000-0000-0000-0000-000000000000");
    assert_graph_error(app.get(&url).await, 404, "ResourceNotFound").await;
    assert_graph_error(
        app.post_json(&url, &json!({"bogus": 1})).await,
        404,
        "ResourceNotFound",
    )
    .await;
    assert_graph_error(
        app.get(&format!("{url}/$count")).await,
        404,
        "ResourceNotFound",
    )
    .await;
}

#[tokio::test]
async fn an_event_created_with_inline_details_stores_them_all() {
    let app = spawn_app().await;
    let event = app
        .create_event(json!({"policyStatusDetails": [
            {"displayName": "A", "policyType": "configurationPolicy"},
            {"displayName": "B", "policyType": "appModel", "complianceStatus": "notInstalled"}
        ]}))
        .await;
    let list = app
        .get_json(&app.details_url(event["id"].as_str().unwrap()))
        .await;
    let names: Vec<&str> = list["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["displayName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["A", "B"]);
    // A bad inline detail refuses the whole event.
    let response = app
        .post_json(
            &app.events_url(),
            &json!({"policyStatusDetails": [{"policyType": "nope"}]}),
        )
        .await;
    assert_graph_error(response, 400, "ModelValidationFailure").await;
    assert_eq!(app.count().await, 1);
}

#[tokio::test]
async fn details_carry_etags_that_guard_their_writes_and_one_of_two_racing_writes_wins() {
    let app = spawn_app().await;
    let event = app.create_event(json!({"deviceSerialNumber": "SN"})).await;
    let url = app.details_url(event["id"].as_str().unwrap());
    let response = app.post_json(&url, &json!({"displayName": "VPN"})).await;
    assert_eq!(response.status(), 201);
    let header = response.headers()["etag"].to_str().unwrap().to_string();
    let created: Value = response.json().await.unwrap();
    let etag = created["@odata.etag"].as_str().unwrap().to_string();
    assert_eq!(header, etag);
    let item_url = format!("{url}/{}", created["id"].as_str().unwrap());
    let read = app.get(&item_url).await;
    assert_eq!(read.headers()["etag"].to_str().unwrap(), etag);

    // Sixteen PATCHes race with one ETag: exactly one wins, the others are 412.
    let mut statuses = concurrent_statuses((0..16).map(|n| {
        app.request(reqwest::Method::PATCH, &item_url)
            .header("if-match", &etag)
            .json(&json!({"errorCode": n}))
            .send()
    }))
    .await;
    statuses.sort();
    assert_eq!(statuses, [vec![200], vec![412; 15]].concat());
    let after = app.get_json(&item_url).await;
    assert_ne!(after["@odata.etag"], etag.as_str());

    // The old ETag no longer deletes; the current one does, once.
    let stale = app
        .request(reqwest::Method::DELETE, &item_url)
        .header("if-match", &etag)
        .send()
        .await
        .unwrap();
    assert_graph_error(stale, 412, "PreconditionFailed").await;
    let current = after["@odata.etag"].as_str().unwrap().to_string();
    let statuses = concurrent_statuses((0..8).map(|_| {
        app.request(reqwest::Method::DELETE, &item_url)
            .header("if-match", &current)
            .send()
    }))
    .await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 204).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [204, 404, 412].contains(s)),
        "{statuses:?}"
    );
    assert_eq!(app.get(&item_url).await.status(), 404);
}
