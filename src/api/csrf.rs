//! The dashboard's CSRF check, the one both the API (`X-CSRF-Token` on every change made
//! with a session cookie) and the dashboard's own forms (logout) use.
//!
//! A session's token is compared in constant time: how long a wrong guess takes says
//! nothing about how much of it was right.

use subtle::ConstantTimeEq;

/// The header a dashboard request that changes something carries.
pub const HEADER: &str = "x-csrf-token";

/// Whether `sent` is the session's CSRF token `expected`. An empty token never matches.
pub fn matches(expected: &str, sent: &str) -> bool {
    !expected.is_empty() && bool::from(sent.as_bytes().ct_eq(expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_token_matches() {
        assert!(matches("abc123", "abc123"));
        assert!(!matches("abc123", "abc124"));
        assert!(!matches("abc123", "abc12"));
        assert!(!matches("abc123", "abc1234"));
        assert!(!matches("abc123", ""));
        assert!(!matches("", ""));
    }

    /// One check: no other file of the API or the dashboard compares a CSRF token itself.
    #[test]
    fn every_csrf_comparison_is_this_one() {
        let src = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
        let mut offenders = Vec::new();
        for dir in ["api", "ui"] {
            for entry in std::fs::read_dir(format!("{src}/{dir}")).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_none_or(|e| e != "rs") || path.ends_with("csrf.rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                for (i, line) in text.lines().enumerate() {
                    let l = line.to_ascii_lowercase();
                    if l.contains("csrf")
                        && (l.contains("==") || l.contains("!=") || l.contains("ct_eq"))
                    {
                        offenders.push(format!("{}:{}: {}", path.display(), i + 1, line.trim()));
                    }
                }
            }
        }
        assert!(
            offenders.is_empty(),
            "CSRF compared outside api::csrf: {offenders:#?}"
        );
    }
}
