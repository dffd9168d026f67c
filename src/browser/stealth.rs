//! Anti-detection (the `anti_detection` flag): a driven Chromium made indistinguishable from
//! a person's, by launch flags and CDP settings — no JavaScript patches in the page, so there
//! is nothing patched for a detector to find. What each piece does and why is in the README
//! ("Anti-detection"); this module holds the pure parts: the launch flags, the window a
//! profile has, the user agent and its client hints. Guardrails: no proxy rotation, no
//! CAPTCHA solving, no external fingerprinting services, nothing that contradicts itself.
//!
//! The rest lives where it acts: `world.rs` (our JS only in an isolated world), `input.rs`
//! (pointer paths, press gaps, wheel, keys), `run.rs` (the page's user agent override and
//! `Runtime.disable`).

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Screens people have (the common desktop resolutions), one per profile.
const SCREENS: &[(u32, u32)] = &[
    (1920, 1080),
    (1536, 864),
    (1366, 768),
    (1440, 900),
    (1600, 900),
    (1680, 1050),
    (1920, 1200),
    (2560, 1440),
];

/// The screen and browser window of a profile: the same on every launch, different between
/// profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub screen: (u32, u32),
    pub size: (u32, u32),
    pub position: (u32, u32),
}

impl Window {
    pub fn of_profile(profile: &str) -> Self {
        let h = Sha256::digest(profile.as_bytes());
        let screen = SCREENS[h[0] as usize % SCREENS.len()];
        // Half the profiles keep the window maximized (less a panel), the others a window a
        // little smaller than the screen, somewhere on it.
        if h[1] % 2 == 0 {
            let panel = [0, 24, 32, 40, 48][h[2] as usize % 5];
            Window {
                screen,
                size: (screen.0, screen.1 - panel),
                position: (0, panel),
            }
        } else {
            let w = screen.0 * (80 + u32::from(h[2] % 16)) / 100;
            let hgt = screen.1 * (82 + u32::from(h[3] % 14)) / 100;
            let x = (screen.0 - w) * u32::from(h[4] % 101) / 100;
            let y = (screen.1 - hgt) * u32::from(h[5] % 101) / 100;
            Window {
                screen,
                size: (w, hgt),
                position: (x, y),
            }
        }
    }
}

/// The launch flags that make the browser itself look like a person's:
/// `navigator.webdriver` false everywhere (not deleted: the `AutomationControlled` feature
/// off), the user agent without "Headless" in every frame and worker and on the wire, a
/// screen at least the window, a mouse (fine pointer, hover), the profile's languages.
pub fn launch_flags(window: &Window, user_agent: &str, locale: &str) -> Vec<String> {
    vec![
        "--disable-blink-features=AutomationControlled".into(),
        format!("--user-agent={user_agent}"),
        format!("--window-size={},{}", window.size.0, window.size.1),
        format!("--window-position={},{}", window.position.0, window.position.1),
        format!("--screen-info={{{}x{}}}", window.screen.0, window.screen.1),
        "--blink-settings=primaryPointerType=4,availablePointerTypes=4,primaryHoverType=2,availableHoverTypes=2".into(),
        format!("--accept-lang={}", accept_language(locale)),
    ]
}

/// `de-DE` → `de-DE,de`: what a person's browser set to that language sends.
pub fn accept_language(locale: &str) -> String {
    match locale.split_once('-') {
        Some((lang, _)) if !lang.is_empty() => format!("{locale},{lang}"),
        _ => locale.to_string(),
    }
}

/// The browser's version (`148.0.7778.167`) from what `chromium --version` prints.
pub fn version_of(version_output: &str) -> Option<String> {
    version_output
        .split_whitespace()
        .find(|w| {
            let parts: Vec<&str> = w.split('.').collect();
            parts.len() == 4 && parts.iter().all(|p| p.parse::<u32>().is_ok())
        })
        .map(str::to_string)
}

/// The user agent Chrome of this version sends on Linux (the reduced user agent: the minor
/// version numbers are zero and the platform is fixed, as in every current Chrome).
pub fn user_agent(version: &str) -> String {
    let major = version.split('.').next().unwrap_or(version);
    format!(
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{major}.0.0.0 Safari/537.36"
    )
}

/// A user agent without "Headless" (Chromium's headless UA says `HeadlessChrome`).
pub fn plain_user_agent(ua: &str) -> String {
    ua.replace("HeadlessChrome", "Chrome")
}

/// The user agent client hints (`navigator.userAgentData`, `Sec-CH-UA*`) matching the user
/// agent: the browser's own brands (as it reports them) with the full version, the real
/// architecture. Setting a user agent at launch empties the high-entropy hints; this puts
/// back the values the browser would have reported itself. CDP's `UserAgentMetadata`.
pub fn client_hints(brands: &[(String, String)], full_version: &str) -> Value {
    let major = full_version.split('.').next().unwrap_or(full_version);
    let full = |v: &str| {
        if v == major {
            full_version.to_string()
        } else {
            format!("{v}.0.0.0")
        }
    };
    let (architecture, bitness) = match std::env::consts::ARCH {
        "x86_64" => ("x86", "64"),
        "x86" => ("x86", "32"),
        "aarch64" => ("arm", "64"),
        "arm" => ("arm", "32"),
        other => (other, "64"),
    };
    json!({
        "brands": brands.iter().map(|(b, v)| json!({"brand": b, "version": v})).collect::<Vec<_>>(),
        "fullVersionList": brands.iter().map(|(b, v)| json!({"brand": b, "version": full(v)})).collect::<Vec<_>>(),
        "fullVersion": full_version,
        "platform": "Linux",
        "platformVersion": "",
        "architecture": architecture,
        "model": "",
        "mobile": false,
        "bitness": bitness,
        "wow64": false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agent_loses_headless() {
        assert_eq!(
            plain_user_agent("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/148.0.0.0 Safari/537.36"),
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/148.0.0.0 Safari/537.36"
        );
        let v = version_of("Chromium 148.0.7778.167 built on Debian GNU/Linux 12 (bookworm)");
        assert_eq!(v.as_deref(), Some("148.0.7778.167"));
        assert_eq!(
            user_agent("148.0.7778.167"),
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/148.0.0.0 Safari/537.36"
        );
    }

    #[test]
    fn languages_follow_the_locale() {
        assert_eq!(accept_language("de-DE"), "de-DE,de");
        assert_eq!(accept_language("en"), "en");
    }

    #[test]
    fn a_profile_keeps_its_window_and_it_fits_its_screen() {
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..200 {
            let name = format!("profile-{i}");
            let w = Window::of_profile(&name);
            assert_eq!(w, Window::of_profile(&name));
            assert!(w.size.0 <= w.screen.0 && w.size.1 <= w.screen.1, "{w:?}");
            assert!(w.position.0 + w.size.0 <= w.screen.0, "{w:?}");
            assert!(w.position.1 + w.size.1 <= w.screen.1, "{w:?}");
            assert_ne!(w.size, (800, 600));
            assert_ne!(w.size, (1280, 720));
            seen.insert(w.screen);
        }
        assert!(seen.len() >= 6, "profiles spread over screens: {seen:?}");
    }

    #[test]
    fn hints_carry_the_full_version_of_the_real_brand() {
        let brands = vec![
            ("Not/A)Brand".to_string(), "99".to_string()),
            ("Chromium".to_string(), "148".to_string()),
        ];
        let h = client_hints(&brands, "148.0.7778.167");
        assert_eq!(h["fullVersionList"][0]["version"], "99.0.0.0");
        assert_eq!(h["fullVersionList"][1]["version"], "148.0.7778.167");
        assert_eq!(h["platform"], "Linux");
    }
}
