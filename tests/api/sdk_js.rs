//! The official Microsoft Graph JavaScript client (`@microsoft/microsoft-graph-client`, from npm,
//! unmodified) over HTTPS: a token from the token endpoint, then create, get, filter, PageIterator,
//! PATCH, $batch, delete and a 404 as GraphError.

use std::path::Path;

use crate::helpers::*;

#[tokio::test]
async fn the_official_javascript_client_runs_its_scenario_over_https() {
    // The server lives as long as `_app` is bound.
    let SdkServer {
        app: _app,
        base,
        client_id,
        secret,
        ca,
    } = spawn_sdk_server().await;
    let sdk_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/js");
    assert!(
        sdk_dir
            .join("node_modules/@microsoft/microsoft-graph-client")
            .exists(),
        "the SDK is not installed: run `npm ci --prefix tests/sdk/js` (scripts/test does)"
    );
    let output = tokio::process::Command::new("node")
        .arg("crud.mjs")
        .current_dir(&sdk_dir)
        .env("GRAPHPILOT_BASE", &base)
        .env("GRAPHPILOT_TENANT", "contoso")
        .env("GRAPHPILOT_CLIENT_ID", &client_id)
        .env("GRAPHPILOT_CLIENT_SECRET", &secret)
        .env("NODE_EXTRA_CA_CERTS", &ca)
        .output()
        .await
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "SDK scenario failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("ok delete and 404 as GraphError"),
        "{stdout}"
    );
}
