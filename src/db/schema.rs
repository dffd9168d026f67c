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

diesel::table! {
    jobs (id) {
        id -> Uuid,
        name -> Text,
        kind -> Text,
        payload -> Jsonb,
        schedule -> Jsonb,
        policy -> Jsonb,
        state -> Text,
        next_fire_at -> Nullable<Timestamptz>,
        priority -> Int2,
        overlap -> Text,
        tags -> Array<Text>,
        metadata -> Jsonb,
        source -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        quota -> Jsonb,
    }
}

diesel::table! {
    runs (id) {
        id -> Uuid,
        job_id -> Uuid,
        fire_at -> Timestamptz,
        attempt -> Int4,
        state -> Text,
        node_id -> Nullable<Uuid>,
        priority -> Int2,
        overlap -> Text,
        covers -> Int4,
        queued_at -> Timestamptz,
        due_at -> Timestamptz,
        started_at -> Nullable<Timestamptz>,
        heartbeat_at -> Nullable<Timestamptz>,
        finished_at -> Nullable<Timestamptz>,
        error_kind -> Nullable<Text>,
        error_message -> Nullable<Text>,
        output -> Nullable<Jsonb>,
        lateness_ms -> Nullable<Int8>,
        progress -> Nullable<Text>,
        progress_at -> Nullable<Timestamptz>,
        began_at -> Nullable<Timestamptz>,
        waiting -> Nullable<Jsonb>,
        waited_ms -> Int8,
    }
}

diesel::table! {
    run_tokens (token_hash) {
        token_hash -> Text,
        run_id -> Uuid,
        attempt -> Int4,
        quotas -> Array<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    idempotency_keys (key) {
        key -> Text,
        request_hash -> Text,
        status -> Int2,
        response -> Jsonb,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(runs -> jobs (job_id));
diesel::allow_tables_to_appear_in_same_query!(
    jobs,
    runs,
    nodes,
    idempotency_keys,
    leader_lease,
    notifications,
    quotas,
    quota_usage,
    circuits
);

diesel::table! {
    leader_lease (name) {
        name -> Text,
        node_id -> Uuid,
        acquired_at -> Timestamptz,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    notifications (id) {
        id -> Uuid,
        event -> Text,
        severity -> Text,
        subject -> Text,
        body -> Text,
        data -> Jsonb,
        channel -> Text,
        dedupe_key -> Text,
        state -> Text,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
        sent_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    quotas (name) {
        name -> Text,
        hour_limit -> Nullable<Int8>,
        day_limit -> Nullable<Int8>,
        week_limit -> Nullable<Int8>,
        timezone -> Text,
        week_start -> Text,
        source -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    quota_usage (quota, window_kind, window_start) {
        quota -> Text,
        window_kind -> Text,
        window_start -> Timestamptz,
        window_end -> Timestamptz,
        used -> Int8,
    }
}

diesel::joinable!(quota_usage -> quotas (quota));

diesel::table! {
    circuits (domain) {
        domain -> Text,
        state -> Text,
        failures -> Int4,
        opens -> Int4,
        open_until -> Nullable<Timestamptz>,
        last_error -> Nullable<Text>,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    browser_sessions (hostname, profile) {
        hostname -> Text,
        profile -> Text,
        node_id -> Nullable<Uuid>,
        state -> Text,
        pid -> Nullable<Int4>,
        launches -> Int8,
        crashes -> Int8,
        runs -> Int8,
        last_error -> Nullable<Text>,
        launched_at -> Nullable<Timestamptz>,
        last_used_at -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    once_keys (job_id, key) {
        job_id -> Uuid,
        key -> Text,
        state -> Text,
        run_id -> Uuid,
        attempt -> Int4,
        started_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
        interrupted_at -> Nullable<Timestamptz>,
    }
}
