//! The official Microsoft Graph JavaScript client (`@microsoft/microsoft-graph-client`, from npm,
//! unmodified) over HTTPS: a token from the token endpoint, then create, get, filter, PageIterator,
//! PATCH, $batch, delete and a 404 as GraphError.

use std::path::Path;

use crate::helpers::*;

#[tokio::test]
async fn the_official_javascript_client_runs_its_scenario_over_https() {
    let server = spawn_sdk_server().await;
    let sdk_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/js");
    assert!(
        sdk_dir
            .join("node_modules/@microsoft/microsoft-graph-client")
            .exists(),
        "the SDK is not installed: run `npm ci --prefix tests/sdk/js` (scripts/test does)"
    );
    server
        .run_scenario(
            Path::new("node"),
            "crud.mjs",
            &sdk_dir,
            &[("NODE_EXTRA_CA_CERTS", &server.ca)],
            "ok delete and 404 as GraphError",
        )
        .await;
}
