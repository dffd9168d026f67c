//! The names users give things, one rule each, in one place: jobs, quotas, browser profiles,
//! secrets. Each rule has its text for error messages.

/// A name of at most `max` bytes whose first byte passes `first` and every byte `rest`.
fn shaped(name: &str, max: usize, first: fn(u8) -> bool, rest: fn(u8) -> bool) -> bool {
    let b = name.as_bytes();
    !b.is_empty() && b.len() <= max && first(b[0]) && b.iter().all(|c| rest(*c))
}

fn lower_or_digit(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

pub const JOB_RULE: &str = "expected [a-z0-9][a-z0-9._-]{0,127}";

/// `[a-z0-9][a-z0-9._-]{0,127}`
pub fn job(name: &str) -> bool {
    shaped(name, 128, lower_or_digit, |c| {
        lower_or_digit(c) || b"._-".contains(&c)
    })
}

pub const QUOTA_RULE: &str = "a name matching [a-z0-9][a-z0-9._:-]{0,127}, like linkedin:messages";

/// `[a-z0-9][a-z0-9._:-]{0,127}` (a colon groups quotas: `linkedin:messages`).
pub fn quota(name: &str) -> bool {
    shaped(name, 128, lower_or_digit, |c| {
        lower_or_digit(c) || b"._:-".contains(&c)
    })
}

pub const PROFILE_RULE: &str = "expected [a-z0-9_-]{1,64}";

/// `[a-z0-9_-]{1,64}` (a directory under `<state_dir>/profiles`).
pub fn profile(name: &str) -> bool {
    let rest = |c: u8| lower_or_digit(c) || b"_-".contains(&c);
    shaped(name, 64, rest, rest)
}

pub const SECRET_RULE: &str = "expected [A-Z0-9_]{1,64}";

/// `[A-Z0-9_]{1,64}`: the names `[browser.secrets]` and `OVERSEER_SECRET_<NAME>` use.
pub fn secret(name: &str) -> bool {
    let rest = |c: u8| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_';
    shaped(name, 64, rest, rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule() {
        for ok in ["a", "site-status", "0.x_y-z", &"a".repeat(128)] {
            assert!(job(ok), "{ok}");
        }
        for bad in ["", "A", "-a", "a b", "a:b", &"a".repeat(129)] {
            assert!(!job(bad), "{bad}");
        }
        assert!(quota("linkedin:messages") && quota("0a.b_c-d"));
        assert!(!quota("Linkedin") && !quota("-x") && !quota("") && !quota(&"a".repeat(129)));
        assert!(profile("work-1") && profile("_x") && !profile("Work") && !profile("a.b"));
        assert!(!profile(&"a".repeat(65)) && profile(&"a".repeat(64)));
        assert!(secret("SITE_PASSWORD") && secret("_1") && !secret("pw") && !secret(""));
    }
}
