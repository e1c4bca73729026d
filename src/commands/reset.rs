//! `graphpilot reset`: deletes a tenant's events and details (or every tenant's), straight on the
//! database.

use super::open_store;
use crate::cli::ResetArgs;
use crate::store::Durability;

/// `graphpilot reset`.
pub async fn run(args: ResetArgs) -> anyhow::Result<()> {
    let store = open_store(&args.storage, Durability::Full).await?;
    let tenant = if args.all {
        None
    } else {
        args.tenant.as_deref()
    };
    let (events, details) = store.reset(tenant).await?;
    store.close().await;
    match tenant {
        Some(tenant) => println!(
            "deleted {events} events and {details} policy status details of tenant '{tenant}'"
        ),
        None => {
            println!("deleted {events} events and {details} policy status details of every tenant")
        }
    }
    Ok(())
}
