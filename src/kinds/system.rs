//! What a running kind needs from the rest of the system, as small traits owned here and
//! implemented by the actors (`actors::system`). A kind never sees an actor address, a
//! database handle or a message type, so this module and `jobs/` stay free of both.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::future::{BoxFuture, LocalBoxFuture};
use uuid::Uuid;

use super::RunError;
use crate::browser::{BrowserRun, RunOutcome};
use crate::notify::Notice;

/// The durable outbox (`notify` kind).
pub trait Outbox {
    /// Writes the notice for each of `channels`; returns how many rows were queued.
    fn enqueue(
        &self,
        notice: Notice,
        channels: Vec<String>,
    ) -> LocalBoxFuture<'static, Result<usize, RunError>>;
}

/// This node's browser pool (`browser` kind).
pub trait Browsers {
    /// False while the pool restarts (the run fails at once, counting for no circuit).
    fn available(&self) -> bool;
    /// Runs a script in its profile's browser.
    fn run(&self, run: BrowserRun) -> LocalBoxFuture<'static, Result<RunOutcome, RunError>>;
    /// The run's future was dropped (job timeout, zombie rescue): close its page.
    fn cancel(&self, run_id: Uuid);
    /// Holds a profile's browser for a command run alone (`command` kind).
    fn hold(
        &self,
        run_id: Uuid,
        profile: String,
    ) -> LocalBoxFuture<'static, Result<HeldProfile, RunError>>;
    /// The command run is over: its profile's browser is closed and the profile freed.
    fn release(&self, run_id: Uuid);
}

/// A profile held by a command run.
#[derive(Debug, Clone)]
pub struct HeldProfile {
    /// The browser's DevTools websocket on loopback.
    pub cdp_url: String,
    /// Changes when the browser dies during the hold.
    pub died: tokio::sync::watch::Receiver<u64>,
}

/// Per-domain circuit breakers (`browser` kind).
pub trait Circuits {
    /// `Some(until)` while the domain's circuit is open.
    fn admit(
        &self,
        domain: String,
    ) -> LocalBoxFuture<'static, Result<Option<DateTime<Utc>>, RunError>>;
    /// What the site did: `None` a success, `Some(error)` a failure that counts.
    fn record(&self, domain: String, error: Option<String>) -> LocalBoxFuture<'static, ()>;
}

/// The answer of a quota to one consumption.
#[derive(Debug, Clone)]
pub enum QuotaAnswer {
    Admitted,
    /// No room in `blocking` windows until `retry_at`.
    Refused {
        retry_at: DateTime<Utc>,
        blocking: Vec<&'static str>,
    },
}

/// The quota counter (`consume` steps; scripts' run tokens).
pub trait Quotas: Send + Sync {
    fn consume(&self, quota: String, cost: i64) -> BoxFuture<'static, Result<QuotaAnswer, String>>;
    /// Gives back `cost` units in the windows that contain now.
    fn refund(&self, quota: String, cost: i64) -> BoxFuture<'static, Result<(), String>>;
}

/// The run a script runs in, for its `once` keys and notices.
#[derive(Debug, Clone)]
pub struct ScriptRun {
    pub job_id: Uuid,
    pub job_name: String,
    pub run_id: Uuid,
    pub attempt: i32,
}

/// What browser scripts record beyond their page (`browser` kind): `once` keys in
/// PostgreSQL and `notify` steps' notices through the outbox. Both are handed to the
/// browser pool's thread, so they are `Send`.
pub trait Scripts {
    fn once_ledger(&self, run: ScriptRun) -> Arc<dyn crate::browser::script::OnceLedger>;
    fn notifier(&self, run: ScriptRun) -> crate::browser::script::Notifier;
    /// Where `hand_over` steps say the run waits for a person.
    fn person(
        &self,
        run: ScriptRun,
        waiting: super::Waiting,
    ) -> Arc<dyn crate::browser::script::Person>;
}

/// What a run token may do besides reporting on its own run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grants {
    pub run_id: Uuid,
    /// The token dies with this attempt (a retry gets a new one).
    pub attempt: i32,
    /// Quotas it may read, consume and refund.
    pub quotas: Vec<String>,
}

/// Run tokens (`command` kind): `OVERSEER_RUN_TOKEN`, valid while its run is `running`.
pub trait RunTokens {
    /// A new token for the run; only its hash is stored.
    fn issue(&self, grants: Grants) -> LocalBoxFuture<'static, Result<String, RunError>>;
    /// The run is over: its token stops working now (not only when the run is recorded).
    fn revoke(&self, run_id: Uuid);
}

/// Everything above, as the executor hands it to each run.
#[derive(Clone)]
pub struct Services {
    pub outbox: Arc<dyn Outbox>,
    pub browsers: Arc<dyn Browsers>,
    pub circuits: Arc<dyn Circuits>,
    pub quotas: Arc<dyn Quotas>,
    pub tokens: Arc<dyn RunTokens>,
    pub scripts: Arc<dyn Scripts>,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Services")
    }
}
