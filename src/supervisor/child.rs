//! What every supervised actor handles — [`Crash`] (fault injection) and [`StopChild`]
//! (shutdown) — and the `supervised_actor!` macro that writes both handlers, so every actor
//! has the same shape.

use actix::prelude::*;

/// Makes a supervised actor panic inside a message handler (fault injection).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Crash;

/// Asks a supervised actor to stop cleanly (shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopChild;

/// Every supervised actor handles [`Crash`] and [`StopChild`]; this macro writes both, so
/// every actor has the same shape. `Crash` (fault injection) panics in a handler, as a real
/// bug would. `StopChild` stops the actor at once, or calls the actor's own
/// `fn NAME(&mut self, ctx: &mut Context<Self>)` given as `stop = NAME` (drain, hand over,
/// close), which stops the context when it is done.
#[macro_export]
macro_rules! supervised_actor {
    ($actor:ty) => {
        $crate::supervised_actor!(@crash $actor);
        impl ::actix::Handler<$crate::supervisor::StopChild> for $actor {
            type Result = ();
            fn handle(&mut self, _: $crate::supervisor::StopChild, ctx: &mut Self::Context) {
                ::actix::ActorContext::stop(ctx);
            }
        }
    };
    ($actor:ty, stop = $stop:ident) => {
        $crate::supervised_actor!(@crash $actor);
        impl ::actix::Handler<$crate::supervisor::StopChild> for $actor {
            type Result = ();
            fn handle(&mut self, _: $crate::supervisor::StopChild, ctx: &mut Self::Context) {
                self.$stop(ctx);
            }
        }
    };
    (@crash $actor:ty) => {
        impl ::actix::Handler<$crate::supervisor::Crash> for $actor {
            type Result = ();
            fn handle(&mut self, _: $crate::supervisor::Crash, _: &mut Self::Context) {
                panic!("fault injection: {} crashed on request", stringify!($actor));
            }
        }
    };
}
