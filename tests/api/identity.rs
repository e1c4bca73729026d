//! The Entra-shaped identity endpoints: app registrations, the client-credentials token endpoint,
//! discovery documents and JWKS.

use serde_json::Value;

use crate::helpers::*;

/// `graphpilot app …` against the app's storage; returns stdout.
fn app_command(app: &TestApp, args: &[&str]) -> (bool, String) {
    let output = graphpilot_on(&app.storage, &["app", args[0]], &args[1..]);
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

fn field(output: &str, name: &str) -> String {
    output
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in {output}"))
        .trim()
        .to_string()
}

async fn request_token(app: &TestApp, tenant: &str, form: &[(&str, &str)]) -> reqwest::Response {
    let body = form
        .iter()
        .map(|(key, value)| {
            format!(
                "{key}={}",
                percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC)
            )
        })
        .collect::<Vec<_>>()
        .join("&");
    app.client
        .post(format!("{}/{tenant}/oauth2/v2.0/token", app.base()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn oauth_error(response: reqwest::Response, status: u16, error: &str, code: u64) {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["error_codes"][0], code, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .starts_with(&format!("AADSTS{code}:")),
        "{body}"
    );
    assert!(body["trace_id"].as_str().is_some());
}

#[tokio::test]
async fn a_registered_app_gets_a_token_with_its_roles_and_uses_it_on_graph() {
    let app = spawn_app().await;
    let (ok, output) = app_command(
        &app,
        &[
            "add",
            "--tenant",
            "contoso",
            "--name",
            "reporting",
            "--permission",
            "DeviceManagementManagedDevices.Read.All",
        ],
    );
    assert!(ok, "{output}");
    let client_id = field(&output, "client id");
    let secret = field(&output, "client secret");
    let scope = "https://graph.microsoft.com/.default";
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", client_id.as_str()),
        ("client_secret", secret.as_str()),
        ("scope", scope),
    ];
    let response = request_token(&app, "contoso", &form).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_i64().unwrap() > 3000);
    let token = body["access_token"].as_str().unwrap();
    // The token reads (its role) but does not write.
    let read = app
        .client
        .get(app.events_url())
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    let write = app
        .client
        .post(app.events_url())
        .bearer_auth(token)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_graph_error(write, 403, "Forbidden").await;
    // HTTP Basic client authentication works too.
    let basic = app
        .client
        .post(format!("{}/contoso/oauth2/v2.0/token", app.base()))
        .basic_auth(&client_id, Some(&secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=client_credentials&scope={}",
            percent_encoding::utf8_percent_encode(scope, percent_encoding::NON_ALPHANUMERIC)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 200);

    // Listing never shows the secret.
    let (ok, listed) = app_command(&app, &["list"]);
    assert!(ok);
    assert!(
        listed.contains(&client_id) && !listed.contains(&secret),
        "{listed}"
    );

    // The wrong secret, another tenant, a scope without /.default, an unknown grant.
    let wrong = [
        ("grant_type", "client_credentials"),
        ("client_id", client_id.as_str()),
        ("client_secret", "not-the-secret"),
        ("scope", scope),
    ];
    oauth_error(
        request_token(&app, "contoso", &wrong).await,
        401,
        "invalid_client",
        7000215,
    )
    .await;
    oauth_error(
        request_token(&app, "fabrikam", &form).await,
        400,
        "unauthorized_client",
        700016,
    )
    .await;
    let mut bad_scope = form;
    bad_scope[3] = ("scope", "https://graph.microsoft.com/User.Read");
    oauth_error(
        request_token(&app, "contoso", &bad_scope).await,
        400,
        "invalid_scope",
        1002012,
    )
    .await;
    let mut bad_grant = form;
    bad_grant[0] = ("grant_type", "password");
    oauth_error(
        request_token(&app, "contoso", &bad_grant).await,
        400,
        "unsupported_grant_type",
        70003,
    )
    .await;
    oauth_error(
        request_token(&app, "contoso", &form[1..]).await,
        400,
        "invalid_request",
        900144,
    )
    .await;

    // Removed: the secret stops working.
    let (ok, output) = app_command(&app, &["remove", &client_id]);
    assert!(ok, "{output}");
    oauth_error(
        request_token(&app, "contoso", &form).await,
        400,
        "unauthorized_client",
        700016,
    )
    .await;
    let (ok, _) = app_command(&app, &["remove", &client_id]);
    assert!(!ok, "removing twice is an error");
}

#[tokio::test]
async fn discovery_documents_name_this_server_and_its_keys_verify_its_tokens() {
    let app = spawn_app().await;
    let base = app.base();
    let config: Value = app
        .client
        .get(format!(
            "{base}/contoso/v2.0/.well-known/openid-configuration"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        config["token_endpoint"],
        format!("{base}/contoso/oauth2/v2.0/token")
    );
    assert_eq!(config["issuer"], format!("{base}/contoso/v2.0"));
    assert!(config["authorization_endpoint"].as_str().is_some());
    let jwks: Value = app
        .client
        .get(config["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "EC");
    // The key that signs tokens is the one published.
    let header = app.token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header).unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], key["kid"]);
    let discovery: Value = app
        .client
        .get(format!(
            "{base}/common/discovery/instance?api-version=1.1&authorization_endpoint={base}/contoso/oauth2/v2.0/authorize"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        discovery["tenant_discovery_endpoint"],
        format!("{base}/contoso/v2.0/.well-known/openid-configuration")
    );
}
