//! Politeness before each navigation: an optional minimum interval between navigations to
//! one domain, counted from the end of the previous one (`browser.min_navigation_interval`, per-domain overrides in
//! `[browser.navigation_intervals]`), and an optional robots.txt check (`browser.robots_txt`,
//! off by default) following RFC 9309: the group for our product token or `*`, the longest
//! matching `Allow`/`Disallow` wins (`Allow` on a tie), `*` and `$` patterns; a robots.txt
//! that is missing (4xx) allows everything, one that cannot be fetched (5xx, network)
//! disallows everything, cached per origin for an hour.
//!
//! The interval is kept by this node only (several nodes each keep it for themselves).

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a fetched robots.txt is trusted.
const ROBOTS_TTL: Duration = Duration::from_secs(3600);
const ROBOTS_TIMEOUT: Duration = Duration::from_secs(10);
/// RFC 9309: parse at least 500 KiB; we stop there.
const ROBOTS_MAX: usize = 500 * 1024;

#[derive(Debug, Clone, Default)]
pub struct PolitenessConfig {
    /// Between two navigations to one domain; zero: no interval.
    pub min_interval: Duration,
    /// Per domain (a domain also covers its subdomains).
    pub per_domain: HashMap<String, Duration>,
    /// Check robots.txt before navigating.
    pub robots_txt: bool,
    /// Our product token in robots.txt groups.
    pub robots_user_agent: String,
}

pub struct Politeness {
    cfg: PolitenessConfig,
    /// Domain → when its last navigation started (reserved) or, once done, finished.
    next_slot: RefCell<HashMap<String, Instant>>,
    robots: RefCell<HashMap<String, (Instant, Rules)>>,
    http: reqwest::Client,
}

/// Why a navigation may not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

impl Politeness {
    pub fn new(cfg: PolitenessConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(ROBOTS_TIMEOUT)
            .redirect(reqwest::redirect::Policy::limited(5))
            .user_agent(format!(
                "{}/{}",
                cfg.robots_user_agent,
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .unwrap_or_default();
        Self {
            cfg,
            next_slot: RefCell::new(HashMap::new()),
            robots: RefCell::new(HashMap::new()),
            http,
        }
    }

    /// Whether any navigation interval is configured.
    fn spaces_navigations(&self) -> bool {
        !self.cfg.min_interval.is_zero() || !self.cfg.per_domain.is_empty()
    }

    /// A navigation to `url` finished: the domain's interval counts from now.
    pub fn after_navigation(&self, url: &str) {
        if !self.spaces_navigations() {
            return;
        }
        let Some(host) = url::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        else {
            return;
        };
        let now = Instant::now();
        let mut next = self.next_slot.borrow_mut();
        let at = next.entry(host).or_insert(now);
        *at = (*at).max(now);
    }

    /// Waits for the domain's navigation slot and checks robots.txt; `Err` when robots.txt
    /// disallows the URL. URLs that are not http(s) pass.
    pub async fn before_navigation(&self, url: &str) -> Result<(), Refused> {
        if !self.cfg.robots_txt && !self.spaces_navigations() {
            return Ok(());
        }
        let Ok(u) = url::Url::parse(url) else {
            return Ok(());
        };
        if !matches!(u.scheme(), "http" | "https") {
            return Ok(());
        }
        let Some(host) = u.host_str().map(str::to_ascii_lowercase) else {
            return Ok(());
        };
        if self.cfg.robots_txt {
            let origin = u.origin().ascii_serialization();
            let rules = self.rules(&origin).await;
            let mut path = u.path().to_string();
            if let Some(q) = u.query() {
                path.push('?');
                path.push_str(q);
            }
            if !rules.allows(&path) {
                return Err(Refused(format!("robots.txt of {origin} disallows {path}")));
            }
        }
        let interval = self.interval_for(&host);
        if !interval.is_zero() {
            let now = Instant::now();
            let slot = {
                let mut next = self.next_slot.borrow_mut();
                let slot = next
                    .get(&host)
                    .map(|last| *last + interval)
                    .filter(|t| *t > now)
                    .unwrap_or(now);
                next.insert(host.clone(), slot);
                slot
            };
            if slot > now {
                tracing::debug!(domain = %host, wait_ms = (slot - now).as_millis() as u64, "navigation waits for its domain's interval");
                tokio::time::sleep_until(slot.into()).await;
            }
        }
        Ok(())
    }

    /// The interval for a host: its own, or its closest parent domain's, or the default.
    fn interval_for(&self, host: &str) -> Duration {
        let mut h = host;
        loop {
            if let Some(d) = self.cfg.per_domain.get(h) {
                return *d;
            }
            match h.split_once('.') {
                Some((_, parent)) if !parent.is_empty() => h = parent,
                _ => return self.cfg.min_interval,
            }
        }
    }

    async fn rules(&self, origin: &str) -> Rules {
        if let Some((at, rules)) = self.robots.borrow().get(origin) {
            if at.elapsed() < ROBOTS_TTL {
                return rules.clone();
            }
        }
        let rules = match self.http.get(format!("{origin}/robots.txt")).send().await {
            Ok(resp) if resp.status().is_success() => match resp.bytes().await {
                Ok(body) => {
                    let body = &body[..body.len().min(ROBOTS_MAX)];
                    Rules::parse(&String::from_utf8_lossy(body), &self.cfg.robots_user_agent)
                }
                Err(_) => Rules::disallow_all(),
            },
            // "Unavailable": no rules.
            Ok(resp) if resp.status().is_client_error() => Rules::default(),
            // "Unreachable": assume complete disallow.
            Ok(_) | Err(_) => Rules::disallow_all(),
        };
        self.robots
            .borrow_mut()
            .insert(origin.to_string(), (Instant::now(), rules.clone()));
        rules
    }
}

/// (allow, pattern)
type Rule = (bool, String);

/// The rules of the group that applies to us.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    rules: Vec<Rule>,
}

impl Rules {
    fn disallow_all() -> Self {
        Self {
            rules: vec![(false, "/".into())],
        }
    }

    /// The rules for `agent` (case-insensitive product token) in a robots.txt, else `*`'s.
    pub fn parse(text: &str, agent: &str) -> Self {
        let agent = agent.to_ascii_lowercase();
        // Groups: (user agents, rules); consecutive user-agent lines share a group.
        let mut groups: Vec<(Vec<String>, Vec<Rule>)> = Vec::new();
        let mut in_agents = false;
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let key = key.trim().to_ascii_lowercase();
            let value = value.trim();
            match key.as_str() {
                "user-agent" => {
                    if !in_agents {
                        groups.push((Vec::new(), Vec::new()));
                        in_agents = true;
                    }
                    if let Some(g) = groups.last_mut() {
                        g.0.push(value.to_ascii_lowercase());
                    }
                }
                "allow" | "disallow" => {
                    in_agents = false;
                    if let Some(g) = groups.last_mut() {
                        // An empty Disallow allows everything: no rule.
                        if !value.is_empty() {
                            g.1.push((key == "allow", value.to_string()));
                        }
                    }
                }
                _ => {}
            }
        }
        let pick = |want: &dyn Fn(&str) -> bool| -> Option<Vec<Rule>> {
            let mut found = false;
            let mut rules = Vec::new();
            for (agents, r) in &groups {
                if agents.iter().any(|a| want(a)) {
                    found = true;
                    rules.extend(r.iter().cloned());
                }
            }
            found.then_some(rules)
        };
        let rules = pick(&|a: &str| a != "*" && agent.contains(a))
            .or_else(|| pick(&|a: &str| a == "*"))
            .unwrap_or_default();
        Self { rules }
    }

    /// Whether `path` (with its query) may be fetched.
    pub fn allows(&self, path: &str) -> bool {
        if path == "/robots.txt" {
            return true;
        }
        let mut best: Option<(usize, bool)> = None;
        for (allow, pattern) in &self.rules {
            if matches(pattern, path) {
                let len = pattern.len();
                best = match best {
                    Some((l, a)) if l > len || (l == len && a) => Some((l, a)),
                    _ => Some((len, *allow)),
                };
            }
        }
        best.is_none_or(|(_, allow)| allow)
    }
}

/// A robots.txt pattern: a path prefix where `*` matches any run and a final `$` anchors.
fn matches(pattern: &str, path: &str) -> bool {
    let glob = match pattern.strip_suffix('$') {
        Some(p) => p.to_string(),
        None => format!("{pattern}*"),
    };
    wildcard(glob.as_bytes(), path.as_bytes())
}

/// `*`-only glob over bytes (linear backtracking to the last star).
fn wildcard(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROBOTS: &str = "\
# comment
User-agent: *
Disallow: /private
Allow: /private/ok
Disallow: /*.pdf$

User-agent: overseer
User-agent: other
Disallow: /no-bots
";

    #[test]
    fn our_group_wins_over_star() {
        let r = Rules::parse(ROBOTS, "overseer");
        assert!(!r.allows("/no-bots/page"));
        assert!(r.allows("/private"), "the * group does not apply to us");
        let star = Rules::parse(ROBOTS, "somebot");
        assert!(star.allows("/no-bots"));
        assert!(!star.allows("/private/x"));
    }

    #[test]
    fn longest_match_and_allow_on_ties() {
        let r = Rules::parse(ROBOTS, "somebot");
        assert!(r.allows("/private/ok/page"));
        assert!(!r.allows("/private/other"));
        let tie = Rules::parse("User-agent: *\nDisallow: /a\nAllow: /a\n", "x");
        assert!(tie.allows("/a"));
    }

    #[test]
    fn wildcards_and_anchors() {
        let r = Rules::parse(ROBOTS, "somebot");
        assert!(!r.allows("/docs/file.pdf"));
        assert!(r.allows("/docs/file.pdf?download=1"));
        assert!(matches("/a*b", "/a-x-b-y"));
        assert!(!matches("/a*b$", "/a-x-b-y"));
        assert!(matches("/a*b$", "/a-x-b"));
        assert!(matches("/", "/anything"));
        assert!(matches("/x$", "/x"));
        assert!(!matches("/x$", "/xy"));
    }

    #[test]
    fn empty_disallow_and_no_group_allow_everything() {
        assert!(Rules::parse("User-agent: *\nDisallow:\n", "x").allows("/a"));
        assert!(Rules::parse("", "x").allows("/a"));
        assert!(!Rules::disallow_all().allows("/a"));
        assert!(Rules::disallow_all().allows("/robots.txt"));
    }

    #[test]
    fn intervals_apply_to_subdomains() {
        let mut per_domain = HashMap::new();
        per_domain.insert("example.com".to_string(), Duration::from_secs(5));
        let p = Politeness::new(PolitenessConfig {
            min_interval: Duration::from_secs(1),
            per_domain,
            robots_txt: false,
            robots_user_agent: "overseer".into(),
        });
        assert_eq!(p.interval_for("www.example.com"), Duration::from_secs(5));
        assert_eq!(p.interval_for("example.com"), Duration::from_secs(5));
        assert_eq!(p.interval_for("example.org"), Duration::from_secs(1));
        assert_eq!(p.interval_for("localhost"), Duration::from_secs(1));
    }
}
