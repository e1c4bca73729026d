//! Server-driven paging with opaque keyset `$skiptoken`s (api.md §8).

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::helpers::*;

async fn create_many(app: &TestApp, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for n in 0..count {
        let event = app
            .create_event(json!({"deviceSerialNumber": format!("SN-{n:04}")}))
            .await;
        ids.push(event["id"].as_str().unwrap().to_string());
    }
    ids
}

/// Follows next links from `url`, returning every id and the number of pages.
async fn walk(app: &TestApp, url: &str) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    let mut walk = app.pages(url);
    while let Some(page) = walk.next().await {
        ids.extend(ids_of(page["value"].as_array().unwrap()));
    }
    let pages = walk.read;
    (ids, pages)
}

#[tokio::test]
async fn the_collection_is_served_in_pages_of_the_configured_size_with_absolute_next_links() {
    let app = spawn_app_with(Options {
        page_size: 7,
        ..Options::default()
    })
    .await;
    let created = create_many(&app, 30).await;
    let first = app.get_json(&app.events_url()).await;
    assert_eq!(first["value"].as_array().unwrap().len(), 7);
    assert_eq!(
        first["@odata.context"],
        format!("{}/$metadata#deviceManagement/autopilotEvents", app.root)
    );
    let next = first["@odata.nextLink"].as_str().unwrap();
    assert!(
        next.starts_with(&format!(
            "{}/deviceManagement/autopilotEvents?$skiptoken=",
            app.root
        )),
        "{next}"
    );
    let (ids, pages) = walk(&app, &app.events_url()).await;
    assert_eq!(ids, created, "every event once, in creation order");
    assert_eq!(pages, 5);
}

#[tokio::test]
async fn top_sets_the_page_size_and_count_appears_on_every_page() {
    let app = spawn_app().await;
    let created = create_many(&app, 12).await;
    let url = format!("{}?$top=5&$count=true", app.events_url());
    let first = app.get_json(&url).await;
    assert_eq!(first["@odata.count"], 12);
    let next = first["@odata.nextLink"].as_str().unwrap();
    assert!(
        next.contains("$top=5") && next.contains("$count=true"),
        "{next}"
    );
    let second = app.get_json(next).await;
    assert_eq!(second["@odata.count"], 12);
    let (ids, pages) = walk(&app, &url).await;
    assert_eq!((ids, pages), (created, 3));
    let exact = app.get_json(&format!("{}?top=12", app.events_url())).await;
    assert!(
        exact.get("@odata.nextLink").is_none(),
        "a full last page has no next link"
    );
}

#[tokio::test]
async fn a_walk_sees_no_duplicates_or_gaps_while_others_insert_and_delete() {
    let app = spawn_app_with(Options {
        page_size: 10,
        ..Options::default()
    })
    .await;
    let created = create_many(&app, 60).await;
    let mut seen = Vec::new();
    let mut pages = app.pages(&app.events_url());
    let mut deleted = HashSet::new();
    let mut inserted = Vec::new();
    while let Some(page) = pages.next().await {
        seen.extend(ids_of(page["value"].as_array().unwrap()));
        // Between pages: another client deletes an event not yet seen and adds a new one.
        if let Some(victim) = created
            .iter()
            .rev()
            .find(|id| !seen.contains(id) && !deleted.contains(*id))
        {
            assert_eq!(app.delete(&app.event_url(victim)).await.status(), 204);
            deleted.insert(victim.clone());
        }
        inserted.push(
            app.create_event(json!({})).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no duplicates");
    for id in created.iter().filter(|id| !deleted.contains(*id)) {
        assert!(seen.contains(id), "no gaps: {id}");
    }
}

#[tokio::test]
async fn tampered_or_foreign_skiptokens_are_refused() {
    let app = spawn_app_with(Options {
        page_size: 2,
        ..Options::default()
    })
    .await;
    create_many(&app, 5).await;
    let first = app.get_json(&app.events_url()).await;
    let next = first["@odata.nextLink"].as_str().unwrap().to_string();
    let token = next.split("$skiptoken=").nth(1).unwrap().to_string();
    let mut tampered = token.clone().into_bytes();
    tampered[1] = if tampered[1] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    for url in [
        format!("{}?$skiptoken={tampered}", app.events_url()),
        format!("{}?$skiptoken=garbage", app.events_url()),
        // The same token with other options is another query.
        format!("{}?$top=3&$skiptoken={token}", app.events_url()),
    ] {
        let message = assert_graph_error(app.get(&url).await, 400, "BadRequest").await;
        assert!(message.contains("$skiptoken"), "{message}");
    }
    let fabrikam = mint(
        &app.data_dir,
        "fabrikam",
        "app-one",
        &["--role", READ_WRITE],
    );
    let response = app
        .client
        .get(&next)
        .bearer_auth(&fabrikam)
        .send()
        .await
        .unwrap();
    assert_graph_error(response, 400, "BadRequest").await;
}

#[tokio::test]
async fn bad_query_options_are_400_naming_the_option() {
    let app = spawn_app().await;
    for (query, fragment) in [
        ("$top=0", "$top"),
        ("$top=1001", "$top"),
        ("$top=-1", "$top"),
        ("$skip=x", "$skip"),
        ("$count=maybe", "$count"),
        ("$search=abc", "$search"),
        ("$frobnicate=1", "$frobnicate"),
        ("$select=nope", "nope"),
        ("$top=%G1", "percent"),
    ] {
        let response = app.get(&format!("{}?{query}", app.events_url())).await;
        let message = assert_graph_error(response, 400, "BadRequest").await;
        assert!(message.contains(fragment), "{query}: {message}");
    }
    let page: Value = app
        .get_json(&format!("{}?customParam=1", app.events_url()))
        .await;
    assert_eq!(page["value"], json!([]), "custom options are ignored");
}

#[tokio::test]
async fn select_projects_and_names_itself_in_the_context() {
    let app = spawn_app().await;
    let event = app
        .create_event(json!({"deviceSerialNumber": "SN", "osVersion": "10"}))
        .await;
    let page = app
        .get_json(&format!(
            "{}?$select=deviceSerialNumber,osVersion",
            app.events_url()
        ))
        .await;
    assert_eq!(
        page["@odata.context"],
        format!(
            "{}/$metadata#deviceManagement/autopilotEvents(deviceSerialNumber,osVersion)",
            app.root
        )
    );
    let item = &page["value"][0];
    assert_eq!(item["id"], event["id"]);
    assert_eq!(item["deviceSerialNumber"], "SN");
    assert_eq!(
        item["@odata.type"],
        "#microsoft.graph.deviceManagementAutopilotEvent"
    );
    assert!(item.get("eventDateTime").is_none());
}

/// Pages of events are served from cached entities where they can be (docs/performance.md):
/// a page must never show a version that its filter would not have chosen, nor miss a write
/// acknowledged before it was asked for, while writes move events in and out of the filter.
#[tokio::test]
async fn a_filtered_page_matches_its_filter_and_every_acknowledged_write_while_writes_race_it() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for n in 0..24 {
        let event = app
            .create_event(
                json!({"deviceSerialNumber": format!("RACE-{n:02}"), "deploymentState": "failure"}),
            )
            .await;
        ids.push(event["id"].as_str().unwrap().to_string());
    }
    let failures = format!(
        "{}?$filter=deploymentState%20eq%20'failure'&$top=100",
        app.events_url()
    );
    let page_ids = |page: &Value| -> HashSet<String> {
        let values = page["value"].as_array().unwrap();
        for value in values {
            assert_eq!(
                value["deploymentState"], "failure",
                "a page of failures showed {value}"
            );
        }
        ids_of(values).into_iter().collect()
    };
    let mut failing: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(page_ids(&app.get_json(&failures).await), failing);
    let done = std::cell::Cell::new(false);
    let writer = async {
        for round in 0..120 {
            let id = &ids[(round * 7) % ids.len()];
            let state = if failing.contains(id) {
                "success"
            } else {
                "failure"
            };
            let response = app
                .patch_json(&app.event_url(id), &json!({"deploymentState": state}))
                .await;
            assert_eq!(response.status(), 200);
            if state == "failure" {
                failing.insert(id.clone());
            } else {
                failing.remove(id);
            }
            // Acknowledged: the very next page shows it.
            assert_eq!(
                page_ids(&app.get_json(&failures).await),
                failing,
                "round {round}"
            );
        }
        done.set(true);
    };
    let reader = async {
        let mut pages = 0;
        while !done.get() {
            page_ids(&app.get_json(&failures).await);
            pages += 1;
        }
        pages
    };
    let ((), pages) = tokio::join!(writer, reader);
    assert!(pages > 0);
}
