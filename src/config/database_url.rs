//! `database.url`: normalisation of the spellings our users bring from SQLAlchemy, and
//! redaction so that a password never reaches a log line or an error message.

use std::fmt;

use serde::{Serialize, Serializer};

/// Schemes accepted in `database.url`, in the order error messages list them.
pub const ACCEPTED_SCHEMES: &[&str] = &[
    "postgres",
    "postgresql",
    "postgresql+psycopg2",
    "postgresql+asyncpg",
    "postgresql+psycopg",
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    #[error("is not a URL ({0})")]
    Malformed(String),
    #[error(
        "has unsupported scheme `{scheme}`: overseer needs PostgreSQL; accepted forms: {}",
        accepted_forms()
    )]
    UnsupportedScheme { scheme: String },
}

fn accepted_forms() -> String {
    ACCEPTED_SCHEMES
        .iter()
        .map(|s| format!("{s}://"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A normalised `postgresql://` URL that libpq accepts. `Display`, `Debug` and `Serialize`
/// show it with the password replaced by `***`; only [`DatabaseUrl::expose`] gives the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(url::Url);

impl DatabaseUrl {
    pub fn parse(raw: &str) -> Result<Self, UrlError> {
        let raw = raw.trim();
        let Some((scheme, rest)) = raw.split_once("://") else {
            // Show at most the part before any credentials.
            return Err(UrlError::Malformed("expected scheme://...".into()));
        };
        let scheme_lc = scheme.to_ascii_lowercase();
        if !ACCEPTED_SCHEMES.contains(&scheme_lc.as_str()) {
            return Err(UrlError::UnsupportedScheme { scheme: scheme_lc });
        }
        let mut url = url::Url::parse(&format!("postgresql://{rest}"))
            .map_err(|e| UrlError::Malformed(e.to_string()))?;
        // asyncpg spells libpq's `sslmode` as `ssl`; translate so the URL keeps its meaning.
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let k = if k == "ssl" {
                    "sslmode".to_string()
                } else {
                    k.into_owned()
                };
                (k, v.into_owned())
            })
            .collect();
        if pairs.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        Ok(Self(url))
    }

    /// Builds a URL for a Unix-socket connection (the managed cluster).
    pub fn unix_socket(socket_dir: &std::path::Path, user: &str, database: &str) -> Self {
        let mut url = url::Url::parse("postgresql://localhost/").expect("static URL parses");
        url.set_path(database);
        url.query_pairs_mut()
            .append_pair("host", &socket_dir.to_string_lossy())
            .append_pair("user", user);
        Self(url)
    }

    /// The URL with its password, for handing to libpq only.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }

    /// The same server and credentials, another database.
    pub fn with_database(&self, database: &str) -> Self {
        let mut url = self.0.clone();
        url.set_path(database);
        Self(url)
    }

    pub fn database(&self) -> &str {
        self.0.path().trim_start_matches('/')
    }

    pub fn redacted(&self) -> String {
        let mut shown = self.0.clone();
        if shown.password().is_some() {
            let _ = shown.set_password(Some("***"));
        }
        let pairs: Vec<(String, String)> = shown
            .query_pairs()
            .map(|(k, v)| {
                let v = if k == "password" {
                    "***".to_string()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        if !pairs.is_empty() {
            shown.query_pairs_mut().clear().extend_pairs(pairs);
        }
        shown.to_string()
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

impl Serialize for DatabaseUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_table() {
        let cases = [
            ("postgres://u:p@h:5432/db", "postgresql://u:p@h:5432/db"),
            ("postgresql://u:p@h/db", "postgresql://u:p@h/db"),
            ("postgresql+psycopg2://u:p@h/db", "postgresql://u:p@h/db"),
            ("postgresql+asyncpg://u:p@h/db", "postgresql://u:p@h/db"),
            ("postgresql+psycopg://u:p@h/db", "postgresql://u:p@h/db"),
            ("POSTGRESQL+PSYCOPG2://u@h/db", "postgresql://u@h/db"),
            (
                "postgresql+asyncpg://u@h/db?ssl=require",
                "postgresql://u@h/db?sslmode=require",
            ),
        ];
        for (input, want) in cases {
            let got = DatabaseUrl::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(got.expose(), want, "{input}");
        }
    }

    #[test]
    fn refuses_other_schemes_naming_the_accepted_forms() {
        for input in [
            "sqlite:///jobs.sqlite",
            "mysql://u:p@h/db",
            "mysql+pymysql://u@h/db",
            "redis://h",
        ] {
            let err = DatabaseUrl::parse(input).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, UrlError::UnsupportedScheme { .. }), "{input}");
            assert!(msg.contains("postgresql+psycopg2://"), "{msg}");
            assert!(!msg.contains('p') || !msg.contains(":p@"), "{msg}");
        }
        assert!(matches!(
            DatabaseUrl::parse("not a url"),
            Err(UrlError::Malformed(_))
        ));
    }

    #[test]
    fn password_is_redacted_everywhere_but_expose() {
        let url = DatabaseUrl::parse("postgres://app:hunter2@db:5432/x?password=hunter3").unwrap();
        for shown in [
            url.to_string(),
            format!("{url:?}"),
            serde_json::to_string(&url).unwrap(),
        ] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(!shown.contains("hunter3"), "{shown}");
            assert!(shown.contains("***"), "{shown}");
        }
        assert!(url.expose().contains("hunter2"));
    }
}
