//! `graphpilot serve`: resolves the flags into a configuration, builds the app, prints the banner
//! and serves until SIGINT or SIGTERM.

use crate::app::App;
use crate::cli::{LogFormat, ServeArgs};
use crate::config::ServeConfig;

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = ServeConfig::resolve(&args)?;
    init_logging(config.log_format);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let app = App::build(config).await?;
        print!("{}", app.banner());
        use std::io::Write;
        std::io::stdout().flush()?;
        app.run(shutdown_signal()).await?;
        tracing::info!("stopped cleanly");
        Ok(())
    })
}

pub(super) fn init_logging(format: LogFormat) {
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
    super::stop_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
}
