//! `GET /metrics`: Prometheus text that counts what real traffic did, by route template.

use serde_json::json;

use crate::helpers::*;

/// The value of the series `name` whose labels include every `labels` pair (0 if none).
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} "))
        })
        .filter(|line| {
            labels
                .iter()
                .all(|(key, value)| line.contains(&format!("{key}=\"{value}\"")))
        })
        .map(|line| line.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

async fn scrape(app: &TestApp) -> String {
    let response = app.get_own("/metrics").await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    response.text().await.unwrap()
}

#[tokio::test]
async fn metrics_count_the_requests_writes_and_refusals_that_traffic_produced() {
    let app = spawn_app().await;
    let event = app
        .create_event(json!({"deviceSerialNumber": "SN-M1"}))
        .await;
    app.create_event(json!({"deviceSerialNumber": "SN-M2"}))
        .await;
    let url = app.event_url(event["id"].as_str().unwrap());
    for _ in 0..3 {
        assert_eq!(app.get(&url).await.status(), 200);
    }
    assert_eq!(app.get(&app.event_url("missing")).await.status(), 404);
    let anonymous = app.client.get(app.events_url()).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let text = scrape(&app).await;
    let entity = "/beta/deviceManagement/autopilotEvents/{id}";
    let collection = "/beta/deviceManagement/autopilotEvents";
    let requests = "graphpilot_http_requests_total";
    assert_eq!(
        sample(
            &text,
            requests,
            &[("route", entity), ("method", "GET"), ("status", "200")]
        ),
        3.0,
        "{text}"
    );
    assert_eq!(
        sample(&text, requests, &[("route", entity), ("status", "404")]),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            requests,
            &[("route", collection), ("method", "POST"), ("status", "201")]
        ),
        2.0
    );
    assert_eq!(
        sample(
            &text,
            requests,
            &[("route", collection), ("method", "GET"), ("status", "401")]
        ),
        1.0
    );
    // No raw ids in labels: one series per route.
    assert!(!text.contains(event["id"].as_str().unwrap()));
    assert!(!text.contains("missing"));
    assert_eq!(
        sample(
            &text,
            "graphpilot_http_request_duration_seconds_count",
            &[("route", entity), ("method", "GET")]
        ),
        4.0
    );
    // Two acknowledged writes, in one or two group commits.
    let writes = sample(&text, "graphpilot_write_batch_size_sum", &[]);
    assert_eq!(writes, 2.0, "{text}");
    assert!(sample(&text, "graphpilot_write_commit_duration_seconds_count", &[]) >= 1.0);
    assert_eq!(sample(&text, "graphpilot_database_up", &[]), 1.0);
}

#[tokio::test]
async fn metrics_count_throttled_and_faulted_answers_and_can_require_an_admin_token() {
    let app = spawn_app_with(Options {
        extra: vec!["--metrics-token".into()],
        throttling: "intune",
        ..Options::default()
    })
    .await;
    let anonymous = app.get_own("/metrics").await;
    assert_graph_error(anonymous, 401, "InvalidAuthenticationToken").await;
    let graph = app
        .client
        .get(format!("{}/metrics", app.base()))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_graph_error(graph, 403, "Forbidden").await;
    // Intune allows 100 writes per app per tenant per 20-second window: past it they are
    // throttled. 250 writes see at least 50 refused even if they straddle two windows.
    let mut throttled = 0;
    for n in 0..250 {
        let response = app
            .post_json(
                &app.events_url(),
                &json!({"deviceSerialNumber": format!("T-{n}")}),
            )
            .await;
        if response.status() == 429 {
            throttled += 1;
        }
    }
    assert!(throttled >= 10, "{throttled}");
    let text = app
        .client
        .get(format!("{}/metrics", app.base()))
        .bearer_auth(admin_token(&app))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        sample(
            &text,
            "graphpilot_http_refused_total",
            &[
                ("route", "/beta/deviceManagement/autopilotEvents"),
                ("kind", "throttled")
            ]
        ),
        f64::from(throttled),
        "{text}"
    );
}
