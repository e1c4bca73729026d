//! `graphpilot sync` (reports-and-sync.md C) against a second graphpilot playing production
//! (`serve --profile graph --tls`, an app registered): full and incremental pulls compared body
//! for body with the source, faults at run time, the lock, kill -9 and the run records.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

/// The source: production's profile over HTTPS, with an app for tenant contoso.
struct SourceServer {
    app: TestApp,
    /// `https://localhost:PORT`: the authority; the service root is this + `/beta`.
    base: String,
    client_id: String,
    secret: String,
    ca: PathBuf,
}

async fn source(extra: &[&str]) -> SourceServer {
    let mut flags = vec!["--tls", "--profile", "graph"];
    flags.extend_from_slice(extra);
    let mut app = spawn_app_with(Options {
        extra: flags.iter().map(|flag| flag.to_string()).collect(),
        ..Options::default()
    })
    .await;
    let (client_id, secret) = register_app(&app, "contoso");
    let ca = app.data_dir.join("source-ca.pem");
    std::fs::write(&ca, graphpilot_cert(&app)).unwrap();
    // The test's own requests to the source trust its CA too.
    app.client = client_trusting(&ca);
    let base = app.base().replace("127.0.0.1", "localhost");
    SourceServer {
        app,
        base,
        client_id,
        secret,
        ca,
    }
}

/// A local store of its own (SQLite file, or a fresh PostgreSQL database on that pass).
struct Local {
    storage: Storage,
    _dir: tempfile::TempDir,
}

async fn local() -> Local {
    let dir = tempfile::tempdir().unwrap();
    let local = Local {
        storage: Storage::fresh(dir.path()).await,
        _dir: dir,
    };
    // Created (and migrated) once, before processes open it side by side.
    assert!(runs(&local).is_empty());
    local
}

async fn clear_faults(source: &SourceServer, admin: &str) {
    // A new connection: the test's pooled one may have idled out during the run.
    let cleared = client_trusting(&source.ca)
        .delete(format!("{}/graphpilot/faults", source.app.base()))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    assert!(cleared.status().is_success());
}

fn sync_args(source: &SourceServer, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--source",
        &format!("{}/beta", source.base),
        "--authority",
        &source.base,
        "--tenant",
        "contoso",
        "--client-id",
        &source.client_id,
        "--ca-cert",
        arg(&source.ca),
    ]
    .iter()
    .map(|text| text.to_string())
    .collect();
    args.extend(extra.iter().map(|text| text.to_string()));
    args
}

/// Runs `graphpilot sync` to its end; its exit code.
/// `graphpilot sync ARGS` on the local store, the secret in its environment variable.
fn sync_command(local: &Local, args: &[String], secret: &str) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(binary());
    command
        .arg("sync")
        .args(local.storage.args())
        .args(args)
        .env("GRAPHPILOT_SYNC_CLIENT_SECRET", secret)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true);
    command
}

/// Runs `graphpilot sync` to its end (awaited: a test's own servers keep running meanwhile).
async fn sync(local: &Local, source: &SourceServer, extra: &[&str]) -> std::process::Output {
    sync_command(local, &sync_args(source, extra), &source.secret)
        .output()
        .await
        .expect("graphpilot sync runs")
}

fn runs(local: &Local) -> Vec<Value> {
    let output = graphpilot_on(&local.storage, &["sync", "--status", "--json"], &[]);
    let body: Value = serde_json::from_str(&stdout_of(output)).unwrap();
    body["value"].as_array().unwrap().clone()
}

/// The events of a tenant as the source serves them (with their details), without ETags.
async fn source_events(source: &SourceServer) -> BTreeMap<String, Value> {
    let client = client_trusting(&source.ca);
    let mut next = Some(format!(
        "{}/beta/deviceManagement/autopilotEvents?$expand=policyStatusDetails",
        source.base
    ));
    let mut events = BTreeMap::new();
    while let Some(url) = next.take() {
        let page: Value = client
            .get(&url)
            .bearer_auth(&source.app.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for event in page["value"].as_array().unwrap() {
            events.insert(event["id"].as_str().unwrap().to_string(), comparable(event));
        }
        next = page["@odata.nextLink"].as_str().map(str::to_string);
    }
    events
}

/// The local tenant's events through `graphpilot export` (NDJSON, details inline).
fn local_events(local: &Local) -> BTreeMap<String, Value> {
    let output = graphpilot_on(
        &local.storage,
        &["export"],
        &["--tenant", "contoso", "--format", "ndjson"],
    );
    stdout_of(output)
        .lines()
        .map(|line| {
            let event: Value = serde_json::from_str(line).unwrap();
            (
                event["id"].as_str().unwrap().to_string(),
                comparable(&event),
            )
        })
        .collect()
}

/// An event without annotations, its details sorted by id.
fn comparable(event: &Value) -> Value {
    let mut object = event.as_object().unwrap().clone();
    object.retain(|key, _| !key.starts_with("@odata.etag") && !key.contains("@odata.context"));
    let mut details: Vec<Value> = object
        .remove("policyStatusDetails")
        .and_then(|details| details.as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .map(|mut detail| {
            detail.as_object_mut().unwrap().remove("@odata.etag");
            detail
        })
        .collect();
    details.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    object.insert("policyStatusDetails".into(), Value::Array(details));
    Value::Object(object)
}

async fn fill(source: &SourceServer, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for n in 0..count {
        let event = source
            .app
            .create_event(json!({
                "deviceSerialNumber": format!("SRC-{n:04}"),
                "eventDateTime": days_ago((n % 20) as i64 + 1),
                "deploymentState": if n % 7 == 0 { "failure" } else { "success" },
                "policyStatusDetails": [{"displayName": format!("app {n}"), "policyType": "application"}],
            }))
            .await;
        ids.push(event["id"].as_str().unwrap().to_string());
    }
    ids
}

#[tokio::test]
async fn a_full_then_an_incremental_run_copy_the_source_and_keep_what_it_lost() {
    let source = source(&[]).await;
    let ids = fill(&source, 120).await;
    let local = local().await;
    let output = sync(&local, &source, &[]).await;
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let served = source_events(&source).await;
    assert_eq!(served.len(), 120);
    assert_eq!(
        local_events(&local),
        served,
        "every body as the source serves it"
    );
    let first = runs(&local);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["status"], "completed");
    assert_eq!(first[0]["mode"], "full");
    assert_eq!(first[0]["filterFrom"], Value::Null);
    assert_eq!(first[0]["fetched"], 120);
    assert_eq!(first[0]["upserted"], 120);
    assert_eq!(
        first[0]["pages"], 3,
        "pages of 50 from production's profile"
    );
    assert_eq!(first[0]["sourceTenant"], "contoso");
    assert_eq!(first[0]["source"], format!("{}/beta", source.base));
    assert!(first[0]["endDateTime"].is_string());
    let newest = served
        .values()
        .map(|event| event["eventDateTime"].as_str().unwrap().to_string())
        .max()
        .unwrap();
    assert_eq!(first[0]["watermark"], newest);

    // At the source: one changed, one deleted, one new.
    let changed = source
        .app
        .patch_json(
            &source.app.event_url(&ids[0]),
            &json!({"deploymentState": "successOnRetry"}),
        )
        .await;
    assert_eq!(changed.status(), 200);
    assert_eq!(
        source
            .app
            .delete(&source.app.event_url(&ids[1]))
            .await
            .status(),
        204
    );
    source
        .app
        .create_event(json!({"deviceSerialNumber": "SRC-NEW", "eventDateTime": days_ago(0)}))
        .await;
    let output = sync(&local, &source, &[]).await;
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let second = &runs(&local)[0];
    assert_eq!(second["mode"], "incremental");
    let from: jiff::Timestamp = second["filterFrom"].as_str().unwrap().parse().unwrap();
    let w: jiff::Timestamp = newest.parse().unwrap();
    assert_eq!(w.duration_since(from), jiff::SignedDuration::from_hours(48));
    let mut local_now = local_events(&local);
    assert_eq!(local_now.len(), 121, "the deleted event stays locally");
    assert!(local_now.remove(&ids[1]).is_some());
    assert_eq!(local_now, source_events(&source).await);
    assert_eq!(second["upserted"].as_i64().unwrap(), 2, "{second}");
    assert!(second["unchanged"].as_i64().unwrap() > 0);
    assert!(
        second["watermark"].as_str().unwrap() > newest.as_str(),
        "W moved to the new event"
    );
    // A run with nothing new: every event read again within the overlap is unchanged.
    assert_eq!(sync(&local, &source, &[]).await.status.code(), Some(0));
    let third = &runs(&local)[0];
    assert_eq!(third["upserted"], 0);
    assert_eq!(third["watermark"], second["watermark"]);
    // The admin API of a server on the local store shows the same records.
    let server = start_on(&local.storage, &Options::default()).await;
    let listed: Value = server
        .client
        .get(format!(
            "{}/graphpilot/sync/runs?tenant=contoso",
            server.base()
        ))
        .bearer_auth(admin_token(&server))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["value"].as_array().unwrap(), &runs(&local));
    assert_eq!(listed["value"].as_array().unwrap().len(), 3);
    // And its metrics, from the same records.
    let metrics = server.get_own("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("graphpilot_sync_runs{status=\"completed\"} 3"),
        "{metrics}"
    );
    let pages: i64 = listed["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["pages"].as_i64().unwrap())
        .sum();
    assert!(metrics.contains(&format!("graphpilot_sync_pages_total {pages}")));
    assert!(metrics.contains("graphpilot_sync_watermark_lag_seconds"));
}

#[tokio::test]
async fn a_run_waits_out_429s_and_503s_and_retries_resets_losing_nothing() {
    let source = source(&["--quirk", "retryAfterOmitted=0.5", "--quirk", "seed=3"]).await;
    fill(&source, 300).await;
    let admin = admin_token(&source.app);
    // A rule sees only the requests the rules before it let through.
    for rule in [
        json!({"method": "GET", "path": "/beta/deviceManagement/autopilotEvents*", "every": 2, "status": 429, "retryAfter": 1}),
        json!({"method": "GET", "path": "/beta/deviceManagement/autopilotEvents*", "every": 4, "status": 503, "retryAfter": 1}),
        json!({"method": "GET", "path": "/beta/deviceManagement/autopilotEvents*", "every": 3, "reset": true}),
    ] {
        add_fault(&source.app, &admin, &rule).await;
    }
    let local = local().await;
    let started = std::time::Instant::now();
    let output = sync(&local, &source, &[]).await;
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    clear_faults(&source, &admin).await;
    assert_eq!(local_events(&local), source_events(&source).await);
    let run = &runs(&local)[0];
    assert_eq!(run["status"], "completed");
    let errors = run["errors"].as_array().unwrap();
    let statuses: Vec<Value> = errors.iter().map(|error| error["status"].clone()).collect();
    assert!(statuses.contains(&json!(429)), "{statuses:?}");
    assert!(statuses.contains(&json!(503)), "{statuses:?}");
    assert!(
        statuses.contains(&Value::Null),
        "a dropped connection: {statuses:?}"
    );
    for error in errors {
        assert!(error["url"].as_str().unwrap().contains("/autopilotEvents"));
        assert!(error["dateTime"].is_string() && error["message"].is_string());
    }
    // Every failed attempt was waited out (1 s at least each).
    assert!(started.elapsed() >= Duration::from_millis(900 * errors.len() as u64));
}

#[tokio::test]
async fn a_second_run_into_the_same_tenant_exits_3_and_sigterm_stops_at_a_page_boundary() {
    let source = source(&[]).await;
    fill(&source, 60).await;
    let local = local().await;
    let mut child = sync_command(
        &local,
        &sync_args(&source, &["--every", "1h"]),
        &source.secret,
    )
    .spawn()
    .unwrap();
    // Wait for its first run to complete.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !runs(&local)
        .first()
        .is_some_and(|run| run["status"] == "completed")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the first run completes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second = sync(&local, &source, &[]).await;
    assert_eq!(second.status.code(), Some(3), "{second:?}");
    assert!(String::from_utf8_lossy(&second.stderr).contains("contoso"));
    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(runs(&local).len(), 1, "no second run of the hour");
    // The lock died with it: a run now goes ahead.
    assert_eq!(sync(&local, &source, &[]).await.status.code(), Some(0));
}

#[tokio::test]
async fn a_run_killed_mid_pull_keeps_its_pages_and_the_next_one_finishes_the_work() {
    let source = source(&[]).await;
    fill(&source, 200).await;
    let admin = admin_token(&source.app);
    let slow = json!({"method": "GET", "path": "/beta/deviceManagement/autopilotEvents*", "latency": {"fixed": 400}});
    add_fault(&source.app, &admin, &slow).await;
    let local = local().await;
    let mut child = sync_command(&local, &sync_args(&source, &[]), &source.secret)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while runs(&local)
        .first()
        .is_none_or(|run| run["pages"].as_i64().unwrap() < 1)
    {
        assert!(std::time::Instant::now() < deadline, "a page is stored");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().await.unwrap();
    let left = &runs(&local)[0];
    assert_eq!(left["status"], "running");
    let kept = local_events(&local).len();
    assert!((50..200).contains(&kept), "{kept}");
    assert_eq!(sync(&local, &source, &[]).await.status.code(), Some(0));
    clear_faults(&source, &admin).await;
    let all = runs(&local);
    assert_eq!(all[1]["status"], "interrupted");
    assert_eq!(all[1]["endDateTime"], Value::Null);
    assert_eq!(all[0]["status"], "completed");
    assert_eq!(
        all[0]["mode"], "full",
        "an interrupted run leaves no watermark"
    );
    assert_eq!(local_events(&local), source_events(&source).await);
}

#[tokio::test]
async fn bad_credentials_fail_the_run_at_once_and_the_record_says_why() {
    let source = source(&[]).await;
    let local = local().await;
    let mut args = sync_args(&source, &[]);
    let position = args.iter().position(|arg| arg == "--client-id").unwrap();
    args[position + 1] = "no-such-client".into();
    let output = sync_command(&local, &args, "wrong").output().await.unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("wrong"),
        "the secret is never printed: {stderr}"
    );
    let run = &runs(&local)[0];
    assert_eq!(run["status"], "failed");
    assert!(run["endDateTime"].is_string());
    let errors = run["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "token 4xx: no retries");
    assert!(
        errors[0]["url"]
            .as_str()
            .unwrap()
            .ends_with("/contoso/oauth2/v2.0/token")
    );
    // Untrusted certificate: fails at once too.
    let mut args = sync_args(&source, &[]);
    let position = args.iter().position(|arg| arg == "--ca-cert").unwrap();
    args.drain(position..position + 2);
    let output = sync_command(&local, &args, &source.secret)
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let run = &runs(&local)[0];
    assert_eq!(run["errors"].as_array().unwrap().len(), 1);
    assert_eq!(run["errors"][0]["status"], Value::Null);
    assert!(
        run["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("certificate")
    );
}

/// What the refusing proxy saw.
#[derive(Default)]
struct ProxyCounts {
    tokens: std::sync::atomic::AtomicUsize,
    refused_expand: std::sync::atomic::AtomicUsize,
    unauthorized: std::sync::atomic::AtomicUsize,
    details: std::sync::atomic::AtomicUsize,
}

/// A plain-HTTP proxy in front of the source that refuses `$expand` with 400 (as some Graph
/// resources do) and answers the first page request 401 (an expired token); everything else,
/// token requests included, goes to the source as it came.
async fn refusing_proxy(source: &SourceServer) -> (String, std::sync::Arc<ProxyCounts>) {
    use axum::body::Body;
    use axum::extract::{Request, State};
    use axum::response::Response;
    use std::sync::atomic::Ordering;
    let counts = std::sync::Arc::new(ProxyCounts::default());
    let upstream = source.base.clone();
    let client = client_trusting(&source.ca);
    type Shared = (reqwest::Client, String, std::sync::Arc<ProxyCounts>);
    async fn forward(
        State((client, upstream, counts)): State<Shared>,
        request: Request,
    ) -> Response {
        let path_and_query = request
            .uri()
            .path_and_query()
            .map(|pq| pq.as_str().to_string())
            .unwrap_or_default();
        let graph_error = |status: u16, code: &str, message: &str| {
            Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(Body::from(
                    json!({"error": {"code": code, "message": message}}).to_string(),
                ))
                .unwrap()
        };
        if path_and_query.contains("oauth2/v2.0/token") {
            counts.tokens.fetch_add(1, Ordering::SeqCst);
        } else if path_and_query.contains("expand") {
            counts.refused_expand.fetch_add(1, Ordering::SeqCst);
            return graph_error(
                400,
                "BadRequest",
                "Expand is not supported on this resource.",
            );
        } else if counts.unauthorized.fetch_add(1, Ordering::SeqCst) == 0 {
            return graph_error(
                401,
                "InvalidAuthenticationToken",
                "Lifetime validation failed, the token is expired.",
            );
        }
        if path_and_query.contains("/policyStatusDetails") {
            counts.details.fetch_add(1, Ordering::SeqCst);
        }
        let (parts, body) = request.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        let mut outgoing =
            client.request(parts.method.clone(), format!("{upstream}{path_and_query}"));
        for name in ["authorization", "content-type"] {
            if let Some(value) = parts.headers.get(name) {
                outgoing = outgoing.header(name, value.as_bytes());
            }
        }
        let answer = outgoing.body(bytes.to_vec()).send().await.unwrap();
        let mut response = Response::builder().status(answer.status().as_u16());
        for name in ["content-type", "request-id", "retry-after"] {
            if let Some(value) = answer.headers().get(name) {
                response = response.header(name, value.as_bytes());
            }
        }
        response
            .body(Body::from(answer.bytes().await.unwrap()))
            .unwrap()
    }
    let router =
        axum::Router::new()
            .fallback(forward)
            .with_state((client, upstream, counts.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (format!("http://{address}"), counts)
}

#[tokio::test]
async fn a_refused_expand_reads_details_event_by_event_and_a_401_gets_one_new_token() {
    use std::sync::atomic::Ordering;
    let source = source(&[]).await;
    fill(&source, 60).await;
    let (proxy, counts) = refusing_proxy(&source).await;
    let local = local().await;
    let mut args = sync_args(&source, &[]);
    for (flag, value) in [
        ("--source", format!("{proxy}/beta")),
        ("--authority", proxy.clone()),
    ] {
        let position = args.iter().position(|arg| arg == flag).unwrap();
        args[position + 1] = value;
    }
    // Awaited, not blocking: the proxy runs on this test's runtime.
    let output = sync_command(&local, &args, &source.secret)
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(
        counts.refused_expand.load(Ordering::SeqCst),
        1,
        "$expand asked once"
    );
    assert_eq!(
        counts.tokens.load(Ordering::SeqCst),
        2,
        "one new token after the 401"
    );
    assert_eq!(
        counts.details.load(Ordering::SeqCst),
        60,
        "details event by event"
    );
    assert_eq!(local_events(&local), source_events(&source).await);
}
