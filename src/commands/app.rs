//! `graphpilot app add|list|remove`: the app registrations the Entra-shaped token endpoint accepts.

use crate::auth::apps::register;
use crate::cli::AppCommand;
use crate::store::{Durability, Store};

pub fn run(command: AppCommand) -> anyhow::Result<()> {
    let storage = match &command {
        AppCommand::Add(args) => &args.storage,
        AppCommand::List(storage) => storage,
        AppCommand::Remove(args) => &args.storage,
    };
    let url = Store::url_for(&storage.data_dir, storage.database.as_deref())?;
    tokio::runtime::Runtime::new()?.block_on(async {
        let store = Store::open(&url, Durability::Full).await?;
        let result = match &command {
            AppCommand::Add(args) => {
                let (app, secret) = register(&args.tenant, &args.name, &args.permissions)?;
                store.add_app(&app).await?;
                println!("client id      {}", app.client_id);
                println!("client secret  {secret}");
                println!("tenant         {}", app.tenant);
                println!("permissions    {}", app.permissions.join(" "));
                println!("token endpoint https://HOST:PORT/{}/oauth2/v2.0/token (scope https://graph.microsoft.com/.default)", app.tenant);
                println!("The secret is shown only now; graphpilot keeps a hash of it.");
                Ok(())
            }
            AppCommand::List(_) => {
                for app in store.apps(None).await? {
                    println!(
                        "{}  tenant={}  name={:?}  permissions={}",
                        app.client_id,
                        app.tenant,
                        app.name,
                        app.permissions.join(",")
                    );
                }
                Ok(())
            }
            AppCommand::Remove(args) => {
                if store.remove_app(&args.client_id).await? {
                    println!("removed {}", args.client_id);
                    Ok(())
                } else {
                    Err(anyhow::anyhow!(
                        "no app with client id '{}' (see `graphpilot app list`)",
                        args.client_id
                    ))
                }
            }
        };
        store.close().await;
        result
    })
}
