//! Secrets are referenced by name (`{"secret": NAME}`) and resolved at run time; their values
//! are scrubbed from everything a run records.

/// Replaces every secret value in `text` with `***` (what runs record and errors say never
/// carries one).
pub fn scrub<'a>(text: &str, secrets: impl IntoIterator<Item = &'a String>) -> String {
    let mut out = text.to_string();
    for v in secrets.into_iter().filter(|v| !v.is_empty()) {
        out = out.replace(v.as_str(), "***");
    }
    out
}
