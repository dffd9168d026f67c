//! Job creation with an idempotency key, and schedule previews across DST.

use crate::common::*;

/// `Idempotency-Key` on job creation: a retried identical request gets the first answer
/// (marked replayed), the same key with another body is a 409, and one job exists.
#[test]
fn job_creation_with_an_idempotency_key_happens_once() {
    let db = TestDb::new();
    let o = TestApp::start(&db, "[scheduler]\nenabled = false");
    let post = |body: &str| {
        let res = ureq::post(&o.url("/api/v1/jobs"))
            .set("Authorization", &format!("Bearer {}", o.tokens.admin))
            .set("Content-Type", "application/json")
            .set("Idempotency-Key", "create-once-1")
            .send_string(body);
        let r = match res {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{e}"),
        };
        let replayed = r.header("idempotency-replayed").map(str::to_string);
        (r.status(), replayed, r.into_string().unwrap())
    };
    let body = r#"{"name": "once", "kind": "noop", "schedule": {"every": "1h"}}"#;
    let (status, replayed, first) = post(body);
    assert_eq!((status, replayed.as_deref()), (201, None), "{first}");
    let (status, replayed, again) = post(body);
    assert_eq!(
        (status, replayed.as_deref()),
        (201, Some("true")),
        "{again}"
    );
    let id = |t: &str| serde_json::from_str::<serde_json::Value>(t).unwrap()["id"].clone();
    assert_eq!(id(&first), id(&again));
    let (status, _, other) =
        post(r#"{"name": "other", "kind": "noop", "schedule": {"every": "1h"}}"#);
    assert_eq!(status, 409, "{other}");
    let jobs = o.get("/api/v1/jobs", o.admin()).json();
    assert_eq!(jobs["items"].as_array().unwrap().len(), 1, "{jobs}");
}

/// The schedule preview the dashboard shows: the next fires in the schedule's timezone,
/// across a daylight-saving change; a bad schedule is a 422 at its field.
#[test]
fn schedule_previews_follow_the_timezone_across_dst() {
    let db = TestDb::new();
    let o = TestApp::start(&db, "");
    let body = serde_json::json!({"schedule": {"cron": "0 3 * * 0", "timezone": "Europe/Berlin"}, "count": 60});
    let a = o.post(
        "/api/v1/schedules/preview",
        Some(&o.tokens.viewer),
        Some(&body.to_string()),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    let v = a.json();
    assert_eq!(v["timezone"], "Europe/Berlin");
    let fires = v["fires"].as_array().unwrap();
    assert_eq!(fires.len(), 60);
    // Every fire is 03:00 on a Sunday in Berlin, whether the offset is +01:00 or +02:00.
    let mut offsets = std::collections::BTreeSet::new();
    for f in fires {
        let local = chrono::DateTime::parse_from_rfc3339(f["local"].as_str().unwrap()).unwrap();
        assert_eq!(local.format("%H:%M %a").to_string(), "03:00 Sun", "{f}");
        let at = chrono::DateTime::parse_from_rfc3339(f["at"].as_str().unwrap()).unwrap();
        assert_eq!(at, local, "the same instant");
        offsets.insert(local.offset().local_minus_utc());
    }
    assert_eq!(
        offsets.into_iter().collect::<Vec<_>>(),
        [3600, 7200],
        "winter and summer time both seen"
    );
    let bad = o.post(
        "/api/v1/schedules/preview",
        Some(&o.tokens.viewer),
        Some(r#"{"schedule": {"cron": "61 * * * *"}}"#),
    );
    assert_eq!(bad.status, 422, "{}", bad.text);
    assert_eq!(bad.json()["error"]["fields"][0]["path"], "schedule.cron");
}
