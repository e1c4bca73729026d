//! `graphpilot token`: mints a Graph token signed with the data directory's key (or, on a shared
//! database, the key all its nodes share).

use crate::auth::{SigningKey, TokenRequest, mint};
use crate::cli::TokenArgs;
use crate::store::{Durability, Store};

pub fn run(args: TokenArgs) -> anyhow::Result<()> {
    let key = match &args.database {
        Some(url) if !url.starts_with("sqlite:") => {
            tokio::runtime::Runtime::new()?.block_on(async {
                let store = Store::open(url, Durability::Full).await?;
                let key = crate::app::shared_key(&store, &args.data_dir).await;
                store.close().await;
                key
            })?
        }
        _ => SigningKey::load_or_create(&args.data_dir)?,
    };
    let token = mint(
        &key,
        &TokenRequest {
            tenant: &args.tenant,
            app: &args.app,
            roles: if args.admin {
                let mut roles = args.roles;
                roles.push(crate::auth::ADMIN_ROLE.to_string());
                roles
            } else {
                args.roles
            },
            scopes: args.scopes,
            user: args.user.as_deref(),
            expires_in: args.expires_in,
        },
    )?;
    println!("{token}");
    Ok(())
}
