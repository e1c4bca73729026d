//! The official Microsoft Graph beta SDK for Python (`msgraph-beta-sdk`, from PyPI, unmodified)
//! with azure-identity's `ClientSecretCredential` pointed at graphpilot's authority, over HTTPS:
//! token endpoint → create, get, filter, PageIterator, PATCH, $batch, a report export job read
//! back with zipfile and csv, delete, 404.

use std::path::Path;

use crate::helpers::*;

#[tokio::test]
async fn the_official_python_sdk_runs_its_scenario_over_https() {
    let server = spawn_sdk_server().await;
    let sdk_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/python");
    let python = sdk_dir.join(".venv/bin/python");
    assert!(
        python.exists(),
        "the SDK is not installed: run scripts/test, or python3 -m venv tests/sdk/python/.venv && \
         tests/sdk/python/.venv/bin/pip install -r tests/sdk/python/requirements.txt"
    );
    let page_file = server.app.data_dir.join("page-written-by-the-sdk.json");
    // httpx (the SDK) reads SSL_CERT_FILE, requests (azure-identity's sync parts)
    // REQUESTS_CA_BUNDLE; aiohttp (its async transport) uses the SSL_CERT_FILE default too.
    server
        .run_scenario(
            &python,
            "scenario.py",
            &sdk_dir,
            &[
                ("GRAPHPILOT_PAGE_FILE", &page_file),
                ("SSL_CERT_FILE", &server.ca),
                ("REQUESTS_CA_BUNDLE", &server.ca),
            ],
            "ok delete and 404 as ODataError",
        )
        .await;
    let app = &server.app;

    // The page the SDK wrote (its own serialisation: Python-style durations, microsecond
    // times) imports into another tenant, ids and values kept.
    stdout_of(graphpilot_on(
        &app.storage,
        &["import"],
        &["--tenant", "restored", arg(&page_file)],
    ));
    let token = mint(&app.data_dir, "restored", "reader", &["--role", READ_ONLY]);
    let page: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&page_file).unwrap()).unwrap();
    let written = page["value"].as_array().unwrap();
    assert_eq!(written.len(), 40);
    for event in written.iter().take(5) {
        let id = event["id"].as_str().unwrap();
        let restored = graphpilot_get(app, &token, &format!("{}/{id}", app.events_url())).await;
        assert_eq!(restored["deviceSerialNumber"], event["deviceSerialNumber"]);
        assert_eq!(restored["deploymentState"], event["deploymentState"]);
        assert_eq!(restored["deploymentDuration"], "PT0S");
    }
}

/// GET over the server's HTTPS with its CA (the test's client has no TLS roots of its own).
async fn graphpilot_get(app: &TestApp, token: &str, url: &str) -> serde_json::Value {
    let ca = reqwest::Certificate::from_pem(graphpilot_cert(app).as_bytes()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let url = url.replace("127.0.0.1", "localhost");
    let response = client.get(&url).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status(), 200, "GET {url}");
    response.json().await.unwrap()
}
