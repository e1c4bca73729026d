//! The group-commit writer: tasks that take every write queued since their last commit, apply them
//! in one transaction and commit them together, so many acknowledged writes share one fsync. A
//! write's reply is sent only after the commit that holds it succeeded; a failed commit fails its
//! whole batch and the connection that saw it is thrown away ([`super::transaction`]).

use std::sync::Arc;

use std::sync::atomic::{AtomicU8, Ordering};

use tokio::sync::{mpsc, oneshot};

use super::apply::{WriteOp, Written, apply, lock_key, select_one};
use super::cache::EntityCache;
use super::error::{FailureKind, kind_of};
use super::health::Health;
use super::session::{Session, Sessions};
use super::sql::{Dialect, Target};
use super::{StoreError, StoredEntity};

/// The most writes one transaction takes.
const MAX_BATCH: usize = 512;

pub struct WriteJob {
    pub op: WriteOp,
    pub reply: oneshot::Sender<Result<Written, StoreError>>,
    pub claim: Arc<Claim>,
    /// The span of the request that sent it: the writer's log lines about it carry its ids.
    pub span: tracing::Span,
}

/// Who decides a queued write's fate: the writer when it takes the write into a batch, or the
/// request when its deadline passes first. Exactly one of them wins, so a write a client was told
/// is refused is never applied, and a write that was applied is always answered with its outcome.
#[derive(Default)]
pub struct Claim(AtomicU8);

const QUEUED: u8 = 0;
const STARTED: u8 = 1;
const ABANDONED: u8 = 2;

impl Claim {
    /// The writer takes the write; false if the request gave up on it.
    fn start(&self) -> bool {
        self.0
            .compare_exchange(QUEUED, STARTED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The request gives up on the write; false if the writer has already taken it (then its
    /// outcome must be awaited).
    pub fn abandon(&self) -> bool {
        self.0
            .compare_exchange(QUEUED, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

pub enum Message {
    Job(WriteJob),
    /// Commit what is queued before this message, then stop.
    Stop(oneshot::Sender<()>),
}

/// A writer's loop. Several writers may share one inbox (PostgreSQL takes concurrent writers;
/// SQLite has one): each drains a batch while holding the inbox, then commits it on its own
/// connection while the next writer drains the next batch.
pub async fn run<S: Sessions>(
    dialect: Dialect,
    sessions: S,
    cache: Option<Arc<EntityCache>>,
    health: Arc<Health>,
    inbox: Arc<tokio::sync::Mutex<mpsc::Receiver<Message>>>,
) {
    loop {
        let mut jobs = Vec::new();
        let mut stop = None;
        {
            let mut inbox = inbox.lock().await;
            match inbox.recv().await {
                Some(Message::Job(job)) => jobs.push(job),
                Some(Message::Stop(stopped)) => stop = Some(stopped),
                None => return,
            }
            while stop.is_none() && jobs.len() < MAX_BATCH {
                match inbox.try_recv() {
                    Ok(Message::Job(job)) => jobs.push(job),
                    Ok(Message::Stop(stopped)) => stop = Some(stopped),
                    Err(_) => break,
                }
            }
        }
        if !jobs.is_empty() {
            commit_batch(dialect, &sessions, cache.as_deref(), &health, jobs).await;
        }
        if let Some(stopped) = stop {
            let _ = stopped.send(());
            return;
        }
    }
}

async fn commit_batch<S: Sessions>(
    dialect: Dialect,
    sessions: &S,
    cache: Option<&EntityCache>,
    health: &Health,
    jobs: Vec<WriteJob>,
) {
    // The database is known to be down: refuse at once rather than wait for a connection.
    let waited = std::time::Instant::now();
    let begun = match health.check() {
        Ok(()) => sessions.begin().await,
        Err(down) => Err(down),
    };
    metrics::histogram!("graphpilot_writer_connection_wait_seconds")
        .record(waited.elapsed().as_secs_f64());
    let transaction = match begun {
        Ok(transaction) => transaction,
        Err(error) => {
            health.observe(&error);
            for job in jobs {
                let _ = job.reply.send(Err(same_error(&error)));
            }
            return;
        }
    };
    // Only now, with a transaction open, are the writes taken: one whose request gave up while
    // the connection was awaited (its deadline passed) is never applied.
    let mut spans = Vec::with_capacity(jobs.len());
    let (ops, replies): (Vec<_>, Vec<_>) = jobs
        .into_iter()
        .filter(|job| !job.reply.is_closed() && job.claim.start())
        .map(|job| {
            spans.push(job.span);
            (job.op, job.reply)
        })
        .unzip();
    if ops.is_empty() {
        transaction.rollback().await;
        return;
    }
    let committing = std::time::Instant::now();
    // Pages that splice cached entities stand aside until the cache has learned the outcome.
    let writing = cache.map(EntityCache::writing);
    let outcomes = batch_outcomes(dialect, sessions, cache, health, transaction, &ops).await;
    metrics::histogram!("graphpilot_write_batch_size").record(ops.len() as f64);
    metrics::histogram!("graphpilot_write_commit_duration_seconds")
        .record(committing.elapsed().as_secs_f64());
    for outcome in &outcomes {
        let kind = match outcome {
            Ok(_) | Err(StoreError::NotFound | StoreError::PreconditionFailed) => continue,
            Err(StoreError::Full(_)) => "full",
            Err(StoreError::Unavailable(_)) => "unavailable",
            Err(StoreError::OutcomeUnknown(_)) => "unknown",
            Err(StoreError::Internal(_)) => "internal",
        };
        metrics::counter!("graphpilot_write_failures_total", "kind" => kind).increment(1);
    }
    for (span, outcome) in spans.iter().zip(&outcomes) {
        if let Err(error @ StoreError::Internal(_)) = outcome {
            tracing::error!(parent: span, error = %error, writes = ops.len(), "a write failed in the writer");
        }
    }
    if outcomes.iter().any(Result::is_ok) {
        health.wrote();
    }
    // The cache learns each committed write before its client hears of it.
    if let Some(cache) = cache {
        for (op, outcome) in ops.iter().zip(&outcomes) {
            if let Ok(Written::Entity(stored)) = outcome {
                update_cache(cache, op, stored);
            }
        }
    }
    drop(writing);
    for (reply, outcome) in replies.into_iter().zip(outcomes) {
        let _ = reply.send(outcome);
    }
}

/// Commits a batch and returns each write's outcome: a write is `Ok` only if the transaction
/// holding it committed.
async fn batch_outcomes<S: Sessions>(
    dialect: Dialect,
    sessions: &S,
    cache: Option<&EntityCache>,
    health: &Health,
    transaction: S::Session,
    ops: &[WriteOp],
) -> Vec<Result<Written, StoreError>> {
    match apply_with_retries(dialect, sessions, cache, Some(transaction), ops).await {
        Ok(outcomes) => outcomes,
        // The connection broke while COMMIT was under way: it may or may not have committed.
        // Look at the rows it wrote to tell, so that the answer is the truth either way.
        Err(BatchFailure::InDoubt { outcomes, error }) => {
            health.observe(&error);
            match committed(dialect, sessions, ops, &outcomes).await {
                Some(true) => {
                    tracing::warn!(
                        writes = ops.len(),
                        "a commit whose answer was lost had committed; acknowledged"
                    );
                    outcomes
                }
                Some(false) => {
                    tracing::warn!(writes = ops.len(), error = %error, "a commit whose answer was lost had not committed; refused");
                    ops.iter().map(|_| Err(same_error(&error))).collect()
                }
                None => {
                    tracing::error!(writes = ops.len(), error = %error, "a commit's outcome is unknown (the database did not come back within the deadline); refused");
                    let unknown = StoreError::Unavailable(anyhow::anyhow!(
                        "the database connection was lost while committing and the outcome could not be read back; read the entity before retrying: {error}"
                    ));
                    ops.iter().map(|_| Err(same_error(&unknown))).collect()
                }
            }
        }
        // A write failed in an unexpected way, perhaps half done: run each write of the batch
        // in a transaction of its own, so only that one fails.
        Err(BatchFailure::Unexpected(error)) if ops.len() > 1 && !error.is_transient() => {
            let mut outcomes = Vec::with_capacity(ops.len());
            for op in ops {
                let single = std::slice::from_ref(op);
                outcomes.push(
                    match apply_with_retries(dialect, sessions, cache, None, single).await {
                        Ok(mut outcome) => outcome.remove(0),
                        Err(failure) => {
                            let error = failure.into_store_error();
                            health.observe(&error);
                            Err(error)
                        }
                    },
                );
            }
            outcomes
        }
        // A full disk, a lost database, or a failure of the only write: nothing committed.
        Err(failure) => {
            let error = failure.into_store_error();
            health.observe(&error);
            ops.iter().map(|_| Err(same_error(&error))).collect()
        }
    }
}

/// An error of the same kind and message, for each write of a failed batch.
fn same_error(error: &StoreError) -> StoreError {
    let message = || anyhow::anyhow!("{}", error_message(error));
    match error {
        StoreError::NotFound => StoreError::NotFound,
        StoreError::PreconditionFailed => StoreError::PreconditionFailed,
        StoreError::Unavailable(_) => StoreError::Unavailable(message()),
        StoreError::Full(_) => StoreError::Full(message()),
        StoreError::OutcomeUnknown(_) => StoreError::OutcomeUnknown(message()),
        StoreError::Internal(_) => StoreError::Internal(message()),
    }
}

fn error_message(error: &StoreError) -> String {
    match error {
        StoreError::Unavailable(cause)
        | StoreError::Full(cause)
        | StoreError::OutcomeUnknown(cause)
        | StoreError::Internal(cause) => format!("{cause:#}"),
        other => other.to_string(),
    }
}

/// Whether a batch whose COMMIT lost its connection had committed, read from the rows it wrote
/// (every write leaves a fresh random ETag, or removes a row); `None` if the database does not
/// answer before the request deadline (or, outside a request, within a minute).
async fn committed<S: Sessions>(
    dialect: Dialect,
    sessions: &S,
    ops: &[WriteOp],
    outcomes: &[Result<Written, StoreError>],
) -> Option<bool> {
    let (op, written) = ops
        .iter()
        .zip(outcomes)
        .find_map(|(op, outcome)| match outcome {
            Ok(Written::Entity(written)) => Some((op, written)),
            _ => None,
        })?;
    let (tenant, target) = match op {
        WriteOp::CreateEvent { tenant, event, .. } => (
            tenant,
            Target::Event {
                id: event.id.clone(),
            },
        ),
        WriteOp::CreateDetail {
            tenant,
            event_id,
            detail,
        } => (
            tenant,
            Target::Detail {
                event_id: event_id.clone(),
                id: detail.id.clone(),
            },
        ),
        WriteOp::Update { tenant, target, .. } | WriteOp::Delete { tenant, target, .. } => {
            (tenant, target.clone())
        }
        // A bulk load's rows carry no ETag known here; its caller reports the failure.
        WriteOp::Bulk { .. } => return None,
    };
    let until = super::health::deadline()
        .unwrap_or_else(|| std::time::Instant::now() + std::time::Duration::from_secs(60));
    while std::time::Instant::now() < until {
        let read = async {
            let mut session = sessions.begin().await?;
            let stored = select_one(dialect, &mut session, tenant, &target).await;
            session.rollback().await;
            stored
        };
        let remaining = until.saturating_duration_since(std::time::Instant::now());
        match tokio::time::timeout(remaining, read).await {
            Ok(Ok(stored)) => {
                return Some(match op {
                    WriteOp::Delete { .. } => false,
                    _ => stored.etag == written.etag,
                });
            }
            Ok(Err(StoreError::NotFound)) => {
                return Some(matches!(op, WriteOp::Delete { .. }));
            }
            Ok(Err(_)) => tokio::time::sleep(super::health::PROBE_INTERVAL).await,
            Err(_) => return None,
        }
    }
    None
}

fn update_cache(cache: &EntityCache, op: &WriteOp, stored: &StoredEntity) {
    match op {
        WriteOp::CreateEvent { tenant, event, .. } => cache.store(
            tenant,
            &Target::Event {
                id: event.id.clone(),
            },
            stored,
        ),
        WriteOp::CreateDetail {
            tenant,
            event_id,
            detail,
        } => cache.store(
            tenant,
            &Target::Detail {
                event_id: event_id.clone(),
                id: detail.id.clone(),
            },
            stored,
        ),
        WriteOp::Update { tenant, target, .. } => cache.store(tenant, target, stored),
        WriteOp::Delete { tenant, target, .. } => cache.remove(tenant, target),
        // New rows nobody has read yet: nothing cached can be stale.
        WriteOp::Bulk { .. } => {}
    }
}

/// Why a batch did not commit.
enum BatchFailure {
    /// A deadlock or serialization failure: the same batch may succeed if run again.
    Retryable(StoreError),
    /// The connection was lost during COMMIT: the outcomes the writes would have, if it
    /// committed, and the error.
    InDoubt {
        outcomes: Vec<Result<Written, StoreError>>,
        error: StoreError,
    },
    /// Anything else (a write failing other than with 404/412, a full disk, a lost database):
    /// nothing of the batch committed.
    Unexpected(StoreError),
}

impl BatchFailure {
    fn into_store_error(self) -> StoreError {
        match self {
            BatchFailure::Retryable(error)
            | BatchFailure::Unexpected(error)
            | BatchFailure::InDoubt { error, .. } => error,
        }
    }
}

impl From<StoreError> for BatchFailure {
    fn from(error: StoreError) -> Self {
        let conflict = match &error {
            StoreError::Internal(cause) => cause
                .downcast_ref::<sqlx::Error>()
                .is_some_and(|error| kind_of(error) == FailureKind::Conflict),
            _ => false,
        };
        if conflict {
            BatchFailure::Retryable(error)
        } else {
            BatchFailure::Unexpected(error)
        }
    }
}

/// [`apply_all`] (in `transaction` if one is open already), run again (up to three more times)
/// when the database aborted it for a deadlock or a serialization conflict with another writer.
async fn apply_with_retries<S: Sessions>(
    dialect: Dialect,
    sessions: &S,
    cache: Option<&EntityCache>,
    transaction: Option<S::Session>,
    ops: &[WriteOp],
) -> Result<Vec<Result<Written, StoreError>>, BatchFailure> {
    let mut attempt = apply_all(dialect, sessions, cache, transaction, ops).await;
    for _ in 0..3 {
        if !matches!(attempt, Err(BatchFailure::Retryable(_))) {
            break;
        }
        attempt = apply_all(dialect, sessions, cache, None, ops).await;
    }
    attempt
}

/// Applies a batch in one transaction and commits it. Writes are applied in key order, so that
/// concurrent writers on PostgreSQL always lock rows in the same order. No savepoints: the
/// failures a write expects (404, 412) are found before it changes anything, so the others can
/// commit; any other failure fails the batch.
async fn apply_all<S: Sessions>(
    dialect: Dialect,
    sessions: &S,
    cache: Option<&EntityCache>,
    transaction: Option<S::Session>,
    ops: &[WriteOp],
) -> Result<Vec<Result<Written, StoreError>>, BatchFailure> {
    let mut transaction = match transaction {
        Some(transaction) => transaction,
        None => sessions.begin().await?,
    };
    let mut order: Vec<usize> = (0..ops.len()).collect();
    order.sort_by_cached_key(|&index| lock_key(&ops[index]));
    let mut outcomes: Vec<Option<Result<Written, StoreError>>> = ops.iter().map(|_| None).collect();
    for index in order {
        match apply(dialect, &mut transaction, cache, &ops[index]).await {
            Ok(stored) => outcomes[index] = Some(Ok(stored)),
            Err(expected @ (StoreError::NotFound | StoreError::PreconditionFailed)) => {
                outcomes[index] = Some(Err(expected));
            }
            // Dropping the transaction closes its connection: nothing of it commits.
            Err(failure) => return Err(BatchFailure::from(failure)),
        }
    }
    let outcomes: Vec<_> = outcomes
        .into_iter()
        .map(|outcome| outcome.unwrap_or(Err(StoreError::NotFound)))
        .collect();
    match transaction.commit().await {
        Ok(()) => Ok(outcomes),
        // PostgreSQL may have committed before the connection broke; SQLite's answer to its
        // own COMMIT is never lost.
        Err(error) if dialect == Dialect::Postgres && is_connection_loss(&error) => {
            Err(BatchFailure::InDoubt { outcomes, error })
        }
        Err(error) => Err(BatchFailure::from(error)),
    }
}

fn is_connection_loss(error: &StoreError) -> bool {
    matches!(error, StoreError::Unavailable(cause) if super::health::is_connection_loss(cause))
}
