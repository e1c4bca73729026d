//! `serve`'s settings, resolved once from its raw flags (raw input first, resolved settings
//! second): every value typed, the fault file read and checked, before anything is opened.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::cli::{LogFormat, ServeArgs, Throttling};
use crate::http::faults::Faults;
use crate::http::throttle::{INTUNE, Limits};
use crate::profile::{Profile, UsageError};
use crate::store::{Durability, Store};
use crate::tls::ServerIdentity;

/// What the app needs to build a server (`App::build`).
pub struct ServeConfig {
    pub listen: String,
    pub data_dir: PathBuf,
    /// The database URL: the data directory's SQLite file unless `--database` named one.
    pub database: String,
    /// Whether the database is the embedded SQLite file of the data directory.
    pub embedded: bool,
    pub durability: Durability,
    pub readers: u32,
    pub sqlite_cache_mib: u32,
    /// Intune's request limits, or none.
    pub limits: Option<Limits>,
    /// Serve HTTPS with this certificate, or plain HTTP.
    pub tls: Option<ServerIdentity>,
    pub faults: Faults,
    pub page_size: u64,
    pub journal_size: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub request_timeout: Duration,
    pub metrics_need_token: bool,
    pub log_format: LogFormat,
    pub profile: Profile,
    pub export_ttl: Duration,
}

impl ServeConfig {
    pub fn resolve(args: &ServeArgs) -> anyhow::Result<ServeConfig> {
        let rules = match &args.faults {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read --faults {}", path.display()))?;
                Faults::from_toml(&text)
                    .map_err(|reason| anyhow::anyhow!("--faults {}: {reason}", path.display()))?
            }
            None => Vec::new(),
        };
        let quirks_text = match &args.quirks_file {
            Some(path) => Some(std::fs::read_to_string(path).map_err(|error| {
                UsageError(format!("cannot read --quirks {}: {error}", path.display()))
            })?),
            None => None,
        };
        let quirks_path = args
            .quirks_file
            .as_ref()
            .map(|path| path.display().to_string());
        let profile = Profile::resolve(
            &args.profile,
            quirks_path.as_deref().zip(quirks_text.as_deref()),
            &args.quirks,
        )?;
        let faults = Faults::new(rules)
            .map_err(|reason| anyhow::anyhow!("--faults: a rule cannot work: {reason}"))?;
        let tls = args.tls.then(|| match (&args.tls_cert, &args.tls_key) {
            (Some(certificate), Some(key)) => ServerIdentity::Files {
                certificate: certificate.clone(),
                key: key.clone(),
            },
            _ => ServerIdentity::Local {
                extra_names: args.tls_names.clone(),
            },
        });
        Ok(ServeConfig {
            listen: args.listen.clone(),
            data_dir: args.data_dir.clone(),
            database: args
                .database
                .clone()
                .unwrap_or_else(|| Store::sqlite_url(&args.data_dir)),
            embedded: args.database.is_none(),
            durability: args.durability.into(),
            readers: args.pool_size,
            sqlite_cache_mib: args.sqlite_cache,
            limits: match args.throttling {
                Throttling::Intune => Some(INTUNE),
                Throttling::Off => None,
            },
            tls,
            faults,
            page_size: args.page_size,
            journal_size: args.journal_size,
            header_timeout: Duration::from_secs(args.header_timeout),
            body_timeout: Duration::from_secs(args.body_timeout),
            request_timeout: Duration::from_secs(args.request_timeout),
            metrics_need_token: args.metrics_token,
            log_format: args.log_format,
            profile,
            export_ttl: args.export_ttl,
        })
    }
}
