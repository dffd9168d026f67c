//! `[command]` settings: which programs `command` jobs may run, what environment they
//! inherit, where their working directories are (part of `config::Config`, which aggregates
//! every section; validated there). Pure: no I/O except [`CommandConfig::resolve`], which
//! looks a program name up on the configured PATH.

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

/// `[command]`: running the user's own programs. Off until `allowed` lists something.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    /// Absolute paths or globs (`*` within one path segment, `**` across segments) of the
    /// programs command jobs may run, e.g. `/opt/automations/*` or `/usr/bin/python3`.
    #[serde(default)]
    pub allowed: Vec<String>,
    /// Environment variables of overseer passed on to programs (everything else is cleared;
    /// the job's `env` and the run context are added).
    #[serde(default)]
    pub pass_env: Vec<String>,
    /// PATH given to programs, and where a `program` that is a bare name is looked up.
    pub path: String,
    /// Where jobs without a `cwd` run: `<work_dir>/<job name>` (created on demand).
    /// Empty: `<state_dir>/work`.
    #[serde(default)]
    pub work_dir: String,
}

impl Default for CommandConfig {
    fn default() -> Self {
        Self {
            allowed: Vec::new(),
            pass_env: Vec::new(),
            path: "/usr/local/bin:/usr/bin:/bin".into(),
            work_dir: String::new(),
        }
    }
}

/// Why a program may not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("command jobs are off: [command] allowed lists no program")]
    Off,
    #[error("`{0}` is not an absolute path without `.` or `..` components")]
    NotAbsolute(String),
    #[error("no program `{name}` on [command] path ({path})")]
    NotFound { name: String, path: String },
    #[error("`{0}` is not allowed by [command] allowed")]
    NotAllowed(String),
}

impl CommandConfig {
    /// The absolute path `program` names: itself when absolute, else the first executable
    /// file of that name on `path`.
    pub fn resolve(&self, program: &str) -> Result<PathBuf, Refusal> {
        if program.starts_with('/') {
            return Ok(PathBuf::from(program));
        }
        if program.contains('/') || program.is_empty() {
            return Err(Refusal::NotAbsolute(program.to_string()));
        }
        self.path
            .split(':')
            .filter(|d| d.starts_with('/'))
            .map(|d| Path::new(d).join(program))
            .find(|p| is_executable(p))
            .ok_or_else(|| Refusal::NotFound {
                name: program.to_string(),
                path: self.path.clone(),
            })
    }

    /// The absolute path of `program` when `allowed` permits it.
    pub fn permits(&self, program: &str) -> Result<PathBuf, Refusal> {
        if self.allowed.is_empty() {
            return Err(Refusal::Off);
        }
        let path = self.resolve(program)?;
        let text = path.to_string_lossy();
        if !plain_absolute(&path) {
            return Err(Refusal::NotAbsolute(text.into_owned()));
        }
        if self.allowed.iter().any(|g| glob_matches(g, &text)) {
            Ok(path)
        } else {
            Err(Refusal::NotAllowed(text.into_owned()))
        }
    }
}

/// Absolute, and no `.`/`..` components (a glob must not be escaped lexically).
pub fn plain_absolute(p: &Path) -> bool {
    p.is_absolute()
        && p.components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Path globs: `*` matches within one segment (not `/`), `**` any run of characters
/// including `/`, `?` one character other than `/`; everything else literally.
pub fn glob_matches(glob: &str, path: &str) -> bool {
    fn go(g: &[u8], p: &[u8]) -> bool {
        match g.first() {
            None => p.is_empty(),
            Some(b'*') if g.get(1) == Some(&b'*') => {
                let rest = &g[2..];
                (0..=p.len()).any(|i| go(rest, &p[i..]))
            }
            Some(b'*') => {
                let rest = &g[1..];
                let seg = p.iter().position(|&c| c == b'/').unwrap_or(p.len());
                (0..=seg).any(|i| go(rest, &p[i..]))
            }
            Some(b'?') => p.first().is_some_and(|&c| c != b'/') && go(&g[1..], &p[1..]),
            Some(&c) => p.first() == Some(&c) && go(&g[1..], &p[1..]),
        }
    }
    go(glob.as_bytes(), path.as_bytes())
}

/// An environment variable name a job may set: `[A-Za-z_][A-Za-z0-9_]*`, at most 128
/// characters, not in the `OVERSEER_` namespace (the run context).
pub fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 128
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("OVERSEER_")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(allowed: &[&str]) -> CommandConfig {
        CommandConfig {
            allowed: allowed.iter().map(|s| s.to_string()).collect(),
            ..CommandConfig::default()
        }
    }

    #[test]
    fn globs_match_within_and_across_segments() {
        assert!(glob_matches("/opt/automations/*", "/opt/automations/a.py"));
        assert!(!glob_matches(
            "/opt/automations/*",
            "/opt/automations/sub/a.py"
        ));
        assert!(glob_matches(
            "/opt/automations/**",
            "/opt/automations/sub/a.py"
        ));
        assert!(glob_matches("/usr/bin/python3", "/usr/bin/python3"));
        assert!(!glob_matches("/usr/bin/python3", "/usr/bin/python3.11"));
        assert!(glob_matches("/usr/bin/python3*", "/usr/bin/python3.11"));
        assert!(glob_matches("/srv/?.sh", "/srv/a.sh"));
        assert!(!glob_matches("/srv/?.sh", "/srv/ab.sh"));
    }

    #[test]
    fn nothing_runs_until_something_is_allowed() {
        assert_eq!(cfg(&[]).permits("/bin/sh"), Err(Refusal::Off));
        assert_eq!(
            cfg(&["/opt/*"]).permits("/bin/sh"),
            Err(Refusal::NotAllowed("/bin/sh".into()))
        );
        assert_eq!(
            cfg(&["/opt/**"]).permits("/opt/../bin/sh"),
            Err(Refusal::NotAbsolute("/opt/../bin/sh".into()))
        );
        assert_eq!(cfg(&["/bin/sh"]).permits("/bin/sh"), Ok("/bin/sh".into()));
    }

    #[test]
    fn bare_names_are_looked_up_on_the_configured_path() {
        let c = CommandConfig {
            allowed: vec!["/bin/*".into(), "/usr/bin/*".into()],
            path: "/bin:/usr/bin".into(),
            ..CommandConfig::default()
        };
        assert!(c.permits("sh").is_ok());
        assert!(matches!(
            c.permits("no-such-program-here"),
            Err(Refusal::NotFound { .. })
        ));
        assert!(matches!(c.permits("a/b"), Err(Refusal::NotAbsolute(_))));
    }

    #[test]
    fn env_names_exclude_the_run_context() {
        assert!(valid_env_name("API_BASE"));
        assert!(valid_env_name("_x1"));
        assert!(!valid_env_name("1x"));
        assert!(!valid_env_name("A-B"));
        assert!(!valid_env_name("OVERSEER_RUN_TOKEN"));
        assert!(!valid_env_name(""));
    }
}
