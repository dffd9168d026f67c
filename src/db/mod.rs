//! The ground floor for PostgreSQL: the connection pool and the one way to run a diesel call,
//! migrations, the managed cluster, and one file per table.
//!
//! **Invariant:** diesel is blocking, so no diesel call runs on an actor's or an HTTP worker's
//! event loop. Every query goes through [`Db::run`], which executes it on the runtime's
//! blocking thread pool with a pooled connection; a panic inside a query is caught there and
//! returned as [`DbError::Panicked`].

pub mod audit;
pub mod browser_sessions;
pub mod circuits;
pub mod cluster;
pub mod fire;
pub mod flags;
pub mod idempotency;
pub mod jobs;
pub mod leader;
pub mod migrations;
pub mod nodes;
pub mod notifications;
pub mod once_keys;
pub mod quotas;
pub mod run_tokens;
pub mod runs;
pub mod schema;
pub mod ui_sessions;

use std::time::Duration;

use diesel::r2d2::{ConnectionManager, Pool, PooledConnection};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::PgConnection;

use crate::config::database_url::DatabaseUrl;

pub type PgPool = Pool<ConnectionManager<PgConnection>>;
pub type PgConn = PooledConnection<ConnectionManager<PgConnection>>;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had in time, or the connection broke: the database is down
    /// or unreachable. The API answers 503.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("not found")]
    NotFound,
    /// A unique constraint refused the row (e.g. a duplicate job name).
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Query(DieselError),
    #[error("database call panicked: {0}")]
    Panicked(String),
    #[error("migrations: {0}")]
    Migration(String),
}

impl From<DieselError> for DbError {
    fn from(e: DieselError) -> Self {
        match e {
            DieselError::NotFound => DbError::NotFound,
            DieselError::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                info,
            ) => DbError::Unavailable(info.message().to_string()),
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                DbError::Conflict(info.constraint_name().unwrap_or("unique").to_string())
            }
            other => DbError::Query(other),
        }
    }
}

/// A cheap-to-clone handle to the pool.
#[derive(Clone)]
pub struct Db {
    pool: PgPool,
    url: DatabaseUrl,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("url", &self.url).finish()
    }
}

impl Db {
    /// Builds the pool without connecting: overseer starts (and reports not-ready) while the
    /// database is down, and connects when it comes back.
    pub fn new(url: &DatabaseUrl, pool_size: u32, connect_timeout: Duration) -> Self {
        let manager = ConnectionManager::<PgConnection>::new(url.expose());
        let pool = Pool::builder()
            .max_size(pool_size)
            .min_idle(Some(0))
            .connection_timeout(connect_timeout)
            .test_on_check_out(true)
            .error_handler(Box::new(QuietErrors))
            .build_unchecked(manager);
        Self {
            pool,
            url: url.clone(),
        }
    }

    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// A connection for blocking code that already runs off the event loops (start-up,
    /// CLI commands, tests).
    pub fn get_blocking(&self) -> Result<PgConn, DbError> {
        self.pool
            .get()
            .map_err(|e| DbError::Unavailable(e.to_string()))
    }

    /// Runs `f` with a pooled connection on the blocking thread pool.
    pub async fn run<F, T>(&self, f: F) -> Result<T, DbError>
    where
        F: FnOnce(&mut PgConnection) -> Result<T, DbError> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        let task = tokio::task::spawn_blocking(move || {
            let mut conn = pool
                .get()
                .map_err(|e| DbError::Unavailable(e.to_string()))?;
            f(&mut conn)
        });
        match task.await {
            Ok(result) => result,
            Err(join) if join.is_panic() => {
                let payload = join.into_panic();
                Err(DbError::Panicked(crate::stdx::panic::panic_message(
                    &*payload,
                )))
            }
            Err(join) => Err(DbError::Panicked(join.to_string())),
        }
    }
}

/// r2d2 logs every failed connection attempt at error level; overseer reports database
/// outages through /ready and `overseer_database_up` instead, once, not per attempt.
#[derive(Debug)]
struct QuietErrors;

impl<E: std::fmt::Display> diesel::r2d2::HandleError<E> for QuietErrors {
    fn handle_error(&self, error: E) {
        tracing::debug!(error = %error, "database connection attempt failed");
    }
}
