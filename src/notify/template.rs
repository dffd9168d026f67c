//! A small, safe template language for `notify` jobs: text with `{{ path }}` placeholders,
//! where a path reads a value from the run's context (`job.name`, `job.metadata.company`,
//! `run.fire_at`, ...), optionally with a fallback: `{{ job.metadata.company | default("?") }}`.
//! No code runs: a template is parsed once into text and lookups, and rendering only copies.
//! A missing value without a default is an error (a reminder with a hole in it is a bug).

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Lookup {
        path: Vec<String>,
        default: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Template(Vec<Part>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unclosed `{{{{` at byte {0}")]
    Unclosed(usize),
    #[error("bad placeholder `{{{{{0}}}}}`: expected a path like job.name, optionally `| default(\"text\")`")]
    Bad(String),
    #[error("unknown variable `{0}`: templates can read {roots}", roots = ROOTS.join(", "))]
    UnknownRoot(String),
    #[error("`{0}` has no value (give it one, or write `{{{{ {0} | default(\"...\") }}}}`)")]
    Missing(String),
}

/// What a template can read.
pub const ROOTS: &[&str] = &["job", "run", "now"];

fn ident_ok(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl Template {
    pub fn parse(src: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = src;
        let mut offset = 0;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or(TemplateError::Unclosed(offset + start))?;
            parts.push(Self::placeholder(&after[..end])?);
            let consumed = start + 2 + end + 2;
            offset += consumed;
            rest = &rest[consumed..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template(parts))
    }

    fn placeholder(inner: &str) -> Result<Part, TemplateError> {
        let bad = || TemplateError::Bad(inner.to_string());
        let (path, filter) = match inner.split_once('|') {
            Some((p, f)) => (p.trim(), Some(f.trim())),
            None => (inner.trim(), None),
        };
        let default = match filter {
            None => None,
            Some(f) => {
                let arg = f
                    .strip_prefix("default(")
                    .and_then(|a| a.strip_suffix(')'))
                    .ok_or_else(bad)?
                    .trim();
                let text = arg
                    .strip_prefix('"')
                    .and_then(|a| a.strip_suffix('"'))
                    .ok_or_else(bad)?;
                if text.contains('"') {
                    return Err(bad());
                }
                Some(text.to_string())
            }
        };
        let path: Vec<String> = path.split('.').map(str::to_string).collect();
        if !path.iter().all(|p| ident_ok(p)) {
            return Err(bad());
        }
        if !ROOTS.contains(&path[0].as_str()) {
            return Err(TemplateError::UnknownRoot(path[0].clone()));
        }
        Ok(Part::Lookup { path, default })
    }

    /// Renders against a JSON context; strings are copied as they are, other values as JSON.
    pub fn render(&self, ctx: &Value) -> Result<String, TemplateError> {
        let mut out = String::new();
        for part in &self.0 {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Lookup { path, default } => {
                    let mut v = Some(ctx);
                    for key in path {
                        v = v.and_then(|v| match v {
                            Value::Object(m) => m.get(key),
                            Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
                            _ => None,
                        });
                    }
                    match (v, default) {
                        (Some(Value::String(s)), _) => out.push_str(s),
                        (Some(Value::Null) | None, Some(d)) => out.push_str(d),
                        (Some(Value::Null) | None, None) => {
                            return Err(TemplateError::Missing(path.join(".")))
                        }
                        (Some(other), _) => out.push_str(&other.to_string()),
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> Value {
        json!({"job": {"name": "follow-up", "metadata": {"company": "Acme", "n": 3}, "tags": ["a"]},
               "run": {"attempt": 1}})
    }

    #[test]
    fn renders_paths_defaults_and_non_strings() {
        let t = Template::parse(
            "Hi {{ job.metadata.company }} ({{job.metadata.n}}) {{ job.metadata.role | default(\"any role\") }} {{ job.tags.0 }}",
        )
        .unwrap();
        assert_eq!(t.render(&ctx()).unwrap(), "Hi Acme (3) any role a");
    }

    #[test]
    fn errors_are_precise() {
        assert_eq!(
            Template::parse("a {{ job.name"),
            Err(TemplateError::Unclosed(2))
        );
        assert!(
            matches!(Template::parse("{{ env.HOME }}"), Err(TemplateError::UnknownRoot(r)) if r == "env")
        );
        assert!(matches!(
            Template::parse("{{ job.name | upper }}"),
            Err(TemplateError::Bad(_))
        ));
        assert!(matches!(
            Template::parse("{{ job..name }}"),
            Err(TemplateError::Bad(_))
        ));
        assert!(matches!(
            Template::parse("{{ std::process::exit(1) }}"),
            Err(TemplateError::Bad(_))
        ));
        let t = Template::parse("{{ job.metadata.missing }}").unwrap();
        assert_eq!(
            t.render(&ctx()),
            Err(TemplateError::Missing("job.metadata.missing".into()))
        );
    }

    #[test]
    fn text_without_placeholders_is_itself() {
        let t = Template::parse("plain } { text").unwrap();
        assert_eq!(t.render(&json!({})).unwrap(), "plain } { text");
    }
}
