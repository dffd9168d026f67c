//! API rate limits (`[server.rate_limit]`): a token bucket (`governor`'s GCRA) per caller —
//! per token name, per dashboard session's token, per run for run tokens — and one per source
//! address for requests that did not authenticate (a missing or wrong token counts there, so
//! guessing tokens is limited too). Quota consumption (`/quotas/{name}/consume|refund`) and
//! run tokens take the `scripts` budget, higher than the default. Over the limit: 429 with
//! `Retry-After` and the standard error body.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::auth::Caller;
use crate::config::RateLimitConfig;
use crate::telemetry::names;

/// The budgets (what a request is counted against).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    Token,
    Scripts,
    Anonymous,
}

impl Budget {
    fn label(self) -> &'static str {
        match self {
            Budget::Token => "token",
            Budget::Scripts => "scripts",
            Budget::Anonymous => "anonymous",
        }
    }
}

pub struct Limits {
    token: DefaultKeyedRateLimiter<String>,
    scripts: DefaultKeyedRateLimiter<String>,
    anonymous: DefaultKeyedRateLimiter<IpAddr>,
    trusted_proxies: Vec<IpAddr>,
    checks: AtomicU64,
}

/// How many checks between sweeps of buckets that are full again (they hold no state).
const SWEEP_EVERY: u64 = 4096;

fn quota(rate: u32, burst: u32) -> Quota {
    let rate = NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst).unwrap_or(rate);
    Quota::per_second(rate).allow_burst(burst)
}

impl Limits {
    pub fn new(c: &RateLimitConfig, trusted_proxies: &[IpAddr]) -> Self {
        Self {
            trusted_proxies: trusted_proxies.to_vec(),
            token: RateLimiter::keyed(quota(c.rate, c.burst)),
            scripts: RateLimiter::keyed(quota(c.scripts_rate, c.scripts_burst)),
            anonymous: RateLimiter::keyed(quota(c.anonymous_rate, c.anonymous_burst)),
            checks: AtomicU64::new(0),
        }
    }

    /// Counts one request of an authenticated caller on `path`; Err(wait) when over.
    pub fn caller(&self, caller: &Caller, path: &str) -> Result<(), Duration> {
        let scripts = caller.run.is_some()
            || (path.starts_with("/api/v1/quotas/")
                && (path.ends_with("/consume") || path.ends_with("/refund")));
        let key = match &caller.run {
            Some(grant) => format!("run:{}", grant.run_id),
            None => format!("token:{}", caller.name),
        };
        if scripts {
            self.outcome(Budget::Scripts, check(&self.scripts, &key))
        } else {
            self.outcome(Budget::Token, check(&self.token, &key))
        }
    }

    /// `anonymous` for a request: its peer and its `X-Forwarded-For` header.
    pub fn anonymous_request(&self, req: &actix_web::HttpRequest) -> Result<(), Duration> {
        let forwarded = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok());
        self.anonymous(req.peer_addr(), forwarded)
    }

    /// Counts one request that did not authenticate against its client's address (see
    /// [`client_addr`]); Err(wait) when over. Without a peer address (a Unix socket, a test
    /// harness) nothing is counted.
    pub fn anonymous(
        &self,
        peer: Option<std::net::SocketAddr>,
        forwarded_for: Option<&str>,
    ) -> Result<(), Duration> {
        let Some(peer) = peer else { return Ok(()) };
        let addr = client_addr(peer.ip(), forwarded_for, &self.trusted_proxies);
        self.outcome(Budget::Anonymous, check(&self.anonymous, &addr))
    }

    fn outcome(&self, budget: Budget, r: Result<(), Duration>) -> Result<(), Duration> {
        let outcome = if r.is_ok() { "allowed" } else { "limited" };
        metrics::counter!(names::API_RATE_LIMIT, "budget" => budget.label(), "outcome" => outcome)
            .increment(1);
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.token.retain_recent();
            self.scripts.retain_recent();
            self.anonymous.retain_recent();
        }
        r
    }
}

fn check<K: std::hash::Hash + Eq + Clone>(
    limiter: &DefaultKeyedRateLimiter<K>,
    key: &K,
) -> Result<(), Duration> {
    limiter
        .check_key(key)
        .map(|_| ())
        .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
}

/// The client's address: the peer's, unless the peer is a trusted proxy — then the last
/// address in `X-Forwarded-For` that is not one (proxies append; what a client wrote
/// itself comes first and is not believed), or the first when all of them are trusted.
pub fn client_addr(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let chain: Vec<IpAddr> = forwarded_for
        .unwrap_or("")
        .split(',')
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    chain
        .iter()
        .rev()
        .find(|a| !trusted.contains(a))
        .or(chain.first())
        .copied()
        .unwrap_or(peer)
}

/// `Retry-After` in whole seconds (at least 1).
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Role;

    fn caller(name: &str) -> Caller {
        Caller {
            name: name.into(),
            role: Role::Operator,
            run: None,
        }
    }

    #[test]
    fn a_token_gets_its_burst_then_waits_and_others_are_unaffected() {
        let limits = Limits::new(
            &RateLimitConfig {
                rate: 1,
                burst: 3,
                scripts_rate: 1,
                scripts_burst: 10,
                anonymous_rate: 1,
                anonymous_burst: 2,
            },
            &[],
        );
        let a = caller("a");
        for _ in 0..3 {
            assert!(limits.caller(&a, "/api/v1/jobs").is_ok());
        }
        let wait = limits.caller(&a, "/api/v1/jobs").unwrap_err();
        assert!(wait <= Duration::from_secs(1) && retry_after_secs(wait) == 1);
        assert!(limits.caller(&caller("b"), "/api/v1/jobs").is_ok());
        // The consume endpoint counts against the larger scripts budget.
        for _ in 0..10 {
            assert!(limits.caller(&a, "/api/v1/quotas/q/consume").is_ok());
        }
        assert!(limits.caller(&a, "/api/v1/quotas/q/consume").is_err());
        let peer = Some("127.0.0.1:5000".parse().unwrap());
        assert!(limits.anonymous(peer, None).is_ok() && limits.anonymous(peer, None).is_ok());
        assert!(limits.anonymous(peer, None).is_err());
        assert!(limits
            .anonymous(Some("[::1]:5000".parse().unwrap()), None)
            .is_ok());
        // Not a trusted proxy: its X-Forwarded-For changes nothing.
        assert!(limits.anonymous(peer, Some("10.0.0.9")).is_err());
    }

    #[test]
    fn the_client_behind_a_trusted_proxy_is_the_last_untrusted_forwarded_address() {
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        let proxy = [ip("127.0.0.1")];
        // Not trusted: the peer, whatever the header says.
        assert_eq!(
            client_addr(ip("10.1.1.1"), Some("1.2.3.4"), &proxy),
            ip("10.1.1.1")
        );
        // Trusted: the last untrusted address (what the client wrote itself comes first).
        assert_eq!(
            client_addr(ip("127.0.0.1"), Some("6.6.6.6, 203.0.113.7"), &proxy),
            ip("203.0.113.7")
        );
        assert_eq!(
            client_addr(ip("127.0.0.1"), Some("203.0.113.7, 127.0.0.1"), &proxy),
            ip("203.0.113.7")
        );
        // Trusted but no usable header: the peer.
        assert_eq!(
            client_addr(ip("127.0.0.1"), Some("garbage"), &proxy),
            ip("127.0.0.1")
        );
        assert_eq!(client_addr(ip("127.0.0.1"), None, &proxy), ip("127.0.0.1"));
    }
}
