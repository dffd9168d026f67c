//! The one write path of a job definition — `POST` and `PATCH /api/v1/jobs` (and so the
//! CLI's `jobs apply`), and `[[jobs]]` at start-up (`app`): references checked against the
//! database and the configuration ([`References::check`] makes the only [`Checked`] input
//! there is), then the definition and its audit row in the caller's transaction.

use std::sync::Arc;

use diesel::prelude::*;
use serde_json::Value;

use super::job_entry;
use crate::db::jobs::{self as db_jobs, Job};
use crate::db::DbError;
use crate::jobs::job_state::JobState;
use crate::jobs::JobDef;
use crate::kinds::command::settings::CommandConfig;
use crate::stdx::problems::FieldError;

/// What a job definition's references are checked against, for every writer alike: the
/// quotas in the database, the channels of `[notify]`, the programs `[command] allowed`.
/// A job naming one that does not exist could only fail: the API answers 422 naming each
/// field, start-up stops with a configuration error naming the key.
pub struct References {
    pub kinds: Arc<crate::kinds::Registry>,
    pub routing: Arc<crate::notify::Routing>,
    pub command: CommandConfig,
}

/// A definition whose references resolve: made only by [`References::check`], and the only
/// thing [`write`] takes, so no writer can skip the check.
pub struct Checked<'d>(&'d JobDef);

impl References {
    pub(super) fn of(state: &super::ApiState) -> Self {
        Self {
            kinds: state.kinds.clone(),
            routing: state.routing.clone(),
            command: state.config.command.clone(),
        }
    }

    /// Checks `def` on `c` (in the writer's transaction: a quota deleted meanwhile is seen).
    pub fn check<'d>(
        &self,
        c: &mut PgConnection,
        def: &'d JobDef,
    ) -> Result<Result<Checked<'d>, Vec<FieldError>>, DbError> {
        let refs = def.references(&*self.kinds);
        let known = if refs.iter().any(|r| r.to == crate::jobs::Referent::Quota) {
            crate::db::quotas::referenced(c, &refs)?
        } else {
            Default::default()
        };
        let problems = crate::jobs::unresolved(
            &refs,
            &crate::jobs::Resolver {
                quota_exists: &|q| known.contains(q),
                channel_exists: &|ch| self.routing.channel(ch).is_some(),
                program_refused: &|p| self.command.permits(p).err().map(|e| e.to_string()),
            },
        );
        Ok(if problems.is_empty() {
            Ok(Checked(def))
        } else {
            Err(problems)
        })
    }
}

/// How [`write`] stores a definition.
pub enum Write<'a> {
    /// A new job (a name taken is a conflict).
    Create,
    /// This job's definition replaced (its state kept).
    Replace(&'a Job),
    /// By name, as `[[jobs]]` are: created when new, else replaced, and paused or resumed as
    /// the definition's `paused` says. Nothing is written (no audit row) when nothing changed.
    Upsert,
}

/// The one write path of a job definition — `POST` and `PATCH /api/v1/jobs` (and so the
/// CLI's `jobs apply`), and `[[jobs]]` at start-up: the checked definition and its audit row
/// (`entry`, completed here: target, diff, status) in the caller's transaction.
pub fn write(
    c: &mut PgConnection,
    def: Checked<'_>,
    how: Write<'_>,
    source: &str,
    entry: crate::db::audit::Entry,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Job, DbError> {
    /// An upsert that changed nothing: its savepoint is rolled back (not even `updated_at`
    /// moves) and the job is returned as it was.
    enum Abort {
        Unchanged(Box<Job>),
        Db(DbError),
    }
    impl From<diesel::result::Error> for Abort {
        fn from(e: diesel::result::Error) -> Self {
            Abort::Db(e.into())
        }
    }
    impl From<DbError> for Abort {
        fn from(e: DbError) -> Self {
            Abort::Db(e)
        }
    }
    let def = def.0;
    let upsert = matches!(how, Write::Upsert);
    let written = c.transaction::<_, Abort, _>(|c| {
        let existing = match how {
            Write::Create => None,
            Write::Replace(job) => Some(job.clone()),
            Write::Upsert => db_jobs::find_by_name(c, &def.name)?,
        };
        let (before, mut after) = match existing {
            None => {
                // In a savepoint: a node that inserted the same declarative job a moment
                // ago leaves a unique violation, after which the transaction goes on.
                match c.transaction(|c| db_jobs::insert(c, def, source, now)) {
                    Ok(job) => (None, job),
                    Err(DbError::Conflict(_)) if upsert => {
                        let job = db_jobs::find(c, &def.name)?;
                        let (before, after) = db_jobs::update_def(c, &job, def, now)?;
                        (Some(before), after)
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Some(job) => {
                let (before, after) = db_jobs::update_def(c, &job, def, now)?;
                (Some(before), after)
            }
        };
        if let (true, Some(_)) = (upsert, &before) {
            // The file says whether it is paused; a cancelled or completed job stays so.
            let to = match (def.paused, after.state) {
                (true, JobState::Active) => Some(JobState::Paused),
                (false, JobState::Paused) => Some(JobState::Active),
                _ => None,
            };
            if let Some(to) = to {
                if let Ok(job) = db_jobs::transition_from(c, after.id, &[after.state], to, now)? {
                    after = job;
                }
            }
            if after.source != source {
                after = db_jobs::set_source(c, after.id, source)?;
            }
        }
        let mut entry = entry;
        if upsert {
            entry.action = if before.is_none() {
                "job.create"
            } else {
                "job.update"
            }
            .to_string();
        }
        let mut entry = job_entry(entry, &after, before.as_ref());
        if let (true, Some(before)) = (upsert, &before) {
            let unchanged = entry
                .diff
                .as_ref()
                .and_then(Value::as_object)
                .is_some_and(|d| d.is_empty());
            if unchanged {
                return Err(Abort::Unchanged(Box::new(before.clone())));
            }
        }
        entry.status = if before.is_none() { 201 } else { 200 };
        crate::db::audit::record(c, &entry)?;
        Ok(after)
    });
    match written {
        Ok(job) => Ok(job),
        Err(Abort::Unchanged(job)) => Ok(*job),
        Err(Abort::Db(e)) => Err(e),
    }
}
