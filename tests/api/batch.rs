//! JSON batching (api.md §10): steps run as requests of their own, in dependsOn order.

use serde_json::{Value, json};

use crate::helpers::*;

async fn batch(app: &TestApp, token: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(format!("{}/$batch", app.root))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
}

fn step<'a>(answer: &'a Value, id: &str) -> &'a Value {
    answer["responses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|step| step["id"] == id)
        .unwrap_or_else(|| panic!("no response for step {id}: {answer}"))
}

#[tokio::test]
async fn steps_create_read_update_count_and_delete_in_dependency_order() {
    let app = spawn_app().await;
    let existing = app
        .create_event(json!({"deviceSerialNumber": "SN-EXISTING"}))
        .await;
    let existing_id = existing["id"].as_str().unwrap();
    let body = json!({"requests": [
        {"id": "3", "method": "DELETE", "url": format!("/deviceManagement/autopilotEvents/{existing_id}"), "dependsOn": ["2"]},
        {"id": "1", "method": "POST", "url": "/deviceManagement/autopilotEvents",
         "headers": {"Content-Type": "application/json"}, "body": {"deviceSerialNumber": "SN-BATCH"}},
        {"id": "2", "method": "PATCH", "url": format!("deviceManagement/autopilotEvents('{existing_id}')"),
         "headers": {"content-type": "application/json"}, "body": {"osVersion": "10.0.26100.1"}, "dependsOn": ["1"]},
        {"id": "4", "method": "GET", "url": "/deviceManagement/autopilotEvents/$count", "dependsOn": ["3"]},
        {"id": "5", "method": "GET", "url": "/deviceManagement/autopilotEvents?$filter=deviceSerialNumber eq 'SN-BATCH'&$select=deviceSerialNumber"},
        {"id": "6", "method": "GET", "url": "/deviceManagement/autopilotEvents/no-such-event"}
    ]});
    let response = batch(&app, &app.token, &body).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["responses"].as_array().unwrap().len(), 6);
    let first = step(&answer, "1");
    assert!(
        first["headers"]["Content-Type"]
            .as_str()
            .is_some_and(|value| value.starts_with("application/json")),
        "header names as Graph writes them: {first}"
    );
    let created = step(&answer, "1");
    assert_eq!(created["status"], 201);
    assert_eq!(created["body"]["deviceSerialNumber"], "SN-BATCH");
    assert!(
        created["headers"]["Location"].as_str().is_some(),
        "{created}"
    );
    let patched = step(&answer, "2");
    assert_eq!(patched["status"], 200, "{patched}");
    assert_eq!(patched["body"]["osVersion"], "10.0.26100.1");
    assert!(patched["headers"]["ETag"].as_str().is_some());
    assert_eq!(step(&answer, "3")["status"], 204);
    assert!(step(&answer, "3").get("body").is_none());
    // Ran after the delete: only the created event is left.
    assert_eq!(step(&answer, "4")["status"], 200);
    // Not JSON (text/plain): base64, as Graph encodes such bodies.
    assert_eq!(step(&answer, "4")["body"], "MQ==");
    let listed = step(&answer, "5");
    assert_eq!(listed["status"], 200, "{listed}");
    assert_eq!(listed["body"]["value"].as_array().unwrap().len(), 1);
    let missing = step(&answer, "6");
    assert_eq!(missing["status"], 404);
    assert_eq!(missing["body"]["error"]["code"], "ResourceNotFound");
    // The steps' writes are real.
    assert_eq!(app.count().await, 1);
}

#[tokio::test]
async fn a_step_whose_dependency_failed_answers_424_and_does_not_run() {
    let app = spawn_app().await;
    let body = json!({"requests": [
        {"id": "a", "method": "PATCH", "url": "/deviceManagement/autopilotEvents/missing",
         "headers": {"Content-Type": "application/json"}, "body": {"osVersion": "x"}},
        {"id": "b", "method": "POST", "url": "/deviceManagement/autopilotEvents",
         "headers": {"Content-Type": "application/json"}, "body": {}, "dependsOn": ["a"]},
        {"id": "c", "method": "POST", "url": "/deviceManagement/autopilotEvents",
         "headers": {"Content-Type": "application/json"}, "body": {}, "dependsOn": ["B"]}
    ]});
    let answer: Value = batch(&app, &app.token, &body).await.json().await.unwrap();
    assert_eq!(step(&answer, "a")["status"], 404);
    assert_eq!(step(&answer, "b")["status"], 424);
    assert_eq!(
        step(&answer, "b")["body"]["error"]["code"],
        "FailedDependency"
    );
    assert_eq!(step(&answer, "c")["status"], 424);
    assert_eq!(app.count().await, 0);
}

#[tokio::test]
async fn malformed_batches_are_refused_whole_and_run_nothing() {
    let app = spawn_app().await;
    let post = |id: &str| {
        json!({"id": id, "method": "POST", "url": "/deviceManagement/autopilotEvents",
               "headers": {"Content-Type": "application/json"}, "body": {}})
    };
    let too_many: Vec<Value> = (0..21).map(|n| post(&n.to_string())).collect();
    let cases = [
        json!({"requests": too_many}),
        json!({"requests": []}),
        json!({"nothing": []}),
        json!({"requests": [post("x"), post("X")]}),
        json!({"requests": [{"id": "1", "method": "POST", "url": "/deviceManagement/autopilotEvents", "body": {}}]}),
        json!({"requests": [post("1"), {"id": "2", "method": "GET", "url": "/deviceManagement/autopilotEvents", "dependsOn": ["9"]}]}),
        json!({"requests": [
            {"id": "1", "method": "GET", "url": "/deviceManagement/autopilotEvents", "dependsOn": ["2"]},
            {"id": "2", "method": "GET", "url": "/deviceManagement/autopilotEvents", "dependsOn": ["1"]}]}),
        json!({"requests": [post("1"), {"id": "2", "method": "TRACE", "url": "/deviceManagement/autopilotEvents"}]}),
        json!({"requests": [post("1"), {"id": "2", "url": "/deviceManagement/autopilotEvents"}]}),
    ];
    for case in cases {
        let response = batch(&app, &app.token, &case).await;
        let message = assert_graph_error(response, 400, "BadRequest").await;
        assert!(!message.is_empty());
    }
    assert_eq!(app.count().await, 0);
}

#[tokio::test]
async fn steps_are_authorised_tenant_scoped_and_throttled_on_their_own() {
    let app = spawn_app_with(Options {
        throttling: "intune",
        ..Options::default()
    })
    .await;
    let mine = app.create_event(json!({})).await;
    let mine_id = mine["id"].as_str().unwrap();
    // Without a token the batch itself is refused.
    let response = app
        .client
        .post(format!("{}/$batch", app.root))
        .json(&json!({"requests": [{"id": "1", "method": "GET", "url": "/deviceManagement/autopilotEvents"}]}))
        .send()
        .await
        .unwrap();
    assert_graph_error(response, 401, "InvalidAuthenticationToken").await;
    // A reader may read in a batch but not write; another tenant sees nothing of ours.
    let reader = mint(&app.data_dir, "fabrikam", "reader", &["--role", READ_ONLY]);
    let body = json!({"requests": [
        {"id": "r", "method": "GET", "url": format!("/deviceManagement/autopilotEvents/{mine_id}")},
        {"id": "w", "method": "POST", "url": "/deviceManagement/autopilotEvents",
         "headers": {"Content-Type": "application/json"}, "body": {}}
    ]});
    let answer: Value = batch(&app, &reader, &body).await.json().await.unwrap();
    assert_eq!(step(&answer, "r")["status"], 404);
    assert_eq!(step(&answer, "w")["status"], 403);
    // Writes past the app's limit of 100 per window are 429 inside a 200 (windows are 20 s, so a
    // window may begin mid-way; then up to 200 get through).
    let posts: Vec<Value> = (0..20)
        .map(|n| {
            json!({"id": n.to_string(), "method": "POST", "url": "/deviceManagement/autopilotEvents",
                   "headers": {"Content-Type": "application/json"}, "body": {}})
        })
        .collect();
    let mut throttled = None;
    for _ in 0..11 {
        let response = batch(&app, &app.token, &json!({"requests": posts})).await;
        assert_eq!(response.status(), 200);
        let answer: Value = response.json().await.unwrap();
        if let Some(step) = answer["responses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|step| step["status"] == 429)
        {
            throttled = Some(step.clone());
            break;
        }
    }
    let throttled = throttled.expect("some step was throttled");
    assert!(
        throttled["headers"]["Retry-After"].as_str().is_some(),
        "{throttled}"
    );
    assert_eq!(throttled["body"]["error"]["code"], "TooManyRequests");
}

#[tokio::test]
async fn a_batch_cannot_hold_a_batch_and_absolute_urls_use_their_path() {
    let app = spawn_app().await;
    let body = json!({"requests": [
        {"id": "1", "method": "POST", "url": "/$batch", "headers": {"Content-Type": "application/json"}, "body": {"requests": []}},
        {"id": "2", "method": "GET", "url": "https://graph.microsoft.com/beta/deviceManagement/autopilotEvents"}
    ]});
    let answer: Value = batch(&app, &app.token, &body).await.json().await.unwrap();
    assert_eq!(step(&answer, "1")["status"], 400);
    // The official Python SDK sends absolute URLs, version segment included.
    assert_eq!(step(&answer, "2")["status"], 200, "{answer}");
    assert!(step(&answer, "2")["body"]["value"].is_array());
}

#[tokio::test]
async fn a_batch_step_never_reaches_the_batch_endpoint_however_its_url_is_spelled() {
    let app = spawn_app().await;
    let inner = json!({"requests": [{"id": "a", "method": "GET", "url": "/deviceManagement/autopilotEvents"}]});
    let spellings = [
        "/$batch",
        "$batch",
        "/%24batch",
        "/%24BATCH",
        "/$Batch",
        "/beta/$batch",
        "/beta/%24batch",
        "/v1.0/$batch",
        "https://graph.microsoft.com/beta/$batch",
        "https://graph.microsoft.com/beta/%24batch",
        "/$batch?x=1",
    ];
    let requests: Vec<Value> = spellings
        .iter()
        .enumerate()
        .map(|(index, url)| {
            json!({"id": index.to_string(), "method": "POST", "url": url,
                   "headers": {"Content-Type": "application/json"}, "body": inner})
        })
        .collect();
    let answer: Value = batch(&app, &app.token, &json!({"requests": requests}))
        .await
        .json()
        .await
        .unwrap();
    for (index, url) in spellings.iter().enumerate() {
        let answered = step(&answer, &index.to_string());
        assert!(
            answered["status"] == 400 || answered["status"] == 404,
            "{url}: {answered}"
        );
        assert!(
            answered["body"]["error"]["code"].is_string(),
            "{url}: {answered}"
        );
        assert!(
            answered["body"]["responses"].is_null(),
            "{url} ran a nested batch"
        );
    }
}
