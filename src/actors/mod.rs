//! The supervised actors, one module each, and [`children`]: the one place where the
//! supervisor's child list is assembled, in start order.

pub mod database;
pub mod node;

use std::sync::Arc;

use uuid::Uuid;

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
}

/// The children, in start order (the supervisor stops them in reverse).
pub fn children(deps: &Deps) -> Vec<ChildSpec> {
    let d = deps.clone();
    let database = ChildSpec::new(database::NAME, Restart::Permanent, move |lifeline| {
        database::DatabaseActor::new(d.db.clone(), lifeline)
    });
    let d = deps.clone();
    let node = ChildSpec::new(node::NAME, Restart::Permanent, move |lifeline| {
        node::NodeActor::new(&d, lifeline)
    });
    vec![database, node]
}
