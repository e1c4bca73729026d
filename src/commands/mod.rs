//! One file per subcommand: each turns its parsed flags into calls on the layers below (app, io,
//! store, auth) and prints what a person needs. [`run`] dispatches.

mod app;
mod cert;
mod dashboard;
mod export;
mod import;
mod requests;
mod reset;
mod seed;
mod serve;
mod sync;
mod token;

use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::{Command, StorageArgs};
use crate::store::{Durability, Store};

/// Runs one subcommand to its end.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve::run(args),
        Command::Token(args) => token::run(args),
        Command::Seed(args) => block_on(seed::run(args)),
        Command::App(command) => app::run(command),
        Command::Import(args) => block_on(import::run(args)),
        Command::Export(args) => block_on(export::run(args)),
        Command::Reset(args) => block_on(reset::run(args)),
        Command::Dashboard(args) => block_on(dashboard::run(args)),
        Command::Requests(args) => block_on(requests::run(args)),
        Command::Sync(args) => block_on(sync::run(args)),
        Command::Cert(args) => cert::run(args),
    }
}

fn block_on(work: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(work)
}

/// The store of a command's `--data-dir` / `--database`.
async fn open_store(storage: &StorageArgs, durability: Durability) -> anyhow::Result<Arc<Store>> {
    let url = Store::url_for(&storage.data_dir, storage.database.as_deref())?;
    Store::open(&url, durability).await
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (`serve` drains and exits; `sync` stops at a page).
async fn stop_signal() {
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
}

/// A progress bar on standard error (indicatif hides it when that is not a terminal).
fn bar(length: u64, template: &str) -> ProgressBar {
    ProgressBar::new(length).with_style(
        ProgressStyle::with_template(template)
            .expect("valid template")
            .progress_chars("=> "),
    )
}
