//! One Chromium process for one profile: launched by us (not by chromiumoxide) so that we
//! choose every flag, own its process group, and can always take it down: `close()` asks
//! Chromium to exit and waits; failing that (or on drop) the whole group gets SIGKILL and is
//! reaped. No Chromium process outlives its `Chromium`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use chromiumoxide::{Browser, Handler};
use futures_util::StreamExt;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::BrowserError;

/// Flags that keep an idle Chromium off the network and quiet, and pages' timers at full
/// speed (a page woken from parking must not be treated as a background tab: waits run on
/// its timers). `--enable-automation` is deliberately absent (it is what makes
/// `navigator.webdriver` true).
const QUIET_FLAGS: &[&str] = &[
    "--headless=new",
    "--disable-gpu",
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-breakpad",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-quic",
    "--metrics-recording-only",
    "--password-store=basic",
    "--use-mock-keychain",
    "--mute-audio",
    "--hide-scrollbars",
    "--disable-dev-shm-usage",
    "--remote-debugging-port=0",
    "--remote-debugging-address=127.0.0.1",
];

pub struct LaunchOptions<'a> {
    pub executable: &'a Path,
    pub profile_dir: &'a Path,
    pub lang: &'a str,
    /// The window's flags, and with anti-detection its identity (`stealth::launch_flags`).
    pub flags: Vec<String>,
    pub timeout: Duration,
}

/// The browser's full version (`148.0.7778.167`), from `<executable> --version`.
pub async fn version(executable: &Path) -> Result<String, BrowserError> {
    let out = tokio::process::Command::new(executable)
        .arg("--version")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(10), out)
        .await
        .map_err(|_| BrowserError::Launch(format!("{} --version hung", executable.display())))?
        .map_err(|e| BrowserError::Launch(format!("cannot run {}: {e}", executable.display())))?;
    let text = String::from_utf8_lossy(&out.stdout);
    super::stealth::version_of(&text).ok_or_else(|| {
        BrowserError::Launch(format!(
            "{} --version printed no version ({})",
            executable.display(),
            text.trim()
        ))
    })
}

/// Kills Chromium processes left over from an earlier overseer on these profiles (their
/// command line names a user-data-dir under `profiles_dir`). Returns how many.
pub fn reap_leftovers(profiles_dir: &Path) -> usize {
    let needle = format!("--user-data-dir={}", profiles_dir.display());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut n = 0;
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(&needle) {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
            n += 1;
        }
    }
    n
}

/// Finds `chromium` (or `chromium-browser`, `google-chrome`) on PATH.
pub fn find_executable() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

pub struct Chromium {
    pub browser: Browser,
    /// Its DevTools websocket (`ws://127.0.0.1:<port>/devtools/browser/<id>`).
    ws_url: String,
    child: tokio::process::Child,
    pgid: Pid,
    closed: bool,
}

impl Chromium {
    /// Starts Chromium, waits for its DevTools address (up to `timeout`), connects, and runs
    /// the CDP handler on the current thread's runtime. `on_exit` fires when the handler
    /// stream ends (Chromium died or the connection broke).
    pub async fn launch(
        opts: &LaunchOptions<'_>,
        on_exit: impl FnOnce() + 'static,
    ) -> Result<Self, BrowserError> {
        std::fs::create_dir_all(opts.profile_dir).map_err(|e| {
            BrowserError::Launch(format!(
                "profile directory {}: {e}",
                opts.profile_dir.display()
            ))
        })?;
        // A profile left locked by a Chromium that was killed would refuse to start.
        for lock in ["SingletonLock", "SingletonSocket", "SingletonCookie"] {
            let _ = std::fs::remove_file(opts.profile_dir.join(lock));
        }
        let mut cmd = tokio::process::Command::new(opts.executable);
        cmd.args(QUIET_FLAGS)
            .arg(format!("--user-data-dir={}", opts.profile_dir.display()))
            .args(&opts.flags)
            .arg(format!("--lang={}", opts.lang))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        // If this thread (the pool's) or the whole process dies — even by SIGKILL — the kernel
        // kills Chromium too: no browser outlives overseer.
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
            });
        }
        if nix::unistd::geteuid().is_root() {
            // Chromium refuses to run its sandbox as root.
            cmd.arg("--no-sandbox");
        }
        let mut child = cmd.spawn().map_err(|e| {
            BrowserError::Launch(format!("cannot start {}: {e}", opts.executable.display()))
        })?;
        let pgid = Pid::from_raw(child.id().unwrap_or(0) as i32);
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| BrowserError::Launch("no stderr".into()))?;
        let mut lines = BufReader::new(stderr).lines();
        let found = tokio::time::timeout(opts.timeout, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(ws) = line.strip_prefix("DevTools listening on ") {
                    return Some(ws.trim().to_string());
                }
            }
            None
        })
        .await;
        let (browser, ws_url) = match found {
            Ok(Some(ws)) => {
                // Keep draining stderr, or Chromium blocks on a full pipe.
                actix_rt::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                let (browser, handler) = Browser::connect(ws.clone()).await.map_err(|e| {
                    kill_group(pgid);
                    BrowserError::Launch(format!("cannot connect to Chromium: {e}"))
                })?;
                spawn_handler(handler, on_exit);
                (browser, ws)
            }
            Ok(None) => {
                kill_group(pgid);
                let status = child.wait().await.ok();
                return Err(BrowserError::Crashed(format!(
                    "Chromium exited before it was ready ({status:?})"
                )));
            }
            Err(_) => {
                kill_group(pgid);
                let _ = child.wait().await;
                return Err(BrowserError::Launch(format!(
                    "Chromium was not ready within {} ms",
                    opts.timeout.as_millis()
                )));
            }
        };
        Ok(Chromium {
            browser,
            ws_url,
            child,
            pgid,
            closed: false,
        })
    }

    pub fn pid(&self) -> i32 {
        self.pgid.as_raw()
    }

    /// The DevTools websocket (on loopback) another CDP client can connect to.
    pub fn ws_url(&self) -> &str {
        &self.ws_url
    }

    /// Asks Chromium to exit and waits for it; kills the process group if it does not
    /// exit within `grace`. Always reaps.
    pub async fn close(mut self, grace: Duration) {
        self.closed = true;
        let _ = tokio::time::timeout(grace, self.browser.close()).await;
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            kill_group(self.pgid);
            let _ = self.child.wait().await;
        }
        // Helpers (renderers, zygote) that outlived the main process.
        kill_group(self.pgid);
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        if !self.closed {
            kill_group(self.pgid);
            // Reap without blocking the event loop for long: the group was SIGKILLed.
            let _ = self.child.try_wait();
        }
    }
}

fn kill_group(pgid: Pid) {
    if pgid.as_raw() > 1 {
        let _ = killpg(pgid, Signal::SIGKILL);
    }
}

fn spawn_handler(mut handler: Handler, on_exit: impl FnOnce() + 'static) {
    actix_rt::spawn(async move {
        // The stream yields an error when the connection breaks and then never ends: any
        // error but a malformed message means the browser is gone.
        while let Some(event) = handler.next().await {
            match event {
                Ok(()) => {}
                Err(chromiumoxide::error::CdpError::InvalidMessage(..)) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "chromium connection ended");
                    break;
                }
            }
        }
        on_exit();
    });
}

/// Whether a process has exited (gone, or a zombie not yet reaped).
pub fn process_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_none_or(|state| state == "Z" || state == "X"),
    }
}
