//! Authentication, permissions and tenant isolation (api.md §4, §13).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Method;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn requests_without_a_valid_token_get_401_with_a_bearer_challenge() {
    let app = spawn_app().await;
    let url = app.events_url();
    let other_dir = tempfile::tempdir().unwrap();
    let foreign = mint(other_dir.path(), "contoso", "app", &["--role", READ_WRITE]);
    let expired = mint(
        &app.data_dir,
        "contoso",
        "app",
        &["--role", READ_WRITE, "--expires-in", "-10"],
    );
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let payload = app.token.split('.').nth(1).unwrap();
    let unsigned = format!("{header}.{payload}.");
    let cases: Vec<(Option<String>, &str)> = vec![
        (None, "empty"),
        (Some("Bearer".into()), "Bearer"),
        (Some("Basic dXNlcjpwYXNz".into()), "Bearer"),
        (Some("Bearer not-a-jwt".into()), "malformed"),
        (Some(format!("Bearer {foreign}")), "signature"),
        (Some(format!("Bearer {expired}")), "expired"),
        (Some(format!("Bearer {unsigned}")), ""),
    ];
    for (authorization, fragment) in cases {
        let mut request = app.client.get(&url);
        if let Some(value) = &authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await.unwrap();
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(challenge.starts_with("Bearer ") && !challenge.contains("claims="));
        let message = assert_graph_error(response, 401, "InvalidAuthenticationToken").await;
        assert!(message.contains(fragment), "{authorization:?}: {message}");
    }
    let response = app
        .client
        .get(&url)
        .header("authorization", format!("Bearer {}", app.token))
        .header("authorization", format!("Bearer {}", app.token))
        .send()
        .await
        .unwrap();
    assert_graph_error(response, 401, "InvalidAuthenticationToken").await;
}

#[tokio::test]
async fn permissions_decide_reads_and_writes_and_403_lists_what_would_do() {
    let app = spawn_app().await;
    let reader = mint(&app.data_dir, "contoso", "reader", &["--role", READ_ONLY]);
    let nobody = mint(&app.data_dir, "contoso", "nobody", &[]);
    let delegated = mint(
        &app.data_dir,
        "contoso",
        "spa",
        &[
            "--scope",
            "DeviceManagementConfiguration.ReadWrite.All",
            "--user",
            "ada@contoso.com",
        ],
    );
    let url = app.events_url();
    let read = app
        .client
        .get(&url)
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    let write = app
        .client
        .post(&url)
        .bearer_auth(&reader)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let message = assert_graph_error(write, 403, "Forbidden").await;
    assert!(
        message.contains("DeviceManagementManagedDevices.ReadWrite.All"),
        "{message}"
    );
    assert!(
        message.contains("DeviceManagementConfiguration.ReadWrite.All"),
        "{message}"
    );
    let none = app
        .client
        .get(&url)
        .bearer_auth(&nobody)
        .send()
        .await
        .unwrap();
    let message = assert_graph_error(none, 403, "Forbidden").await;
    assert!(
        message.contains("DeviceManagementManagedDevices.Read.All"),
        "{message}"
    );
    let created = app
        .client
        .post(&url)
        .bearer_auth(&delegated)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(app.count().await, 1);
}

#[tokio::test]
async fn another_tenants_events_are_simply_not_found() {
    let app = spawn_app().await;
    let event = app
        .create_event(json!({"deviceSerialNumber": "SECRET"}))
        .await;
    let id = event["id"].as_str().unwrap();
    let fabrikam = mint(
        &app.data_dir,
        "fabrikam",
        "app-one",
        &["--role", READ_WRITE],
    );
    let as_fabrikam =
        |method: Method, url: String| app.client.request(method, url).bearer_auth(&fabrikam);
    for (method, url) in [
        (Method::GET, app.event_url(id)),
        (Method::DELETE, app.event_url(id)),
        (Method::GET, app.details_url(id)),
    ] {
        let response = as_fabrikam(method, url).send().await.unwrap();
        assert_graph_error(response, 404, "ResourceNotFound").await;
    }
    let response = as_fabrikam(Method::PATCH, app.event_url(id))
        .json(&json!({"osVersion": "x"}))
        .send()
        .await
        .unwrap();
    assert_graph_error(response, 404, "ResourceNotFound").await;
    let response = as_fabrikam(Method::POST, app.details_url(id))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_graph_error(response, 404, "ResourceNotFound").await;
    let list: serde_json::Value = as_fabrikam(Method::GET, app.events_url())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["value"], json!([]));
    let count = as_fabrikam(Method::GET, format!("{}/$count", app.events_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(count, "0");
    // Contoso still sees its event, unchanged.
    assert_eq!(app.get_json(&app.event_url(id)).await, event);
}

#[tokio::test]
async fn metadata_needs_no_token_and_declares_the_model() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(format!("{}/$metadata", app.root))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/xml")
    );
    let xml = response.text().await.unwrap();
    let document = roxmltree::Document::parse(&xml).expect("well-formed CSDL");
    let find = |name: &str| {
        document
            .descendants()
            .find(|node| node.attribute("Name") == Some(name))
            .unwrap_or_else(|| panic!("{name} declared"))
    };
    let event = find("deviceManagementAutopilotEvent");
    let properties: Vec<_> = event
        .children()
        .filter(|n| n.has_tag_name("Property"))
        .collect();
    assert_eq!(properties.len(), 27);
    let deployment_state = find("windowsAutopilotDeploymentState");
    let members: Vec<_> = deployment_state
        .children()
        .filter(|n| n.has_tag_name("Member"))
        .map(|n| (n.attribute("Name").unwrap(), n.attribute("Value").unwrap()))
        .collect();
    assert_eq!(members.last(), Some(&("successOnRetry", "7")));
    assert_eq!(find("configurationPolicy").attribute("Value"), Some("12"));
    let navigation = find("policyStatusDetails");
    assert_eq!(navigation.attribute("ContainsTarget"), Some("true"));
}
