//! `graphpilot dashboard`: stores a one-time sign-in code for a tenant in the server's database
//! and prints the URL that opens the dashboard with it (analytics.md §6).

use crate::auth::{now_seconds, sign_in};
use crate::cli::DashboardArgs;
use crate::store::Durability;

pub async fn run(args: DashboardArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        !args.tenant.trim().is_empty(),
        "--tenant must name the tenant whose dashboard to open"
    );
    let base = args.url.trim_end_matches('/');
    let parsed = reqwest::Url::parse(base).map_err(|error| {
        anyhow::anyhow!("--url '{base}' is not a URL ({error}); give e.g. http://127.0.0.1:8080")
    })?;
    anyhow::ensure!(
        matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some(),
        "--url '{base}' must be an http:// or https:// URL with a host, e.g. http://127.0.0.1:8080"
    );
    anyhow::ensure!(
        parsed.query().is_none() && parsed.fragment().is_none(),
        "--url '{base}' must not carry a query or fragment"
    );
    let store = super::open_store(&args.storage, Durability::Full).await?;
    let (code, hash) = sign_in::new_secret();
    let now = now_seconds();
    let stored = store
        .add_dashboard_code(&hash, &args.tenant, now + sign_in::CODE_SECONDS, now)
        .await;
    store.close().await;
    stored?;
    // One line, the URL, and nothing else: scripts read it (`--help` says how long it lasts).
    println!("{base}/dashboard/signin?code={code}");
    Ok(())
}
