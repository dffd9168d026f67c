//! The supervised actors, one module each, and [`children`]: the one place where the
//! supervisor's child list is assembled, in start order.

pub mod browser;
pub mod database;
pub mod directory;
pub mod executor;
pub mod maintenance;
pub mod node;
pub mod notifier;
pub mod quota;
pub mod scheduler;
pub mod system;

use std::sync::Arc;

use uuid::Uuid;

use self::directory::Directory;
use crate::config::Config;
use crate::db::Db;
use crate::supervisor::{ChildSpec, Restart};

/// What every actor may be built from.
#[derive(Clone)]
pub struct Deps {
    pub config: Arc<Config>,
    pub db: Db,
    /// This process's id in the `nodes` table; stable across actor restarts.
    pub node_id: Uuid,
    /// Current addresses of the actors that others message.
    pub directory: Directory,
    /// Notification channels and routing rules (from `[notify]`).
    pub routing: Arc<crate::notify::Routing>,
    /// Wall-clock time: the system clock, or one a test moves.
    pub clock: Arc<dyn crate::stdx::clock::Clock>,
    /// The feature flags in effect (configured, and runtime overrides the node actor reads).
    pub flags: crate::flags::Live,
    /// The job kinds, built from the configuration at start-up.
    pub kinds: Arc<crate::kinds::Registry>,
    /// Whether this node leads the maintenance duties (kept by the elector).
    pub leadership: maintenance::Leadership,
}

/// The pause before a failed rehydration (database unreachable) is tried again; the actor
/// stays `starting` meanwhile.
pub const REHYDRATE_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// The children, in start order (the supervisor stops them in reverse: the scheduler stops
/// handing out work before the executor drains).
pub fn children(deps: &Deps) -> Vec<ChildSpec> {
    let mut specs = Vec::new();
    let d = deps.clone();
    specs.push(ChildSpec::new(
        database::NAME,
        Restart::Permanent,
        move |lifeline| database::DatabaseActor::new(d.db.clone(), d.directory.clone(), lifeline),
    ));
    let d = deps.clone();
    specs.push(ChildSpec::new(
        node::NAME,
        Restart::Permanent,
        move |lifeline| node::NodeActor::new(&d, lifeline),
    ));
    // Before the executor: runs find the browser pool and the quota counter at once.
    let d = deps.clone();
    specs.push(ChildSpec::new(
        browser::NAME,
        Restart::Permanent,
        move |lifeline| browser::BrowserPool::new(&d, lifeline),
    ));
    let d = deps.clone();
    specs.push(ChildSpec::new(
        quota::NAME,
        Restart::Permanent,
        move |lifeline| quota::QuotaCounter::new(&d, lifeline),
    ));
    if deps.config.scheduler.enabled {
        let d = deps.clone();
        specs.push(ChildSpec::new(
            executor::NAME,
            Restart::Permanent,
            move |lifeline| executor::Executor::new(&d, lifeline),
        ));
        let d = deps.clone();
        specs.push(ChildSpec::new(
            scheduler::NAME,
            Restart::Permanent,
            move |lifeline| scheduler::Scheduler::new(&d, lifeline),
        ));
    }
    // Leadership and the once-per-cluster duties run on every node; only the leader acts.
    let d = deps.clone();
    specs.push(ChildSpec::new(
        maintenance::elector::NAME,
        Restart::Permanent,
        move |lifeline| maintenance::elector::Elector::new(&d, lifeline),
    ));
    let d = deps.clone();
    specs.push(ChildSpec::new(
        maintenance::rescuer::NAME,
        Restart::Permanent,
        move |lifeline| maintenance::rescuer::Rescuer::new(&d, lifeline),
    ));
    let d = deps.clone();
    specs.push(ChildSpec::new(
        maintenance::cleaner::NAME,
        Restart::Permanent,
        move |lifeline| maintenance::cleaner::Cleaner::new(&d, lifeline),
    ));
    let d = deps.clone();
    specs.push(ChildSpec::new(
        notifier::NAME,
        Restart::Permanent,
        move |lifeline| notifier::Notifier::new(&d, lifeline),
    ));
    specs
}
