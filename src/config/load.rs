//! Layered loading: defaults ← file ← aliases ← `OVERSEER__…` variables, each layer named
//! so that errors say where a value came from.

use std::path::PathBuf;

use figment::providers::{Format, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};

use super::*;

/// Where to read configuration from. `env` is passed in (not read globally) so that tests
/// and `main` use the same code without touching the process environment.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub file: Option<PathBuf>,
    pub env: Vec<(String, String)>,
}

impl Sources {
    /// The sources of a real run: `--config` (or `OVERSEER_CONFIG`) and the process env.
    pub fn from_process(file: Option<PathBuf>) -> Self {
        let env: Vec<(String, String)> = std::env::vars().collect();
        let file = file.or_else(|| {
            env.iter()
                .find(|(k, _)| k == "OVERSEER_CONFIG")
                .map(|(_, v)| PathBuf::from(v))
        });
        Self { file, env }
    }
}

/// A provider for one named layer (defaults, a group of environment variables), so that
/// errors can name where a value came from.
struct EnvLayer {
    name: String,
    dict: Dict,
}

impl Provider for EnvLayer {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name.clone())
    }
    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

fn insert_path(dict: &mut Dict, path: &[String], value: Value) {
    match path {
        [] => {}
        [last] => {
            dict.insert(last.clone(), value);
        }
        [head, rest @ ..] => {
            let entry = dict
                .entry(head.clone())
                .or_insert_with(|| Value::from(Dict::new()));
            if let Value::Dict(_, inner) = entry {
                insert_path(inner, rest, value);
            } else {
                let mut inner = Dict::new();
                insert_path(&mut inner, rest, value);
                *entry = Value::from(inner);
            }
        }
    }
}

fn parse_env_value(raw: &str) -> Value {
    raw.parse::<Value>()
        .unwrap_or_else(|_| Value::from(raw.to_string()))
}

fn parse_bool(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// A loaded configuration and the layers it came from.
pub struct Loaded {
    pub config: Config,
    pub(super) figment: Figment,
}

impl Loaded {
    /// Which layer supplied `key` (dotted path), for error messages.
    pub fn origin(&self, key: &str) -> Origin {
        origin_of(&self.figment, key)
    }
}

const DEFAULTS_NAME: &str = "built-in defaults";
const ENV_NAME: &str = "environment";

/// Where `key` came from; for a key figment does not track itself (an element of an array
/// of tables, like `jobs.1.quota.0.name`), where its nearest tracked parent came from.
fn origin_of(figment: &Figment, key: &str) -> Origin {
    let mut k = key;
    loop {
        if let Some(meta) = figment.find_metadata(k) {
            return origin_from_metadata(meta, k);
        }
        match k.rsplit_once('.') {
            Some((parent, _)) => k = parent,
            None => return Origin::Unknown,
        }
    }
}

fn origin_from_metadata(meta: &Metadata, key: &str) -> Origin {
    if let Some(figment::Source::File(path)) = &meta.source {
        return Origin::File(path.clone());
    }
    if meta.name == DEFAULTS_NAME {
        return Origin::Defaults;
    }
    if meta.name == ENV_NAME {
        return Origin::Env(format!(
            "{ENV_PREFIX}{}",
            key.replace('.', "__").to_ascii_uppercase()
        ));
    }
    if let Some(var) = meta.name.strip_prefix("environment variable ") {
        return Origin::Env(var.to_string());
    }
    Origin::Unknown
}

pub fn load(sources: &Sources) -> Result<Loaded, ConfigError> {
    let defaults = Toml::string(DEFAULTS_TOML)
        .data()
        .ok()
        .and_then(|mut m| m.remove(&Profile::Default))
        .ok_or_else(|| ConfigError::Other("the built-in defaults do not parse".into()))?;
    let mut figment = Figment::new().merge(EnvLayer {
        name: DEFAULTS_NAME.into(),
        dict: defaults,
    });

    if let Some(path) = &sources.file {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.clone(),
            message: format!("cannot be read: {e}"),
        })?;
        // Report syntax errors here, with the path, rather than as figment's generic message.
        text.parse::<toml::Table>().map_err(|e| ConfigError::File {
            path: path.clone(),
            message: format!("is not valid TOML: {}", e.message()),
        })?;
        figment = figment.merge(Toml::file_exact(path));
    }

    for (key, value) in &sources.env {
        match key.as_str() {
            "DATABASE_URL" if !value.trim().is_empty() => {
                let mut dict = Dict::new();
                insert_path(
                    &mut dict,
                    &["database".into(), "url".into()],
                    Value::from(value.clone()),
                );
                figment = figment.merge(EnvLayer {
                    name: "environment variable DATABASE_URL".into(),
                    dict,
                });
            }
            "ANTI_DETECTION_ENABLED" => {
                let flag = parse_bool(value).ok_or_else(|| ConfigError::Key {
                    key: "flags.anti_detection".into(),
                    origin: Origin::Env(key.clone()),
                    expected: "a boolean (true/false, 1/0, yes/no, on/off)".into(),
                })?;
                let mut dict = Dict::new();
                insert_path(
                    &mut dict,
                    &["flags".into(), "anti_detection".into()],
                    Value::from(flag),
                );
                figment = figment.merge(EnvLayer {
                    name: "environment variable ANTI_DETECTION_ENABLED".into(),
                    dict,
                });
            }
            _ => {}
        }
    }

    let mut env_dict = Dict::new();
    for (key, value) in &sources.env {
        if let Some(rest) = key.strip_prefix(ENV_PREFIX) {
            let path: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
            if path.iter().any(|p| p.is_empty()) {
                return Err(ConfigError::Key {
                    key: path.join("."),
                    origin: Origin::Env(key.clone()),
                    expected: "a variable name of the form OVERSEER__SECTION__KEY".into(),
                });
            }
            insert_path(&mut env_dict, &path, parse_env_value(value));
        }
    }
    figment = figment.merge(EnvLayer {
        name: ENV_NAME.into(),
        dict: env_dict,
    });

    let mut config: Config = figment
        .extract_lossy()
        .map_err(|e| from_figment_error(&figment, e))?;
    // Resolved once, here: every path overseer hands on (a program's `$OVERSEER_OUTPUT` and
    // working directory, a profile or artifacts directory to Chromium) is absolute, so a
    // program that runs elsewhere (a job's `cwd`) still finds it.
    config.state_dir = std::path::absolute(&config.state_dir).map_err(|e| ConfigError::Key {
        key: "state_dir".into(),
        origin: origin_of(&figment, "state_dir"),
        expected: format!("a directory that can be made absolute ({e})"),
    })?;
    let loaded = Loaded { config, figment };
    loaded.validate()?;
    Ok(loaded)
}

fn from_figment_error(figment: &Figment, err: figment::Error) -> ConfigError {
    let key = err.path.join(".");
    let origin = match &err.metadata {
        Some(meta) => origin_from_metadata(meta, &key),
        None => origin_of(figment, &key),
    };
    let expected = match &err.kind {
        figment::error::Kind::UnknownField(field, _) => {
            format!("unknown key `{field}` (config/default.toml lists every setting)")
        }
        figment::error::Kind::MissingField(field) => format!("missing key `{field}`"),
        other => {
            let text = other.to_string();
            if text.contains("duration") || text.contains("humantime") {
                format!("{text} (write durations like \"250ms\", \"5s\", \"2m\")")
            } else {
                text
            }
        }
    };
    let field = match &err.kind {
        figment::error::Kind::UnknownField(field, _) => Some(field.to_string()),
        figment::error::Kind::MissingField(field) => Some(field.to_string()),
        _ => None,
    };
    let key = match field {
        Some(field) if key.is_empty() => field,
        Some(field) if err.path.last() != Some(&field) => format!("{key}.{field}"),
        _ => key,
    };
    let origin = if origin == Origin::Unknown {
        // An unknown key under a section: find who supplied the section.
        origin_of(figment, &key)
    } else {
        origin
    };
    ConfigError::Key {
        key,
        origin,
        expected,
    }
}
