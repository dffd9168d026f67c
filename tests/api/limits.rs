//! Rate limits per token.

use std::time::Duration;

use crate::common::*;

#[test]
fn a_flood_from_one_token_is_limited_and_another_token_is_not() {
    let db = TestDb::new();
    let o = TestApp::start(
        &db,
        "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n\
             [server.rate_limit]\nrate = 2\nburst = 10\nscripts_rate = 2\nscripts_burst = 30\n\
             anonymous_rate = 1\nanonymous_burst = 5\n",
    );
    // The operator floods: its burst passes, then 429 with Retry-After and the standard body.
    let answers: Vec<Answer> = (0..25)
        .map(|_| o.get("/api/v1/jobs", Some(&o.tokens.operator)))
        .collect();
    let ok = answers.iter().filter(|a| a.status == 200).count();
    let limited: Vec<&Answer> = answers.iter().filter(|a| a.status == 429).collect();
    assert!(
        (10..=13).contains(&ok),
        "the burst (10) and what refilled meanwhile: {ok}"
    );
    assert_eq!(ok + limited.len(), 25);
    let one = limited[0];
    assert_eq!(one.json()["error"]["code"], "rate_limited", "{}", one.text);
    assert!(one.json()["error"]["request_id"].is_string());
    let secs: u64 = one.retry_after.as_deref().unwrap().parse().unwrap();
    assert!((1..=2).contains(&secs), "Retry-After: {secs}");
    // Another token is not affected, nor the scripts' budget of the same token.
    assert_eq!(o.get("/api/v1/jobs", Some(&o.tokens.viewer)).status, 200);
    let quota = o.put(
        "/api/v1/quotas/flood",
        o.admin(),
        &serde_json::json!({"limits": {"day": 1000}}).to_string(),
    );
    assert!(quota.status == 200 || quota.status == 201, "{}", quota.text);
    for _ in 0..20 {
        let a = o.post(
            "/api/v1/quotas/flood/consume",
            Some(&o.tokens.operator),
            Some(r#"{"cost": 1}"#),
        );
        assert_eq!(a.status, 200, "{}", a.text);
    }
    // The flooding token gets through again once its bucket refilled.
    let again = wait_for(
        "the operator's bucket refilled",
        Duration::from_secs(10),
        || {
            let a = o.get("/api/v1/jobs", Some(&o.tokens.operator));
            (a.status == 200).then_some(a)
        },
    );
    assert_eq!(again.status, 200);
    // Guessing tokens counts against the address: 401 first, then 429.
    let guesses: Vec<u16> = (0..8)
        .map(|i| o.get("/api/v1/jobs", Some(&format!("ovs_wrong{i}"))).status)
        .collect();
    assert_eq!(&guesses[..5], &[401; 5], "{guesses:?}");
    assert!(guesses[5..].contains(&429), "{guesses:?}");
    // Behind a trusted proxy (127.0.0.1 here) each client has a budget of its own: the one
    // the proxy names in X-Forwarded-For is not the one that was guessing.
    let behind = |client: &str| {
        request(
            "GET",
            &o.url("/api/v1/jobs"),
            Some("ovs_wrong"),
            &[("X-Forwarded-For", client)],
            None,
        )
        .status
    };
    assert_eq!(behind("203.0.113.7"), 401, "a fresh client's first guess");
    let flood: Vec<u16> = (0..8).map(|_| behind("203.0.113.8")).collect();
    assert!(flood.contains(&429), "{flood:?}");
    assert_eq!(
        behind("203.0.113.9"),
        401,
        "another client is not limited by it"
    );
    let m = o.get("/metrics", None).text;
    assert!(
        m.lines()
            .any(|l| l.starts_with("overseer_api_rate_limit_checks_total")
                && l.contains("budget=\"token\"")
                && l.contains("outcome=\"limited\"")),
        "{m}"
    );
}
