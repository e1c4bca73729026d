//! `graphpilot requests [--tail]`: a client of the running server's request journal, with an admin
//! token minted from the data directory's key.

use std::path::Path;

use anyhow::Context;

use crate::auth::{ADMIN_ROLE, SigningKey, TokenRequest, mint};
use crate::cli::RequestsArgs;

/// `graphpilot requests [--tail]`.
pub async fn run(args: RequestsArgs) -> anyhow::Result<()> {
    let key = SigningKey::load_or_create(&args.data_dir)?;
    let token = mint(
        &key,
        &TokenRequest {
            tenant: "graphpilot",
            app: "graphpilot-cli",
            roles: vec![ADMIN_ROLE.to_string()],
            scopes: Vec::new(),
            user: None,
            expires_in: 3600,
        },
    )?;
    let client = http_client(&args.data_dir)?;
    let base = args.url.trim_end_matches('/').trim_end_matches("/beta");
    let mut after: Option<u64> = None;
    let mut first = true;
    loop {
        let mut query: Vec<(&str, String)> = vec![("top", args.top.to_string())];
        if let Some(after) = after {
            query = vec![("after", after.to_string()), ("top", "10000".into())];
        }
        for (name, value) in [
            ("tenant", &args.tenant),
            ("app", &args.app),
            ("path", &args.path),
        ] {
            if let Some(value) = value {
                query.push((name, value.clone()));
            }
        }
        if let Some(status) = args.status {
            query.push(("status", status.to_string()));
        }
        let response = client
            .get(format!("{base}/graphpilot/requests"))
            .bearer_auth(&token)
            .query(&query)
            .send()
            .await
            .with_context(|| format!("cannot reach graphpilot at {base} (is it running? --url)"))?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.context("unexpected answer")?;
        anyhow::ensure!(
            status.is_success(),
            "the server refused: {status} {}",
            body["error"]["message"]
        );
        let entries = body["value"].as_array().cloned().unwrap_or_default();
        if first && entries.is_empty() && !args.tail {
            println!("no requests recorded yet");
        }
        for entry in &entries {
            println!("{}", journal_line(entry));
            after = entry["sequence"].as_u64().or(after);
        }
        first = false;
        if !args.tail {
            return Ok(());
        }
        if after.is_none() {
            after = Some(0);
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

fn journal_line(entry: &serde_json::Value) -> String {
    let text = |name: &str| entry[name].as_str().unwrap_or("-").to_string();
    let flag = if entry["faulted"] == true {
        " FAULT"
    } else if entry["throttled"] == true {
        " THROTTLED"
    } else {
        ""
    };
    let query = entry["query"]
        .as_str()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    format!(
        "{} {} {} {}{} {:.1}ms tenant={} app={} request-id={}{flag}",
        text("time"),
        entry["status"],
        text("method"),
        text("path"),
        query,
        entry["latencyMs"].as_f64().unwrap_or_default(),
        text("tenant"),
        text("app"),
        text("requestId"),
    )
}

/// An HTTP client that also trusts the data directory's local CA (servers run with --tls).
fn http_client(data_dir: &Path) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder();
    let ca = crate::tls::tls_dir(data_dir).join("ca.pem");
    if ca.exists() {
        let pem = std::fs::read(&ca)?;
        builder = builder.add_root_certificate(reqwest::Certificate::from_pem(&pem)?);
    }
    Ok(builder.build()?)
}
