//! The official Microsoft Graph JavaScript client (`@microsoft/microsoft-graph-client`, from npm,
//! unmodified) drives create, get, PATCH, paging and delete against the running server.

use std::path::Path;

use crate::helpers::*;

#[tokio::test]
async fn the_official_javascript_client_creates_reads_pages_patches_and_deletes() {
    let app = spawn_app().await;
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
        .env("GRAPHPILOT_BASE", app.base())
        .env("GRAPHPILOT_TOKEN", &app.token)
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
