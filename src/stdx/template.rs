//! A small, safe template language: text with `{{ path }}` placeholders, where a path reads
//! a value from a JSON context (`job.name`, `item.attr.data-id`, …), with pure filters:
//! `{{ item.text | trim | first_word | lower }}`, `{{ job.metadata.role | default("any") }}`,
//! `{{ vars.note | truncate(40) }}`. No code runs: a template is parsed once into text and
//! lookups, and rendering only copies and transforms strings. A missing value without a
//! `default` is an error (a message with a hole in it is a bug). Used by `notify` jobs and by
//! browser scripts; each user says which roots its templates may read.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Filter {
    Default(String),
    Lower,
    Upper,
    Trim,
    FirstWord,
    Truncate(usize),
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Lookup {
        path: Vec<String>,
        filters: Vec<Filter>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
    src: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unclosed `{{{{` at byte {0}")]
    Unclosed(usize),
    #[error("bad placeholder `{{{{{0}}}}}`: expected a path like job.name, then filters like `| default(\"text\")`, `| lower`, `| upper`, `| trim`, `| first_word`, `| truncate(20)`")]
    Bad(String),
    #[error("unknown filter `{0}`: known are default(\"…\"), lower, upper, trim, first_word, truncate(n)")]
    UnknownFilter(String),
    #[error("unknown variable `{root}`: templates here can read {known}")]
    UnknownRoot { root: String, known: String },
    #[error("`{0}` has no value (give it one, or write `{{{{ {0} | default(\"...\") }}}}`)")]
    Missing(String),
}

/// What a `notify` job's templates can read.
pub const NOTIFY_ROOTS: &[&str] = &["job", "run", "now"];

fn ident_ok(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Splits `a | b("x|y") | c` at the bars outside quotes.
fn split_bars(s: &str) -> Option<Vec<&str>> {
    let mut out = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '|' if !quoted => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    if quoted {
        return None;
    }
    out.push(s[start..].trim());
    Some(out)
}

fn filter(f: &str, inner: &str) -> Result<Filter, TemplateError> {
    let bad = || TemplateError::Bad(inner.to_string());
    let (name, arg) = match f.split_once('(') {
        Some((n, rest)) => (
            n.trim(),
            Some(rest.strip_suffix(')').ok_or_else(bad)?.trim()),
        ),
        None => (f, None),
    };
    Ok(match (name, arg) {
        ("default", Some(a)) => {
            let text = a
                .strip_prefix('"')
                .and_then(|a| a.strip_suffix('"'))
                .ok_or_else(bad)?;
            if text.contains('"') {
                return Err(bad());
            }
            Filter::Default(text.to_string())
        }
        ("truncate", Some(n)) => Filter::Truncate(
            n.parse::<usize>()
                .ok()
                .filter(|n| (1..=100_000).contains(n))
                .ok_or_else(bad)?,
        ),
        ("lower", None) => Filter::Lower,
        ("upper", None) => Filter::Upper,
        ("trim", None) => Filter::Trim,
        ("first_word", None) => Filter::FirstWord,
        ("default" | "truncate", None) | ("lower" | "upper" | "trim" | "first_word", Some(_)) => {
            return Err(bad())
        }
        (other, _) => return Err(TemplateError::UnknownFilter(other.to_string())),
    })
}

impl Template {
    /// A `notify` template (roots: job, run, now).
    pub fn parse(src: &str) -> Result<Self, TemplateError> {
        Self::parse_with(src, NOTIFY_ROOTS)
    }

    /// A template whose paths start at one of `roots`.
    pub fn parse_with<S: AsRef<str>>(src: &str, roots: &[S]) -> Result<Self, TemplateError> {
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
            parts.push(Self::placeholder(&after[..end], roots)?);
            let consumed = start + 2 + end + 2;
            offset += consumed;
            rest = &rest[consumed..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template {
            parts,
            src: src.to_string(),
        })
    }

    fn placeholder<S: AsRef<str>>(inner: &str, roots: &[S]) -> Result<Part, TemplateError> {
        let bad = || TemplateError::Bad(inner.to_string());
        let pieces = split_bars(inner).ok_or_else(bad)?;
        let (path, filters) = pieces.split_first().ok_or_else(bad)?;
        let filters = filters
            .iter()
            .map(|f| filter(f, inner))
            .collect::<Result<Vec<_>, _>>()?;
        let path: Vec<String> = path.split('.').map(str::to_string).collect();
        if !path.iter().all(|p| ident_ok(p)) {
            return Err(bad());
        }
        if !roots.iter().any(|r| r.as_ref() == path[0]) {
            return Err(TemplateError::UnknownRoot {
                root: path[0].clone(),
                known: roots
                    .iter()
                    .map(|r| r.as_ref())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        Ok(Part::Lookup { path, filters })
    }

    /// The text it was parsed from.
    pub fn source(&self) -> &str {
        &self.src
    }

    /// Whether it has no placeholder (renders to its source).
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }

    /// The first segment of every path it reads.
    pub fn roots(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Lookup { path, .. } => path.first().map(String::as_str),
            Part::Text(_) => None,
        })
    }

    /// Renders against a JSON context; strings are copied as they are, other values as JSON.
    pub fn render(&self, ctx: &Value) -> Result<String, TemplateError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Lookup { path, filters } => {
                    let mut v = Some(ctx);
                    for key in path {
                        v = v.and_then(|v| match v {
                            Value::Object(m) => m.get(key),
                            Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
                            _ => None,
                        });
                    }
                    let mut text: Option<String> = match v {
                        None | Some(Value::Null) => None,
                        Some(Value::String(s)) => Some(s.clone()),
                        Some(other) => Some(other.to_string()),
                    };
                    for f in filters {
                        text = match (f, text) {
                            (Filter::Default(d), None) => Some(d.clone()),
                            (Filter::Default(_), t) => t,
                            (_, None) => None,
                            (Filter::Lower, Some(t)) => Some(t.to_lowercase()),
                            (Filter::Upper, Some(t)) => Some(t.to_uppercase()),
                            (Filter::Trim, Some(t)) => Some(t.trim().to_string()),
                            (Filter::FirstWord, Some(t)) => {
                                Some(t.split_whitespace().next().unwrap_or("").to_string())
                            }
                            (Filter::Truncate(n), Some(t)) => Some(t.chars().take(*n).collect()),
                        };
                    }
                    match text {
                        Some(t) => out.push_str(&t),
                        None => return Err(TemplateError::Missing(path.join("."))),
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
               "run": {"attempt": 1}, "item": {"text": "  Ada Lovelace  "}})
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
    fn filters_are_pure_and_chain() {
        let roots = ["job", "item"];
        let t = |s: &str| {
            Template::parse_with(s, &roots)
                .unwrap()
                .render(&ctx())
                .unwrap()
        };
        assert_eq!(t("{{ item.text | trim | first_word }}"), "Ada");
        assert_eq!(t("{{ item.text | trim | upper }}"), "ADA LOVELACE");
        assert_eq!(t("{{ item.text | trim | lower | truncate(3) }}"), "ada");
        assert_eq!(t("{{ item.missing | default(\"a|b\") | upper }}"), "A|B");
        assert_eq!(t("{{ job.name | truncate(6) }}"), "follow");
        assert_eq!(
            Template::parse_with("{{ item.nope | lower }}", &roots)
                .unwrap()
                .render(&ctx()),
            Err(TemplateError::Missing("item.nope".into()))
        );
    }

    #[test]
    fn errors_are_precise() {
        assert_eq!(
            Template::parse("a {{ job.name"),
            Err(TemplateError::Unclosed(2))
        );
        assert!(matches!(
            Template::parse("{{ env.HOME }}"),
            Err(TemplateError::UnknownRoot { root, .. }) if root == "env"
        ));
        assert_eq!(
            Template::parse("{{ job.name | shout }}"),
            Err(TemplateError::UnknownFilter("shout".into()))
        );
        for bad in [
            "{{ job..name }}",
            "{{ std::process::exit(1) }}",
            "{{ job.name | truncate(0) }}",
            "{{ job.name | truncate(x) }}",
            "{{ job.name | lower(1) }}",
            "{{ job.name | default(\"x) }}",
            "{{ job.name | default }}",
        ] {
            assert!(
                matches!(Template::parse(bad), Err(TemplateError::Bad(_))),
                "{bad}: {:?}",
                Template::parse(bad)
            );
        }
        let t = Template::parse("{{ job.metadata.missing }}").unwrap();
        assert_eq!(
            t.render(&ctx()),
            Err(TemplateError::Missing("job.metadata.missing".into()))
        );
    }

    #[test]
    fn text_without_placeholders_is_itself() {
        let t = Template::parse("plain } { text").unwrap();
        assert!(t.is_literal());
        assert_eq!(t.render(&json!({})).unwrap(), "plain } { text");
    }
}
