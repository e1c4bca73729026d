use std::process::ExitCode;

use clap::Parser;
use graphpilot::app::App;
use graphpilot::auth::{SigningKey, TokenRequest, mint};
use graphpilot::cli::{Cli, Command, LogFormat, SeedArgs, ServeArgs, TokenArgs};
use graphpilot::store::{Durability, Store};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Token(args) => token(args),
        Command::Seed(args) => seed(args),
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
            roles: args.roles,
            scopes: args.scopes,
            user: args.user.as_deref(),
            expires_in: args.expires_in,
        },
    )?;
    println!("{token}");
    Ok(())
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
