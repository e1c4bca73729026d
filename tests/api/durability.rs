//! Nothing acknowledged is lost: kill -9 in the middle of a write burst, then restart on the same
//! data directory; SIGTERM finishes in-flight requests and exits 0.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

/// What the acknowledged writes left: per event id, its last acknowledged osVersion, or `None`
/// once its delete was acknowledged. Events whose last write got no answer are left out (it may
/// or may not have happened).
type Acknowledged = Arc<Mutex<HashMap<String, Option<String>>>>;

/// Starts `writers` tasks that create events, PATCH them and delete some, each on its own events,
/// until the server goes away; the map holds what was acknowledged once every task has stopped.
fn write_burst(app: &TestApp, writers: usize) -> (Acknowledged, Vec<tokio::task::JoinHandle<()>>) {
    let acknowledged: Acknowledged = Arc::new(Mutex::new(HashMap::new()));
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let client = app.client.clone();
        let url = app.events_url();
        let token = app.token.clone();
        let acknowledged = acknowledged.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine: Vec<String> = Vec::new();
            for n in 0_u64.. {
                let version = format!("W{writer}-{n}");
                // Two creates, then a PATCH, then a delete of the oldest: every kind of write
                // is in flight when the server dies.
                let (request, target) = match n % 4 {
                    0 | 1 => (client.post(&url).json(&json!({"osVersion": version})), None),
                    2 if !mine.is_empty() => {
                        let id = mine[mine.len() - 1].clone();
                        let request = client
                            .patch(format!("{url}/{id}"))
                            .json(&json!({"osVersion": version}));
                        (request, Some(id))
                    }
                    3 if mine.len() > 1 => {
                        let id = mine.remove(0);
                        (client.delete(format!("{url}/{id}")), Some(id))
                    }
                    _ => continue,
                };
                let deleting = n % 4 == 3;
                if let Some(id) = &target {
                    // Until an answer comes, this event's state is unknown.
                    acknowledged.lock().unwrap().remove(id);
                }
                let Ok(response) = request.bearer_auth(&token).send().await else {
                    return; // refused or closed by the shutdown: a clean end
                };
                let status = response.status();
                assert!(!status.is_server_error(), "writer {writer} got {status}");
                if !status.is_success() {
                    return;
                }
                let id = match target {
                    Some(id) => id,
                    None => {
                        let Ok(body) = response.json::<Value>().await else {
                            return;
                        };
                        let id = body["id"].as_str().unwrap().to_string();
                        mine.push(id.clone());
                        id
                    }
                };
                let state = (!deleting).then_some(version);
                acknowledged.lock().unwrap().insert(id, state);
            }
        }));
    }
    (acknowledged, tasks)
}

async fn assert_all_present(app: &TestApp, acknowledged: &HashMap<String, Option<String>>) {
    let (mut live, mut deleted) = (0, 0);
    for (id, state) in acknowledged {
        let response = app.get(&app.event_url(id)).await;
        match state {
            Some(version) => {
                assert_eq!(response.status(), 200, "acknowledged event {id} is gone");
                let event: Value = response.json().await.unwrap();
                assert_eq!(event["osVersion"], version.as_str(), "{id}");
                live += 1;
            }
            None => {
                assert_eq!(response.status(), 404, "acknowledged delete of {id} undone");
                deleted += 1;
            }
        }
    }
    assert!(live > 0 && deleted > 0, "{live} live, {deleted} deleted");
    assert!(app.count().await >= live);
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

/// How often the entity cache was emptied because another connection committed, from /metrics.
async fn cache_clears(app: &TestApp) -> f64 {
    let text = app.get_own("/metrics").await.text().await.unwrap();
    text.lines()
        .filter(|line| line.starts_with("graphpilot_entity_cache_clears_total"))
        .map(|line| line.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

#[tokio::test]
async fn the_servers_own_writes_keep_the_cache_and_another_process_commit_empties_it() {
    let app = spawn_app().await;
    if app.storage.database.is_some() {
        return; // PostgreSQL has no entity cache: several nodes write.
    }
    let event = app.create_event(json!({"osVersion": "0"})).await;
    let url = app.event_url(event["id"].as_str().unwrap());
    // Commits made while the server started may have emptied the (then empty) cache once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = cache_clears(&app).await;
    // A second of the server's own writes, across several of the watch's polls.
    let until = std::time::Instant::now() + Duration::from_millis(1200);
    let mut n = 0;
    while std::time::Instant::now() < until {
        n += 1;
        let patched = app
            .request(reqwest::Method::PATCH, &url)
            .json(&json!({"osVersion": n.to_string()}))
            .send()
            .await
            .unwrap();
        assert_eq!(patched.status(), 200);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.get_json(&url).await["osVersion"], n.to_string());
    assert_eq!(
        cache_clears(&app).await,
        before,
        "the server's own commits emptied its cache"
    );
    write_behind_the_servers_back(&app, "UPDATE autopilot_events SET os_version = 'outside'").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while app.get_json(&url).await["osVersion"] != "outside" {
        assert!(
            std::time::Instant::now() < deadline,
            "still served the old row after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(cache_clears(&app).await > before);
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

/// A page asked for again is answered from the kept rendering only while nothing was written:
/// every write the server acknowledged since, and another process's within the cache's poll, is
/// in the next answer (and the nextLink still continues the page it belongs to).
#[tokio::test]
async fn a_page_asked_for_again_shows_every_write_made_since() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for (n, day) in ["2026-03-01", "2026-03-02", "2026-03-03"]
        .iter()
        .enumerate()
    {
        let event = app
            .create_event(
                json!({"osVersion": n.to_string(), "eventDateTime": format!("{day}T00:00:00Z")}),
            )
            .await;
        ids.push(event["id"].as_str().unwrap().to_string());
    }
    let page_url = format!(
        "{}?$orderby=eventDateTime%20desc&$top=2&$count=true",
        app.events_url()
    );
    let page = || async { app.get_json(&page_url).await };
    let versions = |page: &Value| -> Vec<String> {
        page["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|event| event["osVersion"].as_str().unwrap().to_string())
            .collect()
    };
    let first = page().await;
    assert_eq!(versions(&first), ["2", "1"]);
    assert_eq!(page().await, first, "the same request, the same answer");
    let next = app
        .get_json(first["@odata.nextLink"].as_str().unwrap())
        .await;
    assert_eq!(versions(&next), ["0"]);

    let patched = app
        .patch_json(&app.event_url(&ids[1]), &json!({"osVersion": "patched"}))
        .await;
    assert_eq!(patched.status(), 200);
    assert_eq!(versions(&page().await), ["2", "patched"]);

    let newest = app
        .create_event(json!({"osVersion": "new", "eventDateTime": "2026-03-04T00:00:00Z"}))
        .await;
    let after_post = page().await;
    assert_eq!(versions(&after_post), ["new", "2"]);
    assert_eq!(after_post["@odata.count"], 4);

    let deleted = app
        .delete(&app.event_url(newest["id"].as_str().unwrap()))
        .await;
    assert_eq!(deleted.status(), 204);
    let after_delete = page().await;
    assert_eq!(versions(&after_delete), ["2", "patched"]);
    assert_eq!(after_delete["@odata.count"], 3);

    let details_url = app.details_url(&ids[2]);
    assert_eq!(app.get_json(&details_url).await["value"], json!([]));
    let detail = app
        .post_json(&details_url, &json!({"displayName": "Wi-Fi profile"}))
        .await;
    assert_eq!(detail.status(), 201);
    assert_eq!(
        app.get_json(&details_url).await["value"][0]["displayName"],
        "Wi-Fi profile"
    );

    write_behind_the_servers_back(&app, "UPDATE autopilot_events SET os_version = 'outside'").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while versions(&page().await) != ["outside", "outside"] {
        assert!(
            std::time::Instant::now() < deadline,
            "still served the old page after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
