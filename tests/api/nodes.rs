//! Several nodes on one PostgreSQL database serve the same data at once: writes, ETags, paging
//! tokens and tokens minted for one node all hold on the other. Runs in the PostgreSQL pass of the
//! suite (on SQLite there is one node per file).

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

/// Two servers on one fresh PostgreSQL database, each with its own data directory (so its own
/// local key: anything shared must come through the database).
struct Nodes {
    a: TestApp,
    b: TestApp,
    database: String,
    _directories: [tempfile::TempDir; 2],
}

/// `None` on the SQLite pass: there one server owns one file.
async fn two_nodes(options: Options) -> Option<Nodes> {
    let dir_a = tempfile::tempdir().unwrap();
    let storage_a = Storage::fresh(dir_a.path()).await;
    let Some(database) = storage_a.database.clone() else {
        eprintln!("two-node tests run only on PostgreSQL (set GRAPHPILOT_TEST_POSTGRES)");
        return None;
    };
    let dir_b = tempfile::tempdir().unwrap();
    let storage_b = Storage {
        data_dir: dir_b.path().to_path_buf(),
        database: Some(database.clone()),
    };
    // Both start at once on the empty database: migrations and the key publication must not race.
    let (a, b) = tokio::join!(
        start_on(&storage_a, &options),
        start_on(&storage_b, &options)
    );
    Some(Nodes {
        a,
        b,
        database,
        _directories: [dir_a, dir_b],
    })
}

#[tokio::test]
async fn two_nodes_on_one_database_serve_the_same_data_keys_etags_and_cursors() {
    let options = Options {
        page_size: 3,
        ..Options::default()
    };
    let Some(Nodes { a, b, database, .. }) = two_nodes(options).await else {
        return;
    };
    let minted_elsewhere = tempfile::tempdir().unwrap();
    let token = mint(
        minted_elsewhere.path(),
        "contoso",
        "app-one",
        &["--role", READ_WRITE, "--database", &database],
    );
    let call = |app: &TestApp, method: Method, url: String| {
        app.client.request(method, url).bearer_auth(&token)
    };

    // A write on A is read on B, at once.
    let created: Value = call(&a, Method::POST, a.events_url())
        .json(&json!({"deviceSerialNumber": "NODE-A"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();
    let on_b = call(&b, Method::GET, b.event_url(id)).send().await.unwrap();
    assert_eq!(
        on_b.status(),
        200,
        "the token minted for the database works on B"
    );
    let on_b: Value = on_b.json().await.unwrap();
    assert_eq!(on_b["deviceSerialNumber"], "NODE-A");
    assert_eq!(on_b["@odata.etag"], created["@odata.etag"]);

    // An ETag issued by A guards a PATCH on B; once used it is stale on A.
    let etag = created["@odata.etag"].as_str().unwrap().to_string();
    let patched = call(&b, Method::PATCH, b.event_url(id))
        .header("if-match", &etag)
        .json(&json!({"osVersion": "from-b"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    let stale = call(&a, Method::PATCH, a.event_url(id))
        .header("if-match", &etag)
        .json(&json!({"osVersion": "from-a"}))
        .send()
        .await
        .unwrap();
    assert_graph_error(stale, 412, "PreconditionFailed").await;

    // Concurrent PATCHes with one ETag, half to each node: exactly one wins.
    let current: Value = call(&a, Method::GET, a.event_url(id))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let etag = current["@odata.etag"].as_str().unwrap().to_string();
    let statuses = concurrent_statuses((0..16).map(|n| {
        let node = if n % 2 == 0 { &a } else { &b };
        call(node, Method::PATCH, node.event_url(id))
            .header("if-match", etag.clone())
            .json(&json!({"osVersion": format!("race-{n}")}))
            .send()
    }))
    .await;
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

    // Without If-Match, concurrent PATCHes on both nodes all succeed (none is lost to a race).
    let mut attempts = Vec::new();
    for n in 0..16 {
        let node = if n % 2 == 0 { &a } else { &b };
        let request = call(node, Method::PATCH, node.event_url(id))
            .json(&json!({"targetedAppCount": n}))
            .send();
        attempts.push(tokio::spawn(request));
    }
    for attempt in attempts {
        assert_eq!(attempt.await.unwrap().unwrap().status(), 200);
    }

    // A next link issued by A continues on B.
    for n in 0..7 {
        call(&b, Method::POST, b.events_url())
            .json(&json!({"deviceSerialNumber": format!("NODE-B-{n}")}))
            .send()
            .await
            .unwrap();
    }
    let first: Value = call(
        &a,
        Method::GET,
        format!("{}?$orderby=deviceSerialNumber", a.events_url()),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let next = first["@odata.nextLink"].as_str().unwrap();
    let on_b = next.replace(&a.root, &b.root);
    let second = call(&b, Method::GET, on_b).send().await.unwrap();
    assert_eq!(second.status(), 200);
    let second: Value = second.json().await.unwrap();
    let serials: Vec<&str> = first["value"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["value"].as_array().unwrap())
        .map(|e| e["deviceSerialNumber"].as_str().unwrap())
        .collect();
    assert_eq!(
        serials,
        [
            "NODE-A", "NODE-B-0", "NODE-B-1", "NODE-B-2", "NODE-B-3", "NODE-B-4"
        ]
    );
}

#[tokio::test]
async fn two_nodes_together_admit_no_more_than_the_limit() {
    let options = Options {
        throttling: "intune",
        ..Options::default()
    };
    let Some(Nodes { a, b, database, .. }) = two_nodes(options).await else {
        return;
    };
    let token = mint(
        a.data_dir.as_path(),
        "contoso",
        "app-one",
        &["--role", READ_WRITE, "--database", &database],
    );
    // Start in a fresh 20-second window so the burst cannot straddle two.
    let into_window = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        % 20_000;
    if into_window > 12_000 {
        tokio::time::sleep(std::time::Duration::from_millis(
            20_100 - into_window as u64,
        ))
        .await;
    }
    let mut admitted = 0;
    let mut throttled = 0;
    for n in 0..160 {
        let node = if n % 2 == 0 { &a } else { &b };
        let response = node
            .client
            .post(node.events_url())
            .bearer_auth(&token)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            201 => admitted += 1,
            429 => {
                assert!(response.headers().contains_key("retry-after"));
                throttled += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    // The app's write limit is 100 per window; nodes may leave a claimed chunk unused, never exceed.
    assert!((90..=100).contains(&admitted), "admitted {admitted}");
    assert_eq!(admitted + throttled, 160);
    let count: u64 = a.count_as(&token).await;
    assert_eq!(count, admitted, "throttled writes created nothing");
}

#[tokio::test]
async fn a_dashboard_session_opened_on_one_node_reads_and_ends_on_the_other() {
    let Some(Nodes { a, b, database, .. }) = two_nodes(Options::default()).await else {
        return;
    };
    let minted_elsewhere = tempfile::tempdir().unwrap();
    let token = mint(
        minted_elsewhere.path(),
        "contoso",
        "app-one",
        &["--role", READ_WRITE, "--database", &database],
    );
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // The code printed for node a is stored in the shared database: node b takes it.
    let link = stdout_of(graphpilot_on(
        &a.storage,
        &["dashboard"],
        &["--tenant", "contoso", "--url", &a.base()],
    ));
    let on_b = link.trim().replace(&a.base(), &b.base());
    let response = client.get(&on_b).send().await.unwrap();
    assert_eq!(response.status(), 303);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    // …and the code is used up on every node.
    assert_eq!(client.get(link.trim()).send().await.unwrap().status(), 401);
    let summary = |node: &TestApp| {
        client
            .get(format!("{}/graphpilot/analytics/summary", node.base()))
            .header("cookie", &cookie)
            .send()
    };
    assert_eq!(summary(&a).await.unwrap().status(), 200);
    assert_eq!(summary(&b).await.unwrap().status(), 200);
    // A stuck page's next link from one node continues on the other.
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    for _ in 0..3 {
        let response = client
            .post(a.events_url())
            .bearer_auth(&token)
            .json(&json!({"deploymentState": "inProgress", "eventDateTime": now}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }
    let read = |url: String| client.get(url).bearer_auth(&token).send();
    let first: Value = read(format!("{}/graphpilot/analytics/stuck?top=2", a.base()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let next = first["nextLink"]
        .as_str()
        .unwrap()
        .replace(&a.base(), &b.base());
    let second: Value = read(next).await.unwrap().json().await.unwrap();
    assert_eq!(second["value"].as_array().unwrap().len(), 1);
    assert_eq!(second["asOf"], first["asOf"]);
    // Signing out on b ends the session on a too.
    let response = client
        .post(format!("{}/dashboard/signout", b.base()))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(summary(&a).await.unwrap().status(), 401);
}

#[tokio::test]
async fn an_export_job_made_on_one_node_is_polled_and_downloaded_on_the_other() {
    let Some(mut nodes) = two_nodes(Options::default()).await else {
        return;
    };
    // One token for both: signed with the key the nodes share through the database.
    let minted_elsewhere = tempfile::tempdir().unwrap();
    let token = mint(
        minted_elsewhere.path(),
        "contoso",
        "app-one",
        &["--role", READ_WRITE, "--database", &nodes.database],
    );
    nodes.a.token = token.clone();
    nodes.b.token = token;
    for n in 0..20 {
        nodes
            .a
            .create_event(json!({"deviceSerialNumber": format!("NODE-{n}")}))
            .await;
    }
    let job = crate::exports::create_job(
        &nodes.a,
        json!({"reportName": crate::exports::REPORT, "select": ["DeviceSerialNumber"]}),
    )
    .await;
    // B polls the job A runs and serves its file.
    let done = crate::exports::wait_for_job(&nodes.b, job["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "completed");
    let url = done["url"].as_str().unwrap();
    assert!(
        url.starts_with(&nodes.b.base()),
        "the link names the host B was read at"
    );
    let (_, content) = crate::exports::download(&nodes.b, url).await;
    let text = String::from_utf8(content).unwrap();
    assert_eq!(text.lines().count(), 21);
    let on_a = url.replace(&nodes.b.base(), &nodes.a.base());
    let (_, same) = crate::exports::download(&nodes.a, &on_a).await;
    assert_eq!(same, text.into_bytes());
}
