//! The ports a running script records through — quotas for `consume`, the ledger of
//! `once` blocks, notices of `notify` — implemented by the running system
//! (`kinds::browser`), and what a script that stopped early on purpose says.

use chrono::{DateTime, Utc};
use serde_json::Value;

/// A quota's refusal of a `consume`.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub reason: String,
    /// When the blocking windows have room again.
    pub retry_at: DateTime<Utc>,
}

/// How `consume` steps count: consumption (`Ok(None)` admitted, `Ok(Some(_))` refused,
/// `Err` failed) and refunds (a `once` block that failed gives back what it took).
pub trait Quota: Send + Sync {
    fn consume(
        &self,
        quota: String,
        cost: i64,
    ) -> futures_util::future::BoxFuture<'static, Result<Option<Refusal>, String>>;
    fn refund(
        &self,
        quota: String,
        cost: i64,
    ) -> futures_util::future::BoxFuture<'static, Result<(), String>>;
}

pub type Consumer = std::sync::Arc<dyn Quota>;

/// Where `once` blocks record their keys (PostgreSQL, per job).
pub trait OnceLedger: Send + Sync {
    /// Whether the block for `key` may run now; when it may, the key is marked as being run
    /// by this run (no other run can enter it).
    fn enter(
        &self,
        key: String,
        retry_uncertain: bool,
    ) -> futures_util::future::BoxFuture<'static, Result<Entry, String>>;
    /// The block's steps succeeded: the key is done for good.
    fn complete(&self, key: String)
        -> futures_util::future::BoxFuture<'static, Result<(), String>>;
    /// The block failed before it completed: the key is forgotten (a later run may try).
    fn abandon(&self, key: String) -> futures_util::future::BoxFuture<'static, Result<(), String>>;
}

/// The answer of [`OnceLedger::enter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// Run the block (the key is now this run's).
    Run,
    /// Completed before: skip.
    Done,
    /// Another run that is running now holds it: skip.
    Busy { run_id: String },
    /// A run that died while in the block held it: its effect may have happened; skip and
    /// report it (unless `retry_uncertain`).
    Uncertain { run_id: String },
}

/// Notices from `notify` steps: `(subject, body, severity)` → rows queued.
pub type Notifier = std::sync::Arc<
    dyn Fn(
            String,
            String,
            String,
        ) -> futures_util::future::BoxFuture<'static, Result<usize, String>>
        + Send
        + Sync,
>;

/// A person takes over the run (`hand_over` steps): the run says that it waits — its row
/// shows it, `run.needs_person` goes out, its executor slot is free and its job's timeout
/// stops counting — and when it goes on.
pub trait Person: Send + Sync {
    fn waiting(
        &self,
        reason: String,
        deadline: DateTime<Utc>,
        live_id: uuid::Uuid,
    ) -> futures_util::future::BoxFuture<'static, Result<(), String>>;
    fn resumed(&self) -> futures_util::future::BoxFuture<'static, Result<(), String>>;
}

/// A script that stopped early on purpose (not a failure): a quota said stop or defer.
#[derive(Debug, Clone)]
pub struct Stopped {
    /// Index of the top-level step it stopped at, and the full path of the step.
    pub index: usize,
    pub path: String,
    pub quota: String,
    pub reason: String,
    /// `Some` when the run is to be deferred until then (`on_exhausted: "defer"`).
    pub defer_until: Option<DateTime<Utc>>,
    /// Loop items not done, innermost loop first: `{loop, index, text}`.
    pub remaining_items: Vec<Value>,
}
