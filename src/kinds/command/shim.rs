//! The command shim: the small process between overseer and a user's program.
//!
//! overseer starts `overseer __command-shim <overseer pid> <kill grace ms> <program> [args]`
//! in a process group of its own, with `PR_SET_PDEATHSIG(SIGUSR2)`. The shim starts the
//! program in that same group (stdin, stdout, stderr, environment and working directory
//! passed through) and exits with the program's status. If overseer dies (even by
//! `kill -9`) the kernel sends the shim SIGUSR2 and the shim ends the whole group — the
//! program and every grandchild it forked: SIGTERM, then SIGKILL after the grace. Without
//! the shim only the program itself would get the death signal and its children would
//! outlive overseer.
//!
//! The shim ignores the SIGTERM overseer sends the group on a timeout or cancel (through a
//! handler, so the program does not inherit an ignored signal): it keeps waiting, so the
//! program's status is still reported, and the SIGKILL after the grace ends it with the rest.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{getpgrp, getppid, Pid};

/// The first argument that makes `overseer` the shim.
pub const ARG: &str = "__command-shim";
/// The signal the kernel sends the shim when overseer dies.
pub const DEATH_SIGNAL: Signal = Signal::SIGUSR2;
/// Exit status of the shim when it could not start the program (the run reports why).
pub const EXIT_NOT_STARTED: i32 = 127;

static PARENT_DIED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_parent_death(_: nix::libc::c_int) {
    PARENT_DIED.store(true, Ordering::SeqCst);
}

extern "C" fn on_term(_: nix::libc::c_int) {}

/// Runs the shim with `args` (everything after [`ARG`]); returns only with an exit code
/// (or ends the process by re-raising the program's fatal signal).
pub fn main(args: &[String]) -> i32 {
    let [parent, grace_ms, program, rest @ ..] = args else {
        eprintln!("overseer command shim: expected <parent pid> <grace ms> <program> [args]");
        return 2;
    };
    let (Ok(parent), Ok(grace_ms)) = (parent.parse::<i32>(), grace_ms.parse::<u64>()) else {
        eprintln!("overseer command shim: bad arguments");
        return 2;
    };
    let grace = Duration::from_millis(grace_ms);
    // SAFETY: the handlers only store to an atomic (async-signal-safe) or do nothing.
    unsafe {
        let death = SigAction::new(
            SigHandler::Handler(on_parent_death),
            SaFlags::empty(),
            SigSet::empty(),
        );
        let term = SigAction::new(
            SigHandler::Handler(on_term),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        let _ = signal::sigaction(DEATH_SIGNAL, &death);
        let _ = signal::sigaction(Signal::SIGTERM, &term);
    }
    // overseer may have died before the death signal was armed.
    if getppid().as_raw() != parent {
        end_group(grace);
        return EXIT_NOT_STARTED;
    }
    let child = match Command::new(program).args(rest).spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("overseer: could not start {program}: {e}");
            return EXIT_NOT_STARTED;
        }
    };
    let pid = Pid::from_raw(child.id() as i32);
    loop {
        if PARENT_DIED.load(Ordering::SeqCst) {
            end_group(grace);
            return EXIT_NOT_STARTED;
        }
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(_, sig, _)) => return reraise(sig),
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return EXIT_NOT_STARTED,
        }
    }
}

/// Ends the shim the way the program ended (so overseer sees the signal).
fn reraise(sig: Signal) -> i32 {
    // SAFETY: restoring the default disposition before raising it.
    unsafe {
        let _ = signal::signal(sig, SigHandler::SigDfl);
    }
    let _ = signal::raise(sig);
    128 + sig as i32
}

/// SIGTERM to the whole group, SIGKILL after `grace` (the shim is in the group: it ends too).
fn end_group(grace: Duration) {
    let group = getpgrp();
    let _ = signal::killpg(group, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        // Reap what ended; stop early when only the shim is left.
        while let Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) =
            waitpid(None, Some(nix::sys::wait::WaitPidFlag::WNOHANG))
        {}
        if !others_in_group(group) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = signal::killpg(group, Signal::SIGKILL);
}

/// Whether a process other than this one is in `group` (from /proc).
fn others_in_group(group: Pid) -> bool {
    let me = std::process::id() as i32;
    crate::kinds::command::process::group_members(group.as_raw())
        .into_iter()
        .any(|pid| pid != me)
}
