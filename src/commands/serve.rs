//! `graphpilot serve`: resolves the flags into a configuration, builds the app, prints the banner
//! and serves until SIGINT or SIGTERM.

use crate::app::App;
use crate::cli::{LogFormat, ServeArgs};
use crate::config::ServeConfig;

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = ServeConfig::resolve(&args)?;
    let _log_writer = init_logging(config.log_format);
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

/// Logs to stderr through a writer thread of their own: the request path formats its line and
/// hands it over; the thread writes what has gathered in one system call (a write per access-log
/// line was a quarter of `/healthz`'s CPU at the default `info` level, docs/performance.md).
/// Nothing is dropped: a full queue makes the logger wait. The guard flushes on drop, so keep it
/// until the process is done.
pub(super) fn init_logging(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("graphpilot-log")
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    install_logging(format, writer);
    guard
}

/// Logs to stderr directly, line by line (for commands that draw progress bars there too).
pub(super) fn init_direct_logging(format: LogFormat) {
    install_logging(format, std::io::stderr);
}

fn install_logging<W>(format: LogFormat, writer: W)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer);
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
