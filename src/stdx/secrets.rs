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

/// A new random token (`<prefix>` + 64 hex digits) and its SHA-256 (hex), the only form
/// in which it is stored.
pub fn new_token(prefix: &str) -> (String, String) {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = format!("{prefix}{}", hex::encode(bytes));
    let hash = hash_token(&token);
    (token, hash)
}

/// The SHA-256 (hex) of a token.
pub fn hash_token(token: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Object keys whose string values are secrets wherever they appear (case-insensitive,
/// as a part of the key: `X-Api-Key`, `db_password`).
const SECRET_KEYS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "authorization",
    "cookie",
    "api_key",
    "apikey",
    "api-key",
    "private_key",
    "credential",
];

/// What a redacted value becomes.
pub const REDACTED: &str = "[redacted]";

/// `value` with every string (or number) under a secret-looking key replaced by
/// [`REDACTED`]. A reference to a secret by name (`{"secret": "NAME"}`) is kept: it is a
/// name, not a value.
pub fn redact_json(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let is_reference = map.len() == 1 && map.get("secret").is_some_and(Value::is_string);
            if is_reference {
                return value.clone();
            }
            map.iter()
                .map(|(k, v)| {
                    let lower = k.to_ascii_lowercase();
                    let secret = SECRET_KEYS.iter().any(|s| lower.contains(s));
                    let v = match v {
                        Value::String(_) | Value::Number(_) if secret => {
                            Value::String(REDACTED.into())
                        }
                        other => redact_json(other),
                    };
                    (k.clone(), v)
                })
                .collect::<serde_json::Map<_, _>>()
                .into()
        }
        Value::Array(items) => items.iter().map(redact_json).collect(),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redaction_hides_values_under_secret_keys_and_keeps_references() {
        let v = json!({
            "url": "https://x.test/",
            "headers": {"Authorization": "Bearer abc", "X-Api-Key": "k1",
                        "X-Ref": {"secret": "api_token"}, "Accept": "text/html"},
            "steps": [{"type": "type", "secret": "pw"}, {"password": 1234}],
            "token": {"nested": "still seen"},
        });
        let r = redact_json(&v);
        assert_eq!(r["url"], "https://x.test/");
        assert_eq!(r["headers"]["Authorization"], REDACTED);
        assert_eq!(r["headers"]["X-Api-Key"], REDACTED);
        assert_eq!(r["headers"]["X-Ref"], json!({"secret": "api_token"}));
        assert_eq!(r["headers"]["Accept"], "text/html");
        // A step's `secret` names a secret: one key among others, a string → redacted (the
        // name is harmless, but nothing here decides which strings are names).
        assert_eq!(r["steps"][0]["secret"], REDACTED);
        assert_eq!(r["steps"][1]["password"], REDACTED);
        assert_eq!(r["token"]["nested"], "still seen");
        assert!(!r.to_string().contains("abc") && !r.to_string().contains("k1"));
    }

    #[test]
    fn scrub_replaces_every_value() {
        let s = scrub("a hunter2 b hunter2", [&"hunter2".to_string()]);
        assert_eq!(s, "a *** b ***");
    }
}
