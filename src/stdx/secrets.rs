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
