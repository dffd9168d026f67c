//! The child side of supervision: the [`Lifeline`] each incarnation of a child gets (ready,
//! fail), and the [`DeathWatch`] its context owns, whose `Drop` reports the death the moment
//! it happens — normal stop, an error, or a panic that unwound out of a handler.

use std::sync::{Arc, Mutex};

use actix::prelude::*;

use super::panic_hook::LAST_PANIC;
use super::{ChildReady, ExitReason, Supervisor};

/// Given to each incarnation of a child. The child calls [`Lifeline::ready`] once it has
/// rehydrated, and [`Lifeline::fail`] before stopping itself because of an error.
#[derive(Clone)]
pub struct Lifeline {
    pub(super) name: &'static str,
    pub(super) generation: u64,
    pub(super) supervisor: Addr<Supervisor>,
    pub(super) failure: FailureCell,
    /// `ready()` reports once per incarnation (an actor may call it after every successful
    /// rehydration step).
    pub(super) readied: Arc<std::sync::atomic::AtomicBool>,
}

impl Lifeline {
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Rehydration is done: the child is running. Only the first call counts.
    pub fn ready(&self) {
        if self.readied.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        self.supervisor.do_send(ChildReady {
            name: self.name,
            generation: self.generation,
        });
    }

    /// Whether `ready()` was called in this incarnation.
    pub fn is_ready(&self) -> bool {
        self.readied.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Records why the child is about to stop; call `ctx.stop()` next.
    pub fn fail(&self, message: impl Into<String>) {
        if let Ok(mut f) = self.failure.lock() {
            *f = Some(message.into());
        }
    }
}

/// Where an actor writes why it is about to stop (read by its [`DeathWatch`]).
pub type FailureCell = Arc<Mutex<Option<String>>>;

/// Owned by an actor's context (as a spawned, never-finishing future): it is dropped when
/// the context ends for any reason, including a panic that unwound out of a handler, and
/// then tells `on_exit` why. The supervisor watches its children with it; the browser pool
/// watches its sessions with it.
pub struct DeathWatch {
    failure: FailureCell,
    on_exit: Option<Box<dyn FnOnce(ExitReason)>>,
}

impl DeathWatch {
    /// Watches the actor whose context this is.
    pub fn install<A: Actor<Context = Context<A>>>(
        ctx: &mut Context<A>,
        failure: FailureCell,
        on_exit: impl FnOnce(ExitReason) + 'static,
    ) {
        let watch = DeathWatch {
            failure,
            on_exit: Some(Box::new(on_exit)),
        };
        ctx.spawn(
            actix::fut::wrap_future::<_, A>(std::future::pending::<()>())
                .map(move |_, _, _| drop(watch)),
        );
    }
}

impl Drop for DeathWatch {
    fn drop(&mut self) {
        let panic = LAST_PANIC.with(|p| p.borrow_mut().take());
        let failure = self.failure.lock().ok().and_then(|mut f| f.take());
        let reason = match (panic, failure) {
            (Some(p), _) => ExitReason::Panic(p),
            (None, Some(e)) => ExitReason::Error(e),
            (None, None) => ExitReason::Normal,
        };
        if let Some(on_exit) = self.on_exit.take() {
            on_exit(reason);
        }
    }
}
