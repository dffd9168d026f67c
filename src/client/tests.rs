//! The client commands' tables, queries and exit codes.

use super::*;

#[test]
fn tables_align_and_show_missing_values_as_dashes() {
    let t = jobs_table(&json!([
        {"name": "a", "kind": "noop", "state": "active", "schedule": {"every": "1h"}, "next_fire_at": null},
        {"name": "longer-name", "kind": "http", "state": "paused", "schedule": {"cron": "0 9 * * *", "timezone": "Europe/Berlin"}, "next_fire_at": "2026-12-02T08:00:00Z"},
    ]));
    assert_eq!(
        t,
        "NAME         KIND  STATE   SCHEDULE                        NEXT FIRE\n\
         a            noop  active  every 1h                        -\n\
         longer-name  http  paused  cron 0 9 * * * (Europe/Berlin)  2026-12-02T08:00:00Z"
    );
}

#[test]
fn path_segments_and_queries_are_encoded() {
    assert_eq!(seg("birthday:c1 x"), "birthday%3Ac1%20x");
    assert_eq!(
        query(&[("job", Some("a b".into())), ("state", None)]),
        "?job=a+b"
    );
    assert_eq!(query(&[("state", None)]), "");
}
