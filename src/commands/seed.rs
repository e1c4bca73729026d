//! `graphpilot seed`: a deterministic, realistic fleet into a tenant, with a progress bar; works
//! beside a running server.

use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::SeedArgs;
use crate::edm::{DateTimeOffset, Seconds};
use crate::io::seed::{SeedPlan, seed_tenant};
use crate::store::{Durability, Store};

/// `graphpilot seed`, with a progress bar.
pub async fn run(args: SeedArgs) -> anyhow::Result<()> {
    let end = if args.end == "now" {
        DateTimeOffset::now()
    } else {
        DateTimeOffset::parse(&args.end, Seconds::Required)
            .map_err(|reason| anyhow::anyhow!("--end '{}': {reason}", args.end))?
    };
    let url = Store::url_for(&args.data_dir, args.database.as_deref())?;
    // Commits of a load need not reach the disk one by one: the load is acknowledged only at the
    // end, after a checkpoint that does (see Store::checkpoint). The WAL keeps the file consistent.
    let store = Store::open(&url, Durability::Normal).await?;
    let bar = ProgressBar::new(args.count).with_style(
        ProgressStyle::with_template(
            "{spinner} seeding {msg} [{bar:40}] {human_pos}/{human_len} events ({per_sec}, eta {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(args.tenant.clone());
    let clock = Instant::now();
    let plan = SeedPlan {
        tenant: args.tenant.clone(),
        count: args.count,
        seed: args.seed,
        scenario: args.scenario.into(),
        end,
    };
    let outcome = seed_tenant(&store, &plan, |stored| {
        bar.set_position(stored);
        if stored == args.count {
            bar.set_message(format!("{}: indexes, statistics, checkpoint", args.tenant));
        }
    })
    .await?;
    bar.finish_and_clear();
    store.close().await;
    let total = clock.elapsed().as_secs_f64();
    println!(
        "seeded {} events and {} policy status details into tenant '{}' in {total:.1} s \
         (rows {:.1} s, {} {:.1} s; seed {}, scenario {:?})",
        outcome.events,
        outcome.details,
        args.tenant,
        outcome.rows_seconds,
        if outcome.rebuilt_indexes {
            "indexes, statistics and checkpoint"
        } else {
            "statistics and checkpoint"
        },
        total - outcome.rows_seconds,
        args.seed,
        args.scenario,
    );
    Ok(())
}
