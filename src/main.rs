use std::process::ExitCode;

use clap::Parser;
use graphpilot::app::App;
use graphpilot::auth::apps::register;
use graphpilot::auth::{SigningKey, TokenRequest, mint};
use graphpilot::cli::{AppCommand, Cli, Command, LogFormat, SeedArgs, ServeArgs, TokenArgs};
use graphpilot::store::{Durability, Store};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One TLS implementation for the server and the HTTP client: aws-lc-rs, as for the keys.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Token(args) => token(args),
        Command::Seed(args) => seed(args),
        Command::App(command) => app(command),
        Command::Import(args) => block_on(graphpilot::io::commands::import(args)),
        Command::Export(args) => block_on(graphpilot::io::commands::export(args)),
        Command::Reset(args) => block_on(graphpilot::io::commands::reset(args)),
        Command::Requests(args) => block_on(graphpilot::io::commands::requests(args)),
        Command::Cert(args) => graphpilot::tls::ca_certificate_pem(&args.data_dir).map(|pem| {
            print!("{pem}");
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("graphpilot: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let app = App::build(&args).await?;
        print!("{}", app.banner());
        use std::io::Write;
        std::io::stdout().flush()?;
        app.run(shutdown_signal()).await?;
        tracing::info!("stopped cleanly");
        Ok(())
    })
}

fn token(args: TokenArgs) -> anyhow::Result<()> {
    let key = match &args.database {
        Some(url) if !url.starts_with("sqlite:") => {
            tokio::runtime::Runtime::new()?.block_on(async {
                let store = Store::open(url, Durability::Full).await?;
                let key = graphpilot::app::shared_key(&store, &args.data_dir).await;
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
                roles.push(graphpilot::auth::ADMIN_ROLE.to_string());
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

fn app(command: AppCommand) -> anyhow::Result<()> {
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

fn block_on(work: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(work)
}

fn seed(args: SeedArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(graphpilot::io::seed::run(args))
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutting down: finishing in-flight requests");
}
