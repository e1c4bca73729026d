//! Nothing acknowledged is lost: kill -9 in the middle of a write burst, then restart on the same
//! data directory; SIGTERM finishes in-flight requests and exits 0.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

/// (id, deviceSerialNumber) of every acknowledged create.
type Acknowledged = Arc<Mutex<Vec<(String, String)>>>;

/// Starts `writers` tasks POSTing events until the server goes away; returns the acknowledged
/// (id, serial) pairs once every task has stopped.
fn write_burst(app: &TestApp, writers: usize) -> (Acknowledged, Vec<tokio::task::JoinHandle<()>>) {
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let client = app.client.clone();
        let url = app.events_url();
        let token = app.token.clone();
        let acknowledged = acknowledged.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0.. {
                let serial = format!("W{writer}-{n}");
                let sent = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({"deviceSerialNumber": serial, "deploymentState": "success"}))
                    .send()
                    .await;
                // A connection refused or closed by the shutdown is a clean end; a 5xx is not.
                let Ok(response) = sent else { return };
                assert!(
                    !response.status().is_server_error(),
                    "writer {writer} got {}",
                    response.status()
                );
                if response.status() != 201 {
                    return;
                }
                let Ok(body) = response.json::<Value>().await else {
                    return;
                };
                let id = body["id"].as_str().unwrap().to_string();
                acknowledged.lock().unwrap().push((id, serial));
            }
        }));
    }
    (acknowledged, tasks)
}

async fn assert_all_present(app: &TestApp, acknowledged: &[(String, String)]) {
    for (id, serial) in acknowledged {
        let event = app.get_json(&app.event_url(id)).await;
        assert_eq!(event["deviceSerialNumber"], serial.as_str());
    }
    assert!(app.count().await >= acknowledged.len() as u64);
}

#[tokio::test]
async fn every_acknowledged_write_survives_kill_9_mid_burst() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::fresh(dir.path()).await;
    let options = Options::default();
    let mut app = start_on(&storage, &options).await;
    let (acknowledged, tasks) = write_burst(&app, 16);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    app.kill_hard().await;
    for task in tasks {
        task.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > 50,
        "the burst wrote something ({})",
        acknowledged.len()
    );
    let restarted = start_on(&storage, &options).await;
    assert_all_present(&restarted, &acknowledged).await;
}

#[tokio::test]
async fn sigterm_under_load_finishes_requests_exits_0_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::fresh(dir.path()).await;
    let options = Options::default();
    let mut app = start_on(&storage, &options).await;
    let (acknowledged, tasks) = write_burst(&app, 32);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let status = app.terminate().await;
    assert!(status.success(), "exit status {status:?}");
    for task in tasks {
        task.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(!acknowledged.is_empty());
    let restarted = start_on(&storage, &options).await;
    assert_all_present(&restarted, &acknowledged).await;
}

#[tokio::test]
async fn a_change_committed_by_another_process_is_served_within_a_second() {
    let app = spawn_app().await;
    let event = app
        .create_event(json!({"deviceSerialNumber": "SN-OLD"}))
        .await;
    let url = app.event_url(event["id"].as_str().unwrap());
    assert_eq!(app.get_json(&url).await["deviceSerialNumber"], "SN-OLD");
    // Another process (here: this test) rewrites the row behind the server's back.
    write_behind_the_servers_back(
        &app,
        "UPDATE autopilot_events SET device_serial_number = 'SN-NEW'",
    )
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    loop {
        if app.get_json(&url).await["deviceSerialNumber"] == "SN-NEW" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still served the old row after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn if_match_is_judged_against_the_database_even_right_after_another_process_wrote() {
    let app = spawn_app().await;
    let event = app.create_event(json!({"osVersion": "1"})).await;
    let url = app.event_url(event["id"].as_str().unwrap());
    let old_etag = event["@odata.etag"].as_str().unwrap().to_string();
    write_behind_the_servers_back(&app, "UPDATE autopilot_events SET etag = 'W/\"external\"'")
        .await;
    // At once, before any cache could notice: the old ETag is stale, the new one current.
    let stale = app
        .request(reqwest::Method::PATCH, &url)
        .header("if-match", &old_etag)
        .json(&json!({"osVersion": "2"}))
        .send()
        .await
        .unwrap();
    assert_graph_error(stale, 412, "PreconditionFailed").await;
    let current = app
        .request(reqwest::Method::PATCH, &url)
        .header("if-match", "W/\"external\"")
        .json(&json!({"osVersion": "3"}))
        .send()
        .await
        .unwrap();
    assert_eq!(current.status(), 200);
}

/// Runs `statement` on the app's database from a connection of its own, as another process would.
async fn write_behind_the_servers_back(app: &TestApp, statement: &'static str) {
    let database =
        app.storage.database.clone().unwrap_or_else(|| {
            format!("sqlite://{}", app.data_dir.join("graphpilot.db").display())
        });
    sqlx::any::install_default_drivers();
    let mut connection = <sqlx::AnyConnection as sqlx::Connection>::connect(&database)
        .await
        .unwrap();
    sqlx::raw_sql(statement)
        .execute(&mut connection)
        .await
        .unwrap();
}
