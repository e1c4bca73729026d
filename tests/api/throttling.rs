//! Intune's limits (api.md §12): a throttled request is 429 with Retry-After and has no effect.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn the_101st_write_in_a_window_is_throttled_and_changes_nothing() {
    let app = spawn_app_with(Options {
        throttling: "intune",
        ..Options::default()
    })
    .await;
    let mut created = 0;
    let mut throttled = None;
    for _ in 0..101 {
        let response = app.post_json(&app.events_url(), &json!({})).await;
        match response.status().as_u16() {
            201 => created += 1,
            429 => {
                throttled = Some(response);
                break;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    // Windows are 20 s long: if one began mid-burst the app may get up to 200 writes through.
    let response = match throttled {
        Some(response) => response,
        None => loop {
            let response = app.post_json(&app.events_url(), &json!({})).await;
            if response.status() == 429 {
                break response;
            }
            created += 1;
            assert!(created <= 200, "never throttled");
        },
    };
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    assert_graph_error(response, 429, "TooManyRequests").await;
    assert_eq!(
        app.count().await,
        created,
        "the throttled POST created nothing"
    );
    // Another app of the same tenant still has write budget.
    let other = mint(&app.data_dir, "contoso", "app-two", &["--role", READ_WRITE]);
    let response = app
        .client
        .post(app.events_url())
        .bearer_auth(&other)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
}
