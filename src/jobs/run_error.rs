//! Why a run failed: the one vocabulary of `runs.error_kind`, from the code that fails a run
//! to the row and the JSON. Each kind says whose trouble it was: only what a site did
//! counts for that site's circuit breaker ([`RunErrorKind::counts_for_circuit`]); overseer's
//! own trouble (a pool restarting, a page it could not open in time, a browser it lost) never
//! opens the circuit of a healthy site.

use serde::Serialize;

macro_rules! run_error_kinds {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, site: $site:literal; )*) => {
        /// A run's error kind. Stored and shown as its snake_case name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum RunErrorKind {
            $( $(#[$doc])* $variant, )*
        }

        impl RunErrorKind {
            pub const ALL: &'static [RunErrorKind] = &[$(RunErrorKind::$variant),*];

            /// The stable name stored in `runs.error_kind`.
            pub fn as_str(self) -> &'static str {
                match self { $(RunErrorKind::$variant => $name,)* }
            }

            /// Whether a failure of this kind says the site is failing (it counts towards
            /// opening the circuit of the run's domain).
            pub fn counts_for_circuit(self) -> bool {
                match self { $(RunErrorKind::$variant => $site,)* }
            }
        }
    };
}

run_error_kinds! {
    // What the site did.
    /// A page did not load: refused, DNS, TLS, an HTTP error page the browser reports.
    Navigation = "navigation", site: true;
    /// An element did not reach the state waited for in time.
    WaitTimeout = "wait_timeout", site: true;
    /// A step (its page work) took longer than its timeout.
    StepTimeout = "step_timeout", site: true;
    /// No element matches a step's selector.
    NotFound = "not_found", site: true;
    /// `assert_text` found other text.
    Assertion = "assertion", site: true;
    /// The element is there but not visible to click (the page's layout, often an overlay
    /// the script should close: not counted).
    NotVisible = "not_visible", site: false;
    /// robots.txt disallows the URL (the site's rule, not its failure).
    RobotsDisallowed = "robots_disallowed", site: false;

    // The browser and overseer's pool.
    /// The browser failed a protocol command during a step (a page that went away under it).
    Browser = "browser", site: false;
    /// The profile's browser could not be launched.
    BrowserLaunch = "browser_launch", site: false;
    /// The browser could not open or set up a page for the run in time.
    BrowserPage = "browser_page", site: false;
    /// The browser pool is starting, restarting or stopped; no browser for the run.
    BrowserUnavailable = "browser_unavailable", site: false;
    /// Every browser or page slot was taken for longer than the run could wait.
    BrowserBusy = "browser_busy", site: false;
    /// The profile's browser died during the run.
    BrowserCrashed = "browser_crashed", site: false;
    /// The page's renderer crashed.
    RendererCrashed = "renderer_crashed", site: false;
    /// The run was cancelled while it ran (its page closed).
    Cancelled = "cancelled", site: false;
    /// A `hand_over` waited for a person longer than its timeout.
    PersonTimeout = "person_timeout", site: false;

    // The script and the job's own definition.
    /// A template did not render.
    Template = "template", site: false;
    /// A `{"secret": NAME}` that is not configured.
    SecretMissing = "secret_missing", site: false;
    /// A secret that cannot be used where it is (e.g. not a valid header value).
    InvalidSecret = "invalid_secret", site: false;
    /// The stored steps no longer parse.
    InvalidScript = "invalid_script", site: false;
    /// A `press` of a key the keyboard does not have.
    BadKey = "bad_key", site: false;
    /// A `once` block's ledger failed.
    Once = "once", site: false;
    /// A `notify` step could not enqueue its notification.
    Notify = "notify", site: false;
    /// A `notify` job names a channel this node does not have.
    UnknownChannel = "unknown_channel", site: false;
    /// The quota counter failed or did not answer.
    Quota = "quota", site: false;
    /// A `consume` step with `on_exhausted = fail` found no room.
    QuotaExhausted = "quota_exhausted", site: false;

    // http jobs.
    /// The request timed out.
    HttpTimeout = "http_timeout", site: false;
    /// The request failed (connection, TLS, protocol).
    HttpError = "http_error", site: false;
    /// The response's status is not one the job expects.
    UnexpectedStatus = "unexpected_status", site: false;

    // command jobs.
    /// The program is not (or no longer) allowed by `[command] allowed`.
    CommandNotAllowed = "command_not_allowed", site: false;
    /// Its files or pipes failed.
    CommandIo = "command_io", site: false;
    /// It could not be started.
    CommandStart = "command_start", site: false;
    /// Its working directory does not exist.
    CommandCwd = "command_cwd", site: false;
    /// It exited with a code outside `success_exit_codes`.
    ExitStatus = "exit_status", site: false;

    // The run itself.
    /// `noop` with `fail = true`.
    NoopFailure = "noop_failure", site: false;
    /// The run exceeded its policy's `timeout` (recorded as `timed_out`).
    Timeout = "timeout", site: false;
    /// The kind panicked.
    Panic = "panic", site: false;
    /// The job's kind is not in this build.
    UnknownKind = "unknown_kind", site: false;
    /// The database failed the run's bookkeeping.
    Database = "database", site: false;
    /// Not a failure: the run waits (a quota window, an open circuit).
    Deferred = "deferred", site: false;
    /// Cancelled with its job.
    JobCancelled = "job_cancelled", site: false;
    /// Cancelled because an earlier run of the job was still running (`overlap = skip`).
    Overlap = "overlap", site: false;
    /// Fired later than `misfire_grace`.
    Misfire = "misfire", site: false;

    // Rescued by the leader's rescuer (the run's `zombie` reason).
    /// Its node is gone, stopped, or silent for longer than `zombie.node_timeout`.
    NodeLost = "node_lost", site: false;
    /// Its heartbeat is older than `zombie.heartbeat_timeout`.
    HeartbeatTimeout = "heartbeat_timeout", site: false;
    /// A kind this version does not know (stored by another version of overseer).
    Unknown = "unknown", site: false;
}

impl RunErrorKind {
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.as_str() == s)
    }

    /// Whether another attempt may do better. Not for what fails the same way until the
    /// job or the configuration changes — retrying would only delay the dead letter and its
    /// notification: a script that no longer parses, a kind this build lacks, a program not
    /// allowed, a secret or a channel that is not configured, a key the keyboard lacks —
    /// nor a run nobody took over (`person_timeout`: asking again would only ask again).
    pub fn retries(self) -> bool {
        use RunErrorKind::*;
        !matches!(
            self,
            InvalidScript
                | UnknownKind
                | CommandNotAllowed
                | SecretMissing
                | InvalidSecret
                | UnknownChannel
                | BadKey
                | PersonTimeout
        )
    }

    /// A stored kind: one of ours, or `Unknown` (a row written by another version must
    /// still be listed).
    pub fn from_stored(s: &str) -> Self {
        Self::parse(s).unwrap_or(RunErrorKind::Unknown)
    }
}

impl std::fmt::Display for RunErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::RunErrorKind as K;

    #[test]
    fn names_are_unique_and_parse_back() {
        let mut seen = std::collections::BTreeSet::new();
        for k in K::ALL {
            assert!(seen.insert(k.as_str()), "{k} twice");
            assert_eq!(K::parse(k.as_str()), Some(*k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
    }

    /// Configuration mistakes are not retried; what a site, a program or overseer did is.
    #[test]
    fn what_fails_the_same_way_is_not_retried() {
        for k in [
            K::SecretMissing,
            K::InvalidScript,
            K::CommandNotAllowed,
            K::UnknownChannel,
            K::PersonTimeout,
        ] {
            assert!(!k.retries(), "{k}");
        }
        for k in [
            K::Navigation,
            K::ExitStatus,
            K::HttpError,
            K::Timeout,
            K::NodeLost,
            K::BrowserCrashed,
            K::Unknown,
        ] {
            assert!(k.retries(), "{k}");
        }
    }

    /// Only what the site did opens its circuit; none of overseer's own trouble does.
    #[test]
    fn only_the_sites_failures_count_for_its_circuit() {
        let site: Vec<_> = K::ALL.iter().filter(|k| k.counts_for_circuit()).collect();
        assert_eq!(
            site,
            [
                &K::Navigation,
                &K::WaitTimeout,
                &K::StepTimeout,
                &K::NotFound,
                &K::Assertion
            ]
        );
        for ours in [
            K::Browser,
            K::BrowserLaunch,
            K::BrowserPage,
            K::BrowserUnavailable,
            K::BrowserBusy,
            K::BrowserCrashed,
            K::Cancelled,
            K::Database,
        ] {
            assert!(!ours.counts_for_circuit(), "{ours}");
        }
    }
}
