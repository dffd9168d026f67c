//! Panic attribution: a hook that logs every panic and remembers its message on its thread,
//! so that the dying child's `DeathWatch` (one child per Arbiter thread) can report it.

use std::cell::RefCell;
use std::sync::Once;

use crate::stdx::panic::panic_message;

thread_local! {
    pub(super) static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs (once) the hook that logs every panic and remembers it on its thread, so that
/// the dying child's [`Lifeline`] can report the message.
pub fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let message = panic_message(info.payload());
            let location = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let thread = std::thread::current();
            tracing::error!(
                panic.message = %message,
                panic.location = %location,
                thread = thread.name().unwrap_or("unnamed"),
                "panic"
            );
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(message));
        }));
    });
}
