//! Fault injection: rules from `--faults FILE` and the admin API fail exactly the requests they
//! name, change no data, and are marked in the journal.

use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn every_third_create_fails_with_graphs_503_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("faults.toml");
    std::fs::write(
        &rules,
        r#"
[[rules]]
name = "flaky creates"
method = "POST"
path = "/beta/deviceManagement/autopilotEvents"
tenant = "contoso"
every = 3
status = 503
retryAfter = 7
"#,
    )
    .unwrap();
    let app = spawn_app_with(Options {
        extra: vec!["--faults".into(), rules.display().to_string()],
        ..Options::default()
    })
    .await;
    let mut statuses = Vec::new();
    let mut failed = Vec::new();
    for _ in 0..9 {
        let response = app.post_json(&app.events_url(), &json!({})).await;
        statuses.push(response.status().as_u16());
        if response.status() == 503 {
            assert_eq!(response.headers()["retry-after"], "7");
            failed.push(
                response.headers()["request-id"]
                    .to_str()
                    .unwrap()
                    .to_string(),
            );
            let message = assert_graph_error(response, 503, "ServiceUnavailable").await;
            assert!(message.contains("flaky creates"), "{message}");
        }
    }
    assert_eq!(statuses, [201, 201, 503, 201, 201, 503, 201, 201, 503]);
    assert_eq!(app.count().await, 6, "a failed create left nothing behind");
    // GETs are not matched.
    assert_eq!(app.get(&app.events_url()).await.status(), 200);
    // The journal marks the injected failures, not as throttling.
    let journal: Value = app
        .client
        .get(format!("{}/graphpilot/requests?status=503", app.base()))
        .bearer_auth(admin_token(&app))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entries = journal["value"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    for (entry, id) in entries.iter().zip(&failed) {
        assert_eq!(entry["faulted"], true);
        assert_eq!(entry["throttled"], false);
        assert_eq!(entry["requestId"], id.as_str());
    }
}

#[tokio::test]
async fn rules_are_added_listed_and_cleared_at_run_time() {
    let app = spawn_app().await;
    let admin = admin_token(&app);
    let faults_url = format!("{}/graphpilot/faults", app.base());
    // A rule for another tenant does not touch contoso; one for contoso's GETs does.
    for (rule, expected) in [
        (json!({"tenant": "fabrikam", "status": 500}), 201),
        (
            json!({"method": "GET", "tenant": "contoso", "status": 429}),
            201,
        ),
        (json!({"status": 404}), 400),
        (json!({"status": 500, "reset": true}), 400),
        (json!({"status": 500, "colour": "red"}), 400),
    ] {
        let response = app
            .client
            .post(&faults_url)
            .bearer_auth(&admin)
            .json(&rule)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected, "{rule}");
    }
    let throttled = app.get(&app.events_url()).await;
    assert_eq!(throttled.status(), 429);
    assert_eq!(throttled.headers()["retry-after"], "1");
    let listed: Value = app
        .client
        .get(&faults_url)
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rules = listed["value"].as_array().unwrap();
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[1]["fired"], 1);
    assert_eq!(rules[0]["fired"], 0);
    // Ordinary tokens may not manage faults.
    let refused = app
        .client
        .delete(&faults_url)
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_graph_error(refused, 403, "Forbidden").await;
    let cleared = app
        .client
        .delete(&faults_url)
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), 200);
    assert_eq!(app.get(&app.events_url()).await.status(), 200);
}

#[tokio::test]
async fn latency_delays_a_request_that_then_succeeds_and_reset_drops_the_connection() {
    let app = spawn_app().await;
    let admin = admin_token(&app);
    let add = |rule: Value| {
        let request = app
            .client
            .post(format!("{}/graphpilot/faults", app.base()))
            .bearer_auth(&admin)
            .json(&rule);
        async move { assert_eq!(request.send().await.unwrap().status(), 201) }
    };
    add(json!({"method": "POST", "latency": {"fixed": 300}})).await;
    let started = std::time::Instant::now();
    let created = app.post_json(&app.events_url(), &json!({})).await;
    assert_eq!(created.status(), 201);
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
    add(json!({"method": "GET", "path": "/beta/deviceManagement/*", "reset": true})).await;
    let dropped = app
        .client
        .get(app.events_url())
        .bearer_auth(&app.token)
        .send()
        .await;
    let failed = match dropped {
        Err(_) => true,
        Ok(response) => response.bytes().await.is_err(),
    };
    assert!(failed, "the connection should have been dropped");
    // The server is fine afterwards.
    let health = app.get_own("/healthz").await;
    assert_eq!(health.status(), 200);
}
