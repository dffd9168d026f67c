//! Declarative jobs and quotas: `[[jobs]]` (and `*.toml` files in `scheduler.jobs_dir`) and
//! `[[quotas]]` of the configuration, parsed and validated as the API would, with errors
//! that name the key and its source. Loading them is this module's work, not the
//! configuration's: `config` knows settings, this knows jobs.

use std::path::PathBuf;

use crate::config::{Config, ConfigError, Loaded, Origin, Sources};
use crate::quota::QuotaDef;

/// A declarative job with where it was declared (for errors found after loading).
#[derive(Debug, Clone)]
pub struct Declared {
    pub def: crate::jobs::JobDef,
    /// `jobs.<i>` in its source.
    pub key: String,
    pub origin: Origin,
}

/// Loads the configuration and checks its declarations (what every command does).
pub fn load(sources: &Sources) -> Result<Loaded, ConfigError> {
    let loaded = crate::config::load(sources)?;
    check(&loaded)?;
    Ok(loaded)
}

/// The job kinds as this configuration sets them up (browser scripts within `[browser]
/// max_script_depth` and `max_script_steps`): what validates and runs jobs.
pub fn kinds(config: &Config) -> crate::kinds::Registry {
    let b = &config.browser;
    crate::kinds::Registry::new(crate::browser::script::Limits::new(
        b.max_script_depth,
        b.max_script_steps,
    ))
}

/// Checks every declaration (quotas, then jobs).
pub fn check(loaded: &Loaded) -> Result<(), ConfigError> {
    check_quotas(loaded)?;
    jobs(loaded)?;
    Ok(())
}

/// Checks `[[quotas]]`: each a valid definition, names unique.
fn check_quotas(loaded: &Loaded) -> Result<(), ConfigError> {
    let mut names = std::collections::BTreeSet::new();
    for (i, q) in loaded.config.quotas.iter().enumerate() {
        let key = format!("quotas.{i}");
        let name = q
            .get("name")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("");
        let def = crate::quota::QuotaDef::parse(name, q).map_err(|p| {
            let errs = p.into_vec();
            loaded.bad(
                &format!("{key}.{}", errs[0].path),
                errs.iter()
                    .map(|e| format!("{}: {}", e.path, e.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        if !names.insert(def.name) {
            return Err(loaded.bad(&format!("{key}.name"), "a name no other quota uses"));
        }
    }
    Ok(())
}

/// The declarative jobs: `[[jobs]]` of the configuration, then every `*.toml` in
/// `scheduler.jobs_dir` (sorted by file name), validated. Names must be unique.
pub fn jobs(loaded: &Loaded) -> Result<Vec<Declared>, ConfigError> {
    let now = chrono::Utc::now();
    let defaults = &loaded.config.scheduler.defaults;
    let kinds = kinds(&loaded.config);
    let mut defs = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    let mut check = |value: &serde_json::Value, key: String, origin: Origin| {
        let def = crate::jobs::JobDef::parse(value, &kinds, defaults, now).map_err(|errs| {
            ConfigError::Key {
                key: format!("{key}.{}", errs[0].path),
                origin: origin.clone(),
                expected: errs
                    .iter()
                    .map(|e| format!("{}: {}", e.path, e.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            }
        })?;
        if !names.insert(def.name.clone()) {
            return Err(ConfigError::Key {
                key: format!("{key}.name"),
                origin,
                expected: format!(
                    "a name no other declarative job uses (`{}` is taken)",
                    def.name
                ),
            });
        }
        defs.push(Declared { def, key, origin });
        Ok(())
    };
    for (i, job) in loaded.config.jobs.iter().enumerate() {
        check(
            job,
            format!("jobs.{i}"),
            loaded.origin(&format!("jobs.{i}")),
        )?;
    }
    if let Some(dir) = &loaded.config.scheduler.jobs_dir {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| loaded.bad("scheduler.jobs_dir", format!("a readable directory ({e})")))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::File {
                path: path.clone(),
                message: format!("cannot be read: {e}"),
            })?;
            let table: toml::Table =
                text.parse()
                    .map_err(|e: toml::de::Error| ConfigError::File {
                        path: path.clone(),
                        message: format!("is not valid TOML: {}", e.message()),
                    })?;
            let jobs = serde_json::to_value(
                table
                    .get("jobs")
                    .cloned()
                    .unwrap_or(toml::Value::Array(vec![])),
            )
            .unwrap_or_default();
            let Some(list) = jobs.as_array() else {
                return Err(ConfigError::File {
                    path,
                    message: "expected [[jobs]] tables".into(),
                });
            };
            for (i, job) in list.iter().enumerate() {
                check(job, format!("jobs.{i}"), Origin::File(path.clone()))?;
            }
        }
    }
    Ok(defs)
}

/// The `[[quotas]]` definitions (validated when the configuration was loaded).
pub fn quotas(config: &Config) -> Vec<QuotaDef> {
    config
        .quotas
        .iter()
        .filter_map(|q| {
            let name = q.get("name").and_then(serde_json::Value::as_str)?;
            crate::quota::QuotaDef::parse(name, q).ok()
        })
        .collect()
}
