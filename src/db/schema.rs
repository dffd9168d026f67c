// The shape `diesel print-schema` produces for the tables in migrations/; keep the two in step
// (every query in db/ runs against the migrated database in the tests, so a drift fails them).

diesel::table! {
    nodes (id) {
        id -> Uuid,
        hostname -> Text,
        pid -> Int4,
        version -> Text,
        started_at -> Timestamptz,
        last_seen -> Timestamptz,
        stopped_at -> Nullable<Timestamptz>,
    }
}
