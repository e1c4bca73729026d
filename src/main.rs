//! The `graphpilot` binary: parses the command line and runs the subcommand; nothing else.

use std::process::ExitCode;

use clap::Parser;
use graphpilot::cli::Cli;

/// mimalloc, not the system allocator: a request allocates and frees many short-lived buffers
/// (hyper's header slots among them), and glibc's free was about a tenth of `/healthz`'s CPU
/// (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One TLS implementation for the server and the HTTP client: aws-lc-rs, as for the keys.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    match graphpilot::commands::run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("graphpilot: {error:#}");
            // A profile or quirk that cannot be used is a usage error, like clap's.
            if error
                .downcast_ref::<graphpilot::profile::UsageError>()
                .is_some()
            {
                ExitCode::from(2)
            } else if error
                .downcast_ref::<graphpilot::io::sync::Locked>()
                .is_some()
            {
                // Another sync holds the local tenant's lock.
                ExitCode::from(3)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
