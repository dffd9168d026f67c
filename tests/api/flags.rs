//! Feature flags: configured from file and environment, overridden at runtime on every node.

use std::time::Duration;

use crate::common::*;

#[test]
fn flags_come_from_config_and_env() {
    let db = TestDb::new();
    let (mut spawn, tmp) = Spawn::with_db(&db);
    spawn
        .env
        .push(("ANTI_DETECTION_ENABLED".into(), "false".into()));
    spawn
        .env
        .push(("OVERSEER__FLAGS__NOTIFICATIONS".into(), "false".into()));
    let o = spawn.start_with_tmp(Some(tmp));
    let flags = o.get("/api/v1/flags", Some(&o.tokens.viewer)).json();
    let shown = |name: &str| {
        let f = &flags[name];
        (
            f["enabled"].as_bool().unwrap(),
            f["source"].as_str().unwrap().to_string(),
            f["configured_from"].as_str().map(str::to_string),
        )
    };
    assert_eq!(
        shown("anti_detection"),
        (false, "env".into(), Some("ANTI_DETECTION_ENABLED".into())),
        "{flags}"
    );
    assert_eq!(
        shown("notifications"),
        (
            false,
            "env".into(),
            Some("OVERSEER__FLAGS__NOTIFICATIONS".into())
        )
    );
    assert_eq!(shown("zombie_detection"), (true, "default".into(), None));
    assert_eq!(flags["quota_enforcement"]["percent"], 100);
    assert_eq!(flags["anti_detection"]["rollout_by"], "profile");
    o.logs
        .wait_json("startup log naming the flag", Duration::from_secs(5), |v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.contains("anti_detection is off"))
        });
}

/// A flag overridden through one node holds on a second node within seconds and changes
/// what it does (quota enforcement off: over-limit use admitted), survives the second
/// node's restart, and `DELETE` returns both to the configured value; refusals name the
/// field; every change is audited.
#[test]
fn a_runtime_flag_override_reaches_every_node_and_survives_a_restart() {
    let db = TestDb::new();
    let start = || TestApp::start(&db, "[[quotas]]\nname = \"posts\"\nlimits = { hour = 1 }");
    let a = start();
    let mut b = start();
    let flag = |o: &TestApp, name: &str| o.get("/api/v1/flags", o.admin()).json()[name].clone();
    let consume = |o: &TestApp| {
        o.post("/api/v1/quotas/posts/consume", o.admin(), None)
            .status
    };
    assert_eq!(consume(&b), 200);
    assert_eq!(consume(&b), 429, "enforced as configured");

    // Refusals: unknown flag, bad setting, a viewer.
    assert_eq!(
        a.put(
            "/api/v1/flags/warp_drive",
            a.admin(),
            r#"{"enabled": true}"#
        )
        .status,
        404
    );
    let bad = a.put(
        "/api/v1/flags/zombie_detection",
        a.admin(),
        r#"{"percent": 40}"#,
    );
    assert_eq!(bad.status, 422);
    assert_eq!(bad.json()["error"]["fields"][0]["path"], "percent");
    let viewer = a.put(
        "/api/v1/flags/quota_enforcement",
        Some(&a.tokens.viewer),
        r#"{"enabled": false}"#,
    );
    assert_eq!(viewer.status, 403);

    let set = a.put(
        "/api/v1/flags/quota_enforcement",
        a.admin(),
        r#"{"enabled": false}"#,
    );
    assert_eq!(set.status, 200, "{}", set.text);
    let v = set.json();
    assert_eq!(
        (v["enabled"].as_bool(), v["source"].as_str()),
        (Some(false), Some("runtime"))
    );
    assert_eq!(v["set_by"], "test-admin");
    assert_eq!(v["configured"], true);
    // Set again: the change replaces the override just set (its audit row says so).
    let again = a.put(
        "/api/v1/flags/quota_enforcement",
        a.admin(),
        r#"{"enabled": false}"#,
    );
    assert_eq!(again.status, 200, "{}", again.text);
    wait_for("node b sees the override", Duration::from_secs(10), || {
        (flag(&b, "quota_enforcement")["source"] == "runtime").then_some(())
    });
    assert_eq!(
        consume(&b),
        200,
        "not enforced any more: admitted over the limit"
    );

    // A restart of b keeps it (read before b is ready).
    b.signal(nix::sys::signal::Signal::SIGTERM);
    b.wait_exit(Duration::from_secs(30));
    let b = start();
    let f = flag(&b, "quota_enforcement");
    assert_eq!(
        (f["enabled"].as_bool(), f["source"].as_str()),
        (Some(false), Some("runtime")),
        "{f}"
    );
    assert_eq!(consume(&b), 200);

    // Back to the configuration, everywhere.
    let reset = request(
        "DELETE",
        &a.url("/api/v1/flags/quota_enforcement"),
        a.admin(),
        &[],
        None,
    );
    assert_eq!(reset.status, 200, "{}", reset.text);
    assert_eq!(reset.json()["source"], "default");
    let again = request(
        "DELETE",
        &a.url("/api/v1/flags/quota_enforcement"),
        a.admin(),
        &[],
        None,
    );
    assert_eq!(again.status, 404);
    wait_for(
        "node b is back to the configured value",
        Duration::from_secs(10),
        || (flag(&b, "quota_enforcement")["source"] == "default").then_some(()),
    );
    assert_eq!(consume(&b), 429);

    let audit = a.get("/api/v1/audit?target=flag/", a.admin()).json();
    let actions: Vec<(String, String)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap().into(),
                r["outcome"].as_str().unwrap().into(),
            )
        })
        .collect();
    for expected in [
        ("flag.set", "ok"),
        ("flag.reset", "ok"),
        ("flag.set", "refused"),
        ("flag.reset", "refused"),
    ] {
        assert!(
            actions.contains(&(expected.0.into(), expected.1.into())),
            "{expected:?} in {actions:?}"
        );
    }
    let sets: Vec<&serde_json::Value> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "flag.set" && r["outcome"] == "ok")
        .collect();
    assert_eq!(sets.len(), 2, "{sets:?}");
    // Newest first: the second set replaced the first's override.
    assert_eq!(
        sets[0]["diff"]["override"]["from"]["percent"], 0,
        "{}",
        sets[0]
    );
    let set_row = sets[1];
    assert_eq!(
        set_row["diff"]["percent"],
        serde_json::json!({"from": 100, "to": 0})
    );
    assert!(set_row["diff"]["override"]["from"].is_null(), "{set_row}");
    // The reset's row names the override it removed (returned by the DELETE itself).
    let reset_row = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["action"] == "flag.reset" && r["outcome"] == "ok")
        .unwrap();
    assert_eq!(
        reset_row["diff"]["percent"],
        serde_json::json!({"from": 0, "to": 100}),
        "{reset_row}"
    );
    assert!(
        !reset_row["diff"]["override"]["from"].is_null(),
        "{reset_row}"
    );
}
