//! The emulator's controls (`/graphpilot/…` and the matching commands): reset, seed, export,
//! import and the request journal.

use serde_json::{Value, json};

use crate::helpers::*;

async fn admin(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = app
        .client
        .request(method, format!("{}{path}", app.base()))
        .bearer_auth(admin_token(app));
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

async fn seed(app: &TestApp, tenant: &str, body: Value) -> Value {
    let response = admin(
        app,
        reqwest::Method::POST,
        &format!("/graphpilot/tenants/{tenant}/seed"),
        Some(body),
    )
    .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn export(app: &TestApp, tenant: &str) -> String {
    let response = admin(
        app,
        reqwest::Method::GET,
        &format!("/graphpilot/tenants/{tenant}/export"),
        None,
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    response.text().await.unwrap()
}

fn count_in(app: &TestApp, tenant: &str) -> reqwest::RequestBuilder {
    let token = mint(&app.data_dir, tenant, "reader", &["--role", READ_ONLY]);
    app.client
        .get(format!("{}/$count", app.events_url()))
        .bearer_auth(token)
}

async fn events_in(app: &TestApp, tenant: &str) -> u64 {
    count_in(app, tenant)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .parse()
        .unwrap()
}

/// The export of `graphpilot seed`'s fleet for tenant contoso, seed 7, 40 events, end
/// 2026-11-01: the same bytes on every backend and machine.
const GOLDEN_SEED_EXPORT_SHA256: &str =
    "a5091f77fa5b4b701e3dd59a1365618755b8c1f81718a46388395667101541e4";

fn sha256(text: &str) -> String {
    use std::fmt::Write;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    digest.as_ref().iter().fold(String::new(), |mut out, byte| {
        let _ = write!(out, "{byte:02x}");
        out
    })
}

#[tokio::test]
async fn bad_admin_query_and_path_values_are_judged_only_after_the_caller() {
    let app = spawn_app().await;
    let admin = admin_token(&app);
    for (method, path) in [
        (reqwest::Method::GET, "/graphpilot/requests?top=lots"),
        (reqwest::Method::GET, "/graphpilot/requests?status=999999"),
        (reqwest::Method::GET, "/graphpilot/requests?after=-1"),
        (
            reqwest::Method::POST,
            "/graphpilot/tenants/contoso/import?onError=sometimes",
        ),
        (reqwest::Method::POST, "/graphpilot/tenants/%FF%FE/seed"),
        (reqwest::Method::DELETE, "/graphpilot/faults/%FF"),
    ] {
        let url = format!("{}{path}", app.base());
        let anonymous = app
            .client
            .request(method.clone(), &url)
            .send()
            .await
            .unwrap();
        assert_graph_error(anonymous, 401, "InvalidAuthenticationToken").await;
        let graph = app
            .client
            .request(method.clone(), &url)
            .bearer_auth(&app.token)
            .send()
            .await
            .unwrap();
        assert_graph_error(graph, 403, "Forbidden").await;
        let admitted = app
            .client
            .request(method, &url)
            .bearer_auth(&admin)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        let status = admitted.status().as_u16();
        assert!(status == 400 || status == 404, "{path}: {status}");
        assert_graph_error(
            admitted,
            status,
            if status == 400 {
                "BadRequest"
            } else {
                "ResourceNotFound"
            },
        )
        .await;
    }
}

#[tokio::test]
async fn admin_endpoints_refuse_graph_tokens_and_missing_ones() {
    let app = spawn_app().await;
    for (method, path) in [
        (reqwest::Method::DELETE, "/graphpilot/tenants/contoso"),
        (reqwest::Method::DELETE, "/graphpilot/tenants"),
        (reqwest::Method::POST, "/graphpilot/tenants/contoso/seed"),
        (reqwest::Method::GET, "/graphpilot/tenants/contoso/export"),
        (reqwest::Method::POST, "/graphpilot/tenants/contoso/import"),
        (reqwest::Method::GET, "/graphpilot/requests"),
    ] {
        let anonymous = app
            .client
            .request(method.clone(), format!("{}{path}", app.base()))
            .send()
            .await
            .unwrap();
        assert_graph_error(anonymous, 401, "InvalidAuthenticationToken").await;
        let graph_token = app
            .client
            .request(method, format!("{}{path}", app.base()))
            .bearer_auth(&app.token)
            .send()
            .await
            .unwrap();
        let message = assert_graph_error(graph_token, 403, "Forbidden").await;
        assert!(message.contains("graphpilot.Admin"), "{message}");
    }
    let openapi: Value = app
        .get_own("/graphpilot/openapi.json")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(openapi["openapi"], "3.0.3");
    assert!(openapi["paths"]["/graphpilot/tenants/{tenant}/import"].is_object());
}

#[tokio::test]
async fn reset_empties_one_tenant_and_leaves_the_others() {
    let app = spawn_app().await;
    seed(
        &app,
        "contoso",
        json!({"count": 30, "end": "2026-11-01T00:00:00Z"}),
    )
    .await;
    seed(
        &app,
        "fabrikam",
        json!({"count": 20, "end": "2026-11-01T00:00:00Z"}),
    )
    .await;
    let response = admin(
        &app,
        reqwest::Method::DELETE,
        "/graphpilot/tenants/contoso",
        None,
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["deletedEvents"], 30);
    assert_eq!(events_in(&app, "contoso").await, 0);
    assert_eq!(events_in(&app, "fabrikam").await, 20);
    // The command does the same beside the running server; --all empties everything.
    stdout_of(graphpilot_on(&app.storage, &["reset"], &["--all"]));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while events_in(&app, "fabrikam").await != 0 {
        assert!(std::time::Instant::now() < deadline, "reset --all not seen");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_seed_exports_the_same_bytes_on_every_backend_and_scenarios_shape_the_fleet() {
    let app = spawn_app().await;
    let seeded = seed(
        &app,
        "contoso",
        json!({"count": 40, "seed": 7, "end": "2026-11-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(seeded["events"], 40);
    let exported = export(&app, "contoso").await;
    assert_eq!(exported.lines().count(), 40);
    assert_eq!(
        sha256(&exported),
        GOLDEN_SEED_EXPORT_SHA256,
        "the seeded fleet changed; first line: {}",
        exported.lines().next().unwrap_or_default()
    );

    // A bad rollout: the last week's "ESP - Engineering" deployments mostly fail.
    seed(
        &app,
        "rollout",
        json!({"count": 3000, "seed": 1, "scenario": "badRollout", "end": "2026-11-01T00:00:00Z"}),
    )
    .await;
    let token = mint(&app.data_dir, "rollout", "reader", &["--role", READ_ONLY]);
    let count = |filter: &str| {
        let url = format!("{}/$count?$filter={filter}", app.events_url());
        let request = app.client.get(url).bearer_auth(&token);
        async move {
            request
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
                .parse::<u64>()
                .unwrap()
        }
    };
    let recent = "eventDateTime ge 2026-10-25T00:00:00Z and windows10EnrollmentCompletionPageConfigurationDisplayName eq 'ESP - Engineering'";
    let recent_total = count(recent).await;
    let recent_failed = count(&format!("{recent} and deploymentState eq 'failure'")).await;
    assert!(recent_total > 0);
    assert!(
        recent_failed * 2 > recent_total,
        "{recent_failed} of {recent_total} failed"
    );
}

#[tokio::test]
async fn export_reset_import_gives_back_the_same_responses() {
    let app = spawn_app().await;
    seed(
        &app,
        "contoso",
        json!({"count": 120, "end": "2026-11-01T00:00:00Z"}),
    )
    .await;
    let page = |app: &TestApp| {
        let url = format!(
            "{}?$top=120&$expand=policyStatusDetails&$orderby=eventDateTime desc",
            app.events_url()
        );
        let request = app.request(reqwest::Method::GET, &url);
        async move {
            let mut body: Value = request.send().await.unwrap().json().await.unwrap();
            strip_etags(&mut body);
            body
        }
    };
    let before = page(&app).await;
    let exported = export(&app, "contoso").await;
    admin(
        &app,
        reqwest::Method::DELETE,
        "/graphpilot/tenants/contoso",
        None,
    )
    .await;
    assert_eq!(app.count().await, 0);
    let response = app
        .client
        .post(format!("{}/graphpilot/tenants/contoso/import", app.base()))
        .bearer_auth(admin_token(&app))
        .header("content-type", "application/x-ndjson")
        .body(exported.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["imported"], 120);
    assert_eq!(page(&app).await, before);
    // Importing again changes nothing (upsert by id).
    let file = app.data_dir.join("contoso.ndjson");
    std::fs::write(&file, &exported).unwrap();
    stdout_of(graphpilot_on(
        &app.storage,
        &["import"],
        &["--tenant", "contoso", arg(&file)],
    ));
    assert_eq!(app.count().await, 120);
    assert_eq!(page(&app).await, before);
}

fn strip_etags(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.remove("@odata.etag");
            map.values_mut().for_each(strip_etags);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_etags),
        _ => {}
    }
}

#[tokio::test]
async fn a_corrupted_line_is_reported_with_its_number() {
    let app = spawn_app().await;
    let good = |id: &str| json!({"id": id, "deviceSerialNumber": format!("SN-{id}")}).to_string();
    let text = [
        good("e1"),
        good("e2"),
        "{\"id\": \"e3\", \"deploymentState\": \"exploded\"}".to_string(),
        good("e4"),
        "{not json".to_string(),
    ]
    .join("\n");
    let file = app.data_dir.join("broken.ndjson");
    std::fs::write(&file, &text).unwrap();
    let run = |on_error: &str| {
        graphpilot_on(
            &app.storage,
            &["import"],
            &["--tenant", "contoso", "--on-error", on_error, arg(&file)],
        )
    };
    // stop (the default): nothing is imported, and the first bad line is named.
    let stopped = run("stop");
    assert!(!stopped.status.success());
    let stderr = String::from_utf8_lossy(&stopped.stderr);
    assert!(
        stderr.contains("line 3") && stderr.contains("exploded"),
        "{stderr}"
    );
    assert_eq!(app.count().await, 0);
    // skip: the good ones are imported, both bad ones reported.
    let skipped = run("skip");
    assert!(skipped.status.success(), "{skipped:?}");
    let stderr = String::from_utf8_lossy(&skipped.stderr);
    assert!(
        stderr.contains("line 3") && stderr.contains("line 5"),
        "{stderr}"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while app.count().await != 3 {
        assert!(std::time::Instant::now() < deadline, "import not seen");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Over the API, the report carries the line numbers too.
    let response = app
        .client
        .post(format!(
            "{}/graphpilot/tenants/fabrikam/import?onError=skip",
            app.base()
        ))
        .bearer_auth(admin_token(&app))
        .body(text)
        .send()
        .await
        .unwrap();
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["imported"], 3);
    assert_eq!(report["skipped"], 2);
    assert_eq!(report["errors"][0]["at"], "line 3");
    assert_eq!(report["errors"][1]["at"], "line 5");
}

#[tokio::test]
async fn the_journal_records_a_throttled_request_and_a_404_with_their_request_ids() {
    let app = spawn_app_with(Options {
        throttling: "intune",
        ..Options::default()
    })
    .await;
    let missing = app.get(&app.event_url("no-such-event")).await;
    assert_eq!(missing.status(), 404);
    let missing_id = missing.headers()["request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let mut throttled_id = None;
    for _ in 0..250 {
        let response = app.post_json(&app.events_url(), &json!({})).await;
        if response.status() == 429 {
            throttled_id = Some(
                response.headers()["request-id"]
                    .to_str()
                    .unwrap()
                    .to_string(),
            );
            break;
        }
    }
    let throttled_id = throttled_id.expect("a write was throttled");
    let journal = |query: &str| {
        let url = format!("{}/graphpilot/requests?{query}", app.base());
        let request = app.client.get(url).bearer_auth(admin_token(&app));
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()["value"]
                .as_array()
                .unwrap()
                .clone()
        }
    };
    let not_found = journal("status=404&tenant=contoso").await;
    assert_eq!(not_found.len(), 1, "{not_found:?}");
    assert_eq!(not_found[0]["requestId"], missing_id.as_str());
    assert_eq!(not_found[0]["app"], "app-one");
    assert_eq!(
        not_found[0]["path"],
        "/beta/deviceManagement/autopilotEvents/no-such-event"
    );
    let throttled = journal("status=429").await;
    assert_eq!(throttled.len(), 1);
    assert_eq!(throttled[0]["requestId"], throttled_id.as_str());
    assert_eq!(throttled[0]["throttled"], true);
    assert_eq!(throttled[0]["method"], "POST");
    // The command shows the same entries.
    let base = app.base();
    let shown = stdout_of(graphpilot(&[
        "requests",
        "--url",
        &base,
        "--status",
        "404",
        "--data-dir",
        arg(&app.data_dir),
    ]));
    assert!(shown.contains(&missing_id));
}

#[tokio::test]
async fn export_writes_ndjson_a_graph_page_or_csv_and_the_page_imports_back() {
    let app = spawn_app().await;
    seed(
        &app,
        "contoso",
        json!({"count": 25, "end": "2026-11-01T00:00:00Z"}),
    )
    .await;
    let export_as = |format: &str| {
        let file = app.data_dir.join(format!("export.{format}"));
        stdout_of(graphpilot_on(
            &app.storage,
            &["export"],
            &[
                "--tenant",
                "contoso",
                "--format",
                format,
                "--output",
                arg(&file),
            ],
        ));
        std::fs::read_to_string(file).unwrap()
    };
    let ndjson = export_as("ndjson");
    assert_eq!(
        ndjson,
        export(&app, "contoso").await,
        "the command and the API agree"
    );
    let page: Value = serde_json::from_str(&export_as("json")).unwrap();
    assert_eq!(page["value"].as_array().unwrap().len(), 25);
    let csv = export_as("csv");
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header[0], "id");
    assert!(header.contains(&"deploymentState"));
    assert_eq!(lines.count(), 25);
    // The JSON page imports into another tenant as the same events.
    let file = app.data_dir.join("export.json");
    stdout_of(graphpilot_on(
        &app.storage,
        &["import"],
        &["--tenant", "copy", arg(&file)],
    ));
    assert_eq!(export(&app, "copy").await, ndjson);
}
