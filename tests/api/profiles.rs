//! The production profile (reports-and-sync.md B): each quirk on the wire, under `--profile graph`
//! and one at a time, the flag > file > profile order, the admin view and the usage errors.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::exports::{REPORT, create_job, jobs_url};
use crate::helpers::*;

fn with(extra: &[&str]) -> Options {
    Options {
        extra: extra.iter().map(|flag| flag.to_string()).collect(),
        ..Options::default()
    }
}

async fn create_recent(app: &TestApp, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for n in 0..count {
        let event = app
            .create_event(
                json!({"eventDateTime": days_ago(1), "deviceSerialNumber": format!("SN{n:04}")}),
            )
            .await;
        ids.push(event["id"].as_str().unwrap().to_string());
    }
    ids
}

#[tokio::test]
async fn the_graph_profile_serves_pages_of_50_whatever_top_says() {
    let app = spawn_app_with(with(&["--profile", "graph"])).await;
    let ids = create_recent(&app, 120).await;
    let first = app
        .get_json(&format!("{}?$top=100", app.events_url()))
        .await;
    assert_eq!(first["value"].as_array().unwrap().len(), 50);
    let next = first["@odata.nextLink"]
        .as_str()
        .expect("a nextLink, not a 400");
    assert!(next.contains("top=100"), "{next}");
    let walked = app
        .pages(&format!("{}?$top=100", app.events_url()))
        .values()
        .await;
    assert_eq!(ids_of(&walked), ids);
    // The default page is min(--page-size, maxPageSize); $top below it is honoured.
    let default = app.get_json(&app.events_url()).await;
    assert_eq!(default["value"].as_array().unwrap().len(), 50);
    let small = app.get_json(&format!("{}?$top=7", app.events_url())).await;
    assert_eq!(small["value"].as_array().unwrap().len(), 7);
    // Any collection: details and export jobs too.
    let details = app
        .get_json(&format!("{}?$top=1000", app.details_url(&ids[0])))
        .await;
    assert!(details["value"].as_array().unwrap().len() <= 50);
    // Emulator: $top up to 1000 as asked.
    let emulator = spawn_app().await;
    create_recent(&emulator, 60).await;
    let page = emulator
        .get_json(&format!("{}?$top=60", emulator.events_url()))
        .await;
    assert_eq!(page["value"].as_array().unwrap().len(), 60);
    assert!(page.get("@odata.nextLink").is_none());
}

#[tokio::test]
async fn orderby_is_refused_ignored_or_honoured_as_the_quirk_says() {
    let reject = spawn_app_with(with(&["--profile", "graph"])).await;
    create_recent(&reject, 3).await;
    let response = reject
        .get(&format!(
            "{}?$orderby=eventDateTime%20desc,id",
            reject.events_url()
        ))
        .await;
    let message = assert_graph_error(response, 400, "BadRequest").await;
    assert_eq!(
        message,
        "The query specified in the URI is not valid. The property 'eventDateTime' cannot be used in the $orderby query option."
    );
    let ignore = spawn_app_with(Options {
        page_size: 2,
        ..with(&["--quirk", "orderBy=ignore"])
    })
    .await;
    let ids = create_recent(&ignore, 5).await;
    let url = format!("{}?$orderby=deviceSerialNumber%20desc", ignore.events_url());
    let first = ignore.get_json(&url).await;
    assert!(
        first["@odata.nextLink"]
            .as_str()
            .unwrap()
            .contains("$orderby=deviceSerialNumber%20desc")
    );
    assert_eq!(
        ids_of(&ignore.pages(&url).values().await),
        ids,
        "insertion order"
    );
    let honour = spawn_app().await;
    let ids = create_recent(&honour, 5).await;
    let sorted = honour
        .pages(&url.replace(&ignore.root, &honour.root))
        .values()
        .await;
    let mut reversed = ids.clone();
    reversed.reverse();
    assert_eq!(ids_of(&sorted), reversed);
}

#[tokio::test]
async fn dollarless_options_and_type_cast_paths_follow_their_quirks() {
    let app = spawn_app_with(with(&[
        "--quirk",
        "dollarless=ignore",
        "--quirk",
        "typeCastPaths=reject",
    ]))
    .await;
    create_recent(&app, 8).await;
    let page = app.get_json(&format!("{}?top=5", app.events_url())).await;
    assert_eq!(
        page["value"].as_array().unwrap().len(),
        8,
        "top=5 is not applied"
    );
    let page = app.get_json(&format!("{}?$top=5", app.events_url())).await;
    assert_eq!(page["value"].as_array().unwrap().len(), 5);
    let cast = format!(
        "{}?$filter=microsoft.graph.deviceManagementAutopilotEvent/deviceSerialNumber%20eq%20'SN0001'",
        app.events_url()
    );
    let message = assert_graph_error(app.get(&cast).await, 400, "BadRequest").await;
    assert!(
        message.contains("microsoft.graph.deviceManagementAutopilotEvent/deviceSerialNumber"),
        "{message}"
    );
    let emulator = spawn_app().await;
    create_recent(&emulator, 8).await;
    let page = emulator
        .get_json(&format!("{}?top=5", emulator.events_url()))
        .await;
    assert_eq!(page["value"].as_array().unwrap().len(), 5);
    let page = emulator
        .get_json(
            &cast
                .replace(&app.root, &emulator.root)
                .replace("MICROSOFT", "microsoft"),
        )
        .await;
    assert_eq!(page["value"].as_array().unwrap().len(), 1);
}

/// Which of `n` injected 429s carried Retry-After.
async fn retry_after_pattern(extra: &[&str], n: usize) -> Vec<bool> {
    let app = spawn_app_with(with(extra)).await;
    let rule =
        json!({"path": "/beta/deviceManagement/autopilotEvents", "status": 429, "retryAfter": 2});
    add_fault(&app, &admin_token(&app), &rule).await;
    let mut pattern = Vec::new();
    for _ in 0..n {
        let response = app.get(&app.events_url()).await;
        assert_eq!(response.status(), 429);
        pattern.push(response.headers().contains_key("retry-after"));
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["error"]["code"], "TooManyRequests",
            "the body is unchanged"
        );
    }
    pattern
}

#[tokio::test]
async fn retry_after_is_omitted_at_the_seeded_rate_reproducibly() {
    let flags = ["--profile", "graph", "--quirk", "seed=42"];
    let first = retry_after_pattern(&flags, 80).await;
    let second = retry_after_pattern(&flags, 80).await;
    assert_eq!(
        first, second,
        "the same seed, the same 429s without Retry-After"
    );
    let omitted = first.iter().filter(|present| !**present).count();
    assert!(
        (8..=35).contains(&omitted),
        "about a quarter of 80: {omitted}"
    );
    let other = retry_after_pattern(&["--profile", "graph", "--quirk", "seed=43"], 80).await;
    assert_ne!(first, other);
    let never = retry_after_pattern(&[], 20).await;
    assert!(never.iter().all(|present| *present));
}

#[tokio::test]
async fn retention_hides_old_events_everywhere_and_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::fresh(dir.path()).await;
    let mut app = start_on(&storage, &with(&["--quirk", "retentionDays=30"])).await;
    let recent = app
        .create_event(json!({"eventDateTime": days_ago(2), "deviceSerialNumber": "RECENT"}))
        .await;
    let created = app
        .post_json(
            &app.events_url(),
            &json!({"eventDateTime": days_ago(45), "deviceSerialNumber": "OLD",
                    "policyStatusDetails": [{"displayName": "p"}]}),
        )
        .await;
    assert_eq!(created.status(), 201, "POSTing an old event works");
    let old: Value = created.json().await.unwrap();
    let old_id = old["id"].as_str().unwrap();
    let listed = app.pages(&app.events_url()).values().await;
    assert_eq!(ids_of(&listed), [recent["id"].as_str().unwrap()]);
    assert_eq!(app.count().await, 1);
    let old_url = app.event_url(old_id);
    assert_graph_error(app.get(&old_url).await, 404, "ResourceNotFound").await;
    assert_graph_error(
        app.get(&app.details_url(old_id)).await,
        404,
        "ResourceNotFound",
    )
    .await;
    assert_graph_error(
        app.patch_json(&old_url, &json!({"deviceSerialNumber": "X"}))
            .await,
        404,
        "ResourceNotFound",
    )
    .await;
    assert_graph_error(app.delete(&old_url).await, 404, "ResourceNotFound").await;
    let filtered = app
        .get_json(&format!(
            "{}?$filter=deviceSerialNumber%20eq%20'OLD'",
            app.events_url()
        ))
        .await;
    assert_eq!(filtered["value"], json!([]));
    // Batches go through the same paths.
    let batch = app
        .post_json(
            &format!("{}/$batch", app.root),
            &json!({"requests": [{"id": "1", "method": "GET", "url": format!("/deviceManagement/autopilotEvents/{old_id}")}]}),
        )
        .await;
    let batch: Value = batch.json().await.unwrap();
    assert_eq!(batch["responses"][0]["status"], 404);
    // Exports leave it out.
    let job = create_job(
        &app,
        json!({"reportName": REPORT, "select": ["DeviceSerialNumber"]}),
    )
    .await;
    let done = crate::exports::wait_for_job(&app, job["id"].as_str().unwrap()).await;
    let (_, content) = crate::exports::download(&app, done["url"].as_str().unwrap()).await;
    assert_eq!(content, b"\xEF\xBB\xBFDeviceSerialNumber\r\nRECENT\r\n");
    // Nothing was deleted: without the quirk it is all there, details too.
    assert_eq!(app.terminate().await.code(), Some(0));
    let app = start_on(&storage, &Options::default()).await;
    assert_eq!(app.count().await, 2);
    let details = app.get_json(&app.details_url(old_id)).await;
    assert_eq!(details["value"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn export_jobs_wait_and_show_their_url_one_read_late() {
    let app = spawn_app_with(with(&[
        "--quirk",
        "exportDelay=2",
        "--quirk",
        "exportUrlLag=true",
    ]))
    .await;
    let job = create_job(&app, json!({"reportName": REPORT})).await;
    let started = std::time::Instant::now();
    let url = format!("{}/{}", jobs_url(&app), job["id"].as_str().unwrap());
    let mut completed_reads = Vec::new();
    loop {
        let job = app.get_json(&url).await;
        let status = job["status"].as_str().unwrap().to_string();
        if status == "notStarted" {
            assert!(completed_reads.is_empty());
        } else {
            assert!(
                started.elapsed() >= Duration::from_millis(1900),
                "notStarted at least 2 s"
            );
        }
        if status == "completed" {
            completed_reads.push(job["url"].clone());
            if completed_reads.len() == 3 {
                break;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(60));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        completed_reads[0],
        Value::Null,
        "the first completed read has no url"
    );
    assert!(completed_reads[1].is_string());
    assert_eq!(completed_reads[1], completed_reads[2]);
}

#[tokio::test]
async fn the_effective_profile_is_readable_and_flags_beat_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("quirks.toml");
    std::fs::write(
        &file,
        "maxPageSize = 20\norderBy = \"ignore\"\nretryAfterOmitted = 0.5\n",
    )
    .unwrap();
    let app = spawn_app_with(with(&[
        "--profile",
        "graph",
        "--quirks",
        arg(&file),
        "--quirk",
        "maxPageSize=10",
    ]))
    .await;
    let response = app
        .client
        .get(format!("{}/graphpilot/profile", app.base()))
        .bearer_auth(admin_token(&app))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let profile: Value = response.json().await.unwrap();
    assert_eq!(
        profile,
        json!({"profile": "graph", "quirks": {
            "maxPageSize": 10, "orderBy": "ignore", "dollarless": "accept",
            "typeCastPaths": "accept", "retryAfterOmitted": 0.5, "retentionDays": 30,
            "exportDelay": 5, "exportUrlLag": true, "seed": 0}})
    );
    let denied = app
        .client
        .get(format!("{}/graphpilot/profile", app.base()))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_graph_error(denied, 403, "Forbidden").await;
    let emulator = spawn_app().await;
    let profile: Value = emulator
        .client
        .request(
            Method::GET,
            format!("{}/graphpilot/profile", emulator.base()),
        )
        .bearer_auth(admin_token(&emulator))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(profile["profile"], "emulator");
    assert_eq!(profile["quirks"]["maxPageSize"], 1000);
    assert_eq!(profile["quirks"]["orderBy"], "honour");
    assert_eq!(profile["quirks"]["retentionDays"], 0);
}

#[tokio::test]
async fn an_unknown_profile_quirk_or_value_exits_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let bad_file = dir.path().join("bad.toml");
    std::fs::write(&bad_file, "maxPageSize = 50\nnoSuchQuirk = 1\n").unwrap();
    let data_dir = dir.path().join("data");
    for (flags, named) in [
        (vec!["--profile", "production"], "production"),
        (vec!["--quirk", "pageSize=5"], "pageSize"),
        (vec!["--quirk", "maxPageSize=1001"], "1001"),
        (vec!["--quirk", "orderBy=sorted"], "sorted"),
        (vec!["--quirk", "exportUrlLag=maybe"], "maybe"),
        (vec!["--quirks", arg(&bad_file)], "noSuchQuirk"),
    ] {
        let mut args = vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            arg(&data_dir),
        ];
        args.extend(flags.iter().copied());
        let output = graphpilot(&args);
        assert_eq!(output.status.code(), Some(2), "{flags:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(named), "{flags:?}: {stderr}");
    }
}
