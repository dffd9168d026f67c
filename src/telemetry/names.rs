//! Every metric overseer publishes: one list, conventional Prometheus names (`overseer_`
//! prefix, base units, `_total` counters), each described in [`describe_all`].

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

pub const BUILD_INFO: &str = "overseer_build_info";
pub const HTTP_REQUESTS: &str = "overseer_http_requests_total";
pub const HTTP_DURATION: &str = "overseer_http_request_duration_seconds";
pub const API_RATE_LIMIT: &str = "overseer_api_rate_limit_checks_total";
pub const ACTOR_UP: &str = "overseer_actor_up";
pub const ACTOR_RESTARTS: &str = "overseer_actor_restarts_total";
pub const SUPERVISOR_MELTDOWN: &str = "overseer_supervisor_meltdown";
pub const DATABASE_UP: &str = "overseer_database_up";
pub const DATABASE_PROBE_DURATION: &str = "overseer_database_probe_duration_seconds";
pub const NODE_HEARTBEATS: &str = "overseer_node_heartbeats_total";
pub const NODE_HEARTBEAT_FAILURES: &str = "overseer_node_heartbeat_failures_total";
pub const EVENTS: &str = "overseer_events_total";
pub const JOBS_FIRED: &str = "overseer_scheduler_jobs_fired_total";
pub const RUNS_CREATED: &str = "overseer_scheduler_runs_created_total";
pub const RUNS_DISPATCHED: &str = "overseer_scheduler_runs_dispatched_total";
pub const RUNS_HANDED_BACK: &str = "overseer_runs_handed_back_total";
pub const SCHEDULER_TICK_DURATION: &str = "overseer_scheduler_tick_duration_seconds";
pub const RUNS_FINISHED: &str = "overseer_runs_finished_total";
pub const RUN_DURATION: &str = "overseer_run_duration_seconds";
pub const RUN_LATENESS: &str = "overseer_run_lateness_seconds";
pub const EXECUTOR_IN_FLIGHT: &str = "overseer_executor_in_flight";
pub const RUNS_PRUNED: &str = "overseer_runs_pruned_total";
pub const LEADER: &str = "overseer_leader";
pub const ZOMBIES: &str = "overseer_zombies_detected_total";
pub const ZOMBIE_SWEEP_DURATION: &str = "overseer_zombie_sweep_duration_seconds";
pub const NOTIFICATIONS: &str = "overseer_notifications_total";
pub const NOTIFY_DURATION: &str = "overseer_notification_delivery_duration_seconds";
pub const NOTIFICATIONS_PENDING: &str = "overseer_notifications_pending";
pub const NOTIFICATIONS_PRUNED: &str = "overseer_notifications_pruned_total";
pub const BROWSER_SESSIONS: &str = "overseer_browser_sessions";
pub const BROWSER_LAUNCHES: &str = "overseer_browser_launches_total";
pub const BROWSER_CRASHES: &str = "overseer_browser_crashes_total";
pub const BROWSER_SESSION_RESTARTS: &str = "overseer_browser_session_restarts_total";
pub const CIRCUIT_TRANSITIONS: &str = "overseer_circuit_transitions_total";
pub const QUOTA_REMAINING: &str = "overseer_quota_remaining";
pub const QUOTA_CONSUMED: &str = "overseer_quota_consumed_total";
pub const QUOTA_REJECTED: &str = "overseer_quota_rejected_total";
pub const QUOTA_OVER_LIMIT: &str = "overseer_quota_over_limit_total";
pub const QUOTA_REFUNDED: &str = "overseer_quota_refunded_total";
pub const RUNS_CURRENT: &str = "overseer_runs_current";
pub const RUNS_OLDEST_DUE: &str = "overseer_runs_oldest_due_seconds";
pub const CIRCUITS_OPEN: &str = "overseer_circuits_open";
pub const AUDIT_PRUNED: &str = "overseer_audit_pruned_total";

/// Histogram buckets in seconds, from 1 ms to 10 s.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

pub fn describe_all() {
    describe_gauge!(
        BUILD_INFO,
        "Always 1; the labels carry the overseer version."
    );
    describe_counter!(
        HTTP_REQUESTS,
        "Admin API requests by method, route template and status."
    );
    describe_counter!(
        API_RATE_LIMIT,
        "Admin API rate-limit checks by budget (token, scripts, anonymous) and outcome (allowed, limited)."
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "Admin API request duration by method and route template."
    );
    describe_gauge!(
        ACTOR_UP,
        "1 when the supervised actor is running (rehydrated), 0 otherwise."
    );
    describe_counter!(
        ACTOR_RESTARTS,
        "Restarts of a supervised actor after a panic or an error exit."
    );
    describe_gauge!(
        SUPERVISOR_MELTDOWN,
        "1 once the restart intensity was exceeded and the supervisor gave up."
    );
    describe_gauge!(
        DATABASE_UP,
        "1 when the last database probe answered, 0 when it failed."
    );
    describe_histogram!(
        DATABASE_PROBE_DURATION,
        Unit::Seconds,
        "Duration of the database actor's liveness probe."
    );
    describe_counter!(
        NODE_HEARTBEATS,
        "Successful refreshes of this node's last_seen."
    );
    describe_counter!(
        NODE_HEARTBEAT_FAILURES,
        "Failed refreshes of this node's last_seen (database unreachable)."
    );
    describe_counter!(EVENTS, "Events emitted, by event name.");
    describe_counter!(JOBS_FIRED, "Due jobs whose fire was planned by this node.");
    describe_counter!(
        RUNS_CREATED,
        "Runs recorded by the fire step (pending, missed, skipped)."
    );
    describe_counter!(
        RUNS_DISPATCHED,
        "Runs claimed by this node and handed to its executor."
    );
    describe_counter!(
        RUNS_HANDED_BACK,
        "Runs claimed by this node that no executor took (an error after the claim, a dead executor) and went back to pending with the same attempt."
    );
    describe_histogram!(
        SCHEDULER_TICK_DURATION,
        Unit::Seconds,
        "Duration of one scheduler tick (fire + dispatch)."
    );
    describe_counter!(
        RUNS_FINISHED,
        "Runs finished on this node, by kind and final state."
    );
    describe_histogram!(
        RUN_DURATION,
        Unit::Seconds,
        "Execution time of runs, by kind."
    );
    describe_histogram!(
        RUN_LATENESS,
        Unit::Seconds,
        "Start time minus due time of dispatched runs."
    );
    describe_gauge!(EXECUTOR_IN_FLIGHT, "Runs executing on this node now.");
    describe_counter!(RUNS_PRUNED, "Terminal runs deleted by history retention.");
    describe_gauge!(
        LEADER,
        "1 while this node holds the maintenance lease (zombie sweeps, pruning)."
    );
    describe_counter!(ZOMBIES, "Zombie runs rescued by this node, by reason.");
    describe_histogram!(
        ZOMBIE_SWEEP_DURATION,
        Unit::Seconds,
        "Duration of one zombie sweep."
    );
    describe_counter!(
        NOTIFICATIONS,
        "Notification delivery attempts by channel and outcome (sent, retry, failed)."
    );
    describe_histogram!(
        NOTIFY_DURATION,
        Unit::Seconds,
        "Duration of one notification delivery attempt, by channel."
    );
    describe_gauge!(
        NOTIFICATIONS_PENDING,
        "Notifications in the outbox waiting for delivery (all nodes)."
    );
    describe_gauge!(
        BROWSER_SESSIONS,
        "Chromium processes running (one per profile in use)."
    );
    describe_counter!(BROWSER_LAUNCHES, "Chromium launches.");
    describe_counter!(
        BROWSER_CRASHES,
        "Crashes: browsers found dead (killed, crashed, connection lost) and replaced, and renderers that crashed."
    );
    describe_counter!(
        BROWSER_SESSION_RESTARTS,
        "Browser session actors (one per profile) that failed and were restarted."
    );
    describe_counter!(
        CIRCUIT_TRANSITIONS,
        "Browser circuit breakers that opened or closed, by new state."
    );
    describe_gauge!(
        QUOTA_REMAINING,
        "Units left in the quota's current window (hour, day, week)."
    );
    describe_counter!(QUOTA_CONSUMED, "Quota units admitted, by quota.");
    describe_counter!(
        QUOTA_REJECTED,
        "Consumptions refused because a window was full, by quota."
    );
    describe_counter!(
        QUOTA_OVER_LIMIT,
        "Units admitted over a limit while the quota_enforcement flag was off, by quota."
    );
    describe_counter!(QUOTA_REFUNDED, "Quota units returned by refunds, by quota.");
    describe_counter!(
        NOTIFICATIONS_PRUNED,
        "Sent and failed notifications deleted by retention."
    );
    describe_gauge!(
        RUNS_CURRENT,
        "Runs pending, running or deferred now, in the whole cluster (every node reports the same; use max)."
    );
    describe_gauge!(
        RUNS_OLDEST_DUE,
        Unit::Seconds,
        "How long the oldest pending run that is due has waited to start (0: none), cluster-wide."
    );
    describe_gauge!(
        CIRCUITS_OPEN,
        "Browser circuit breakers open now, cluster-wide."
    );
    describe_counter!(AUDIT_PRUNED, "Audit log rows deleted by retention.");
}

/// The run states a finished run can have, and the zombie reasons: the label values every
/// counter of them is registered with at zero.
const FINISHED_STATES: &[&str] = &["succeeded", "failed", "timed_out", "cancelled", "deferred"];
const ZOMBIE_REASONS: &[&str] = &["node_lost", "heartbeat_timeout", "timeout"];

/// Registers every counter at zero (for the label values known up front: `kinds`, the
/// notification `channels`), so that `rate()` and `increase()` — and the alerts built on
/// them — see a series before its first event, and a dashboard names no metric that is not
/// there. Gauges are set by their owners (a zero would lie: a quota's remaining units).
pub fn register_zeros(kinds: &[&str], channels: &[&str]) {
    for c in [
        RUNS_PRUNED,
        NOTIFICATIONS_PRUNED,
        AUDIT_PRUNED,
        BROWSER_LAUNCHES,
        BROWSER_CRASHES,
        BROWSER_SESSION_RESTARTS,
        JOBS_FIRED,
        RUNS_CREATED,
        RUNS_DISPATCHED,
        RUNS_HANDED_BACK,
        NODE_HEARTBEATS,
        NODE_HEARTBEAT_FAILURES,
    ] {
        metrics::counter!(c).increment(0);
    }
    for kind in kinds {
        for state in FINISHED_STATES {
            metrics::counter!(RUNS_FINISHED, "kind" => kind.to_string(), "state" => *state)
                .increment(0);
        }
    }
    for reason in ZOMBIE_REASONS {
        metrics::counter!(ZOMBIES, "reason" => *reason).increment(0);
    }
    for state in ["open", "half_open", "closed"] {
        metrics::counter!(CIRCUIT_TRANSITIONS, "state" => state).increment(0);
    }
    for channel in channels {
        for outcome in ["sent", "retry", "failed"] {
            metrics::counter!(NOTIFICATIONS, "channel" => channel.to_string(), "outcome" => outcome)
                .increment(0);
        }
    }
    metrics::gauge!(SUPERVISOR_MELTDOWN).set(0.0);
}
