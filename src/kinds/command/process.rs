//! A command run's process: started through the [shim](super::shim) in a process group of
//! its own, its group ended on timeout, cancel or drop (SIGTERM, SIGKILL after the grace),
//! and no member left behind when the run is over.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

use super::shim;

/// What to start.
pub struct Spec<'a> {
    pub program: &'a Path,
    pub args: &'a [String],
    pub env: &'a BTreeMap<String, String>,
    pub cwd: &'a Path,
    pub kill_grace: Duration,
}

/// A started program: its group, and the read ends of its stdout and stderr.
pub struct Started {
    pub child: Child,
    pub group: Group,
    pub stdout: ChildStdout,
    pub stderr: ChildStderr,
}

/// Starts the program through the shim. Call it on a thread that lives as long as the run
/// (the death signal follows the thread that forked): the executor's event loop.
pub fn start(spec: &Spec<'_>) -> std::io::Result<Started> {
    let parent = std::process::id();
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg(shim::ARG)
        .arg(parent.to_string())
        .arg(spec.kill_grace.as_millis().to_string())
        .arg(spec.program)
        .args(spec.args)
        .env_clear()
        .envs(spec.env)
        .current_dir(spec.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(shim::DEATH_SIGNAL).map_err(std::io::Error::from)
        });
    }
    let mut child = cmd.spawn()?;
    let group = Group {
        id: child.id() as i32,
        grace: spec.kill_grace,
        armed: true,
    };
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(std::io::Error::other(
            "the program's output pipes are missing",
        ));
    };
    Ok(Started {
        child,
        group,
        stdout,
        stderr,
    })
}

/// A run's process group. Dropped while armed (the run's future was dropped: a timeout, a
/// cancel, a rescue, the executor stopping) it ends the group on a thread of its own.
pub struct Group {
    id: i32,
    grace: Duration,
    armed: bool,
}

impl Group {
    pub fn id(&self) -> i32 {
        self.id
    }

    /// Ends every member still there (blocking: SIGTERM, then SIGKILL after the grace) and
    /// disarms the guard. Returns whether anything had to be ended.
    pub fn end(&mut self) -> bool {
        self.armed = false;
        end_group(self.id, self.grace)
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if self.armed {
            let (id, grace) = (self.id, self.grace);
            let _ = std::thread::Builder::new()
                .name("command-reaper".into())
                .spawn(move || {
                    end_group(id, grace);
                });
        }
    }
}

/// SIGTERM to the group, SIGKILL after `grace` if any member is left; true when the group
/// had members.
pub fn end_group(id: i32, grace: Duration) -> bool {
    if group_members(id).is_empty() {
        return false;
    }
    let group = Pid::from_raw(id);
    let _ = signal::killpg(group, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if group_members(id).is_empty() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = signal::killpg(group, Signal::SIGKILL);
    // SIGKILL is not instant: wait (bounded) until the kernel has ended them.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && !group_members(id).is_empty() {
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Live (not zombie) processes whose process group is `id`, from /proc.
pub fn group_members(id: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    // pid (comm) state ppid pgrp ...; comm may contain spaces and parens.
                    let rest = &stat[stat.rfind(')')? + 2..];
                    let mut f = rest.split(' ');
                    let state = f.next()?;
                    let _ppid = f.next()?;
                    let pgrp: i32 = f.next()?.parse().ok()?;
                    Some(pgrp == id && state != "Z" && state != "X")
                })
                .unwrap_or(false)
        })
        .collect()
}

/// How the program ended, as the run reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    pub fn of(status: ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(c), _) => Exit::Code(c),
            (None, Some(s)) => Exit::Signal(s),
            (None, None) => Exit::Code(-1),
        }
    }
}

/// `<work_dir>/<job name>` (or the job's own `cwd`), created when missing.
pub fn working_dir(cwd: Option<&str>, work_dir: &Path, job: &str) -> std::io::Result<PathBuf> {
    let dir = match cwd {
        Some(c) => PathBuf::from(c),
        None => work_dir.join(job),
    };
    if !dir.is_dir() {
        std::fs::create_dir_all(&dir)?;
    }
    Ok(dir)
}
