//! The diesel schema, written by hand so that one definition serves both
//! backends (`migrations/sqlite` and `migrations/postgres` create the same
//! tables; only the SQL types differ).
//!
//! Portable types only: ids are `Text` (UUID v7), times are `BigInt` Unix
//! milliseconds UTC, JSON lives in `Text`, sealed secrets are `Binary`
//! (BLOB / BYTEA), enums are `Text` (see [`super::types`]). Small counters
//! (attempt, exit code, retry settings) are `Integer`.

diesel::table! {
    users (id) {
        id -> Text,
        username -> Text,
        password_hash -> Text,
        role -> Text,
        disabled -> Bool,
        created_at -> BigInt,
        updated_at -> BigInt,
        last_login_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        token_hash -> Text,
        user_id -> Text,
        csrf_token -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        last_seen_at -> BigInt,
        source_addr -> Nullable<Text>,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> Text,
        user_id -> Text,
        name -> Text,
        token_hash -> Text,
        created_at -> BigInt,
        last_used_at -> Nullable<BigInt>,
        expires_at -> Nullable<BigInt>,
        revoked_at -> Nullable<BigInt>,
        role -> Nullable<Text>,
    }
}

diesel::table! {
    repositories (id) {
        id -> Text,
        url -> Text,
        username -> Nullable<Text>,
        password_sealed -> Nullable<Binary>,
        credential_sealed -> Nullable<Binary>,
        hook_shell -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
        /// Set for a shared repository (unique); NULL for a private one.
        name -> Nullable<Text>,
        /// The host that runs prune and check when it is online.
        maintenance_host_id -> Nullable<Text>,
    }
}

diesel::table! {
    /// Leases on shared repositories (`store::leases`).
    leases (job_id) {
        job_id -> Text,
        repository_id -> Text,
        host_id -> Text,
        mode -> Text,
        state -> Text,
        requested_at -> BigInt,
        granted_at -> Nullable<BigInt>,
        waiting_for -> Nullable<Text>,
    }
}

diesel::table! {
    hosts (id) {
        id -> Text,
        hostname -> Text,
        display_name -> Nullable<Text>,
        labels -> Text,
        os -> Text,
        arch -> Text,
        agent_version -> Nullable<Text>,
        restic_version -> Nullable<Text>,
        boot_time -> Nullable<BigInt>,
        capabilities -> Text,
        agent_token_hash -> Text,
        repository_id -> Nullable<Text>,
        online -> Bool,
        last_seen_at -> Nullable<BigInt>,
        enrolled_at -> BigInt,
        updated_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
        /// Natural-order key of `hostname` (`hosts::natural_key`).
        sort_key -> Nullable<Text>,
        /// Finish time of the newest succeeded backup (kept by a trigger).
        last_backup_at -> Nullable<BigInt>,
        /// The policy that gave `repository_id`; `None`: the host's own.
        repository_policy_id -> Nullable<Text>,
        /// Version of what `config.update` carries (trigger-bumped).
        config_version -> BigInt,
        /// When `config_version` was last bumped.
        config_changed_at -> Nullable<BigInt>,
        /// The newest `config_version` the agent acked (0: never).
        acked_config_version -> BigInt,
        config_acked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// `hosts.labels` as rows (kept by a trigger), for the label filter.
    host_labels (host_id, key) {
        host_id -> Text,
        key -> Text,
        value -> Text,
    }
}

diesel::table! {
    enrollment_tokens (id) {
        id -> Text,
        token_hash -> Text,
        created_by -> Nullable<Text>,
        created_at -> BigInt,
        expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
        used_by_host_id -> Nullable<Text>,
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    source_groups (id) {
        id -> Text,
        host_id -> Text,
        name -> Text,
        includes -> Text,
        excludes -> Text,
        retention_policy -> Nullable<Text>,
        retry_max -> Integer,
        retry_backoff_seconds -> Integer,
        created_at -> BigInt,
        updated_at -> BigInt,
        prune_after_forget -> Bool,
        /// `files` or `dump`.
        kind -> Text,
        /// A dump group's `DumpSpec` (JSON, no password).
        dump -> Nullable<Text>,
        dump_password_sealed -> Nullable<Binary>,
        /// The policy this row comes from; `None`: the host's own.
        policy_id -> Nullable<Text>,
        /// `protocol::RunOptions` as JSON (a policy's group: merged).
        options -> Nullable<Text>,
    }
}

diesel::table! {
    schedules (id) {
        id -> Text,
        host_id -> Text,
        cron_expr -> Text,
        enabled -> Bool,
        created_at -> BigInt,
        updated_at -> BigInt,
        kind -> Text,
        /// The policy this row comes from; `None`: the host's own.
        policy_id -> Nullable<Text>,
        /// Its place in the policy's schedule list.
        policy_position -> Nullable<Integer>,
    }
}

diesel::table! {
    schedule_source_groups (schedule_id, source_group_id) {
        schedule_id -> Text,
        source_group_id -> Text,
    }
}

diesel::table! {
    host_schedule_version (host_id) {
        host_id -> Text,
        version -> BigInt,
        pushed_version -> BigInt,
        acked_version -> BigInt,
        pushed_at -> Nullable<BigInt>,
        acked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    jobs (id) {
        id -> Text,
        host_id -> Text,
        kind -> Text,
        status -> Text,
        trigger -> Text,
        source_group_id -> Nullable<Text>,
        tag -> Nullable<Text>,
        includes -> Text,
        excludes -> Text,
        retention_policy -> Nullable<Text>,
        args -> Text,
        schedule_id -> Nullable<Text>,
        scheduled_at -> Nullable<BigInt>,
        attempt -> Integer,
        first_attempt_id -> Nullable<Text>,
        retry_at -> Nullable<BigInt>,
        created_at -> BigInt,
        dispatched_at -> Nullable<BigInt>,
        accepted_at -> Nullable<BigInt>,
        started_at -> Nullable<BigInt>,
        finished_at -> Nullable<BigInt>,
        exit_code -> Nullable<Integer>,
        error -> Nullable<Text>,
        warning -> Nullable<Text>,
        stats -> Nullable<Text>,
        progress -> Nullable<Text>,
        last_log_seq -> BigInt,
        snapshot_id -> Nullable<Text>,
        params -> Nullable<Text>,
    }
}

diesel::table! {
    job_logs (job_id, seq) {
        job_id -> Text,
        seq -> BigInt,
        ts -> BigInt,
        stream -> Text,
        payload -> Text,
    }
}

diesel::table! {
    /// How many hosts are not revoked, in one row (kept by triggers on
    /// `hosts`).
    host_totals (id) {
        id -> Integer,
        live -> BigInt,
    }
}

diesel::table! {
    /// Jobs per kind and status (kept by triggers on `jobs`).
    job_counts (kind, status) {
        kind -> Text,
        status -> Text,
        n -> BigInt,
    }
}

diesel::table! {
    /// Jobs that ended, per hour (`finished_at / 3_600_000`), kind and
    /// status (kept by triggers on `jobs`).
    job_outcomes_hourly (hour, kind, status) {
        hour -> BigInt,
        kind -> Text,
        status -> Text,
        n -> BigInt,
    }
}

diesel::table! {
    /// The latest finished backup per host and source group, and the
    /// newest success among them (kept by triggers on `jobs`).
    backup_latest (host_id, source_group_id) {
        host_id -> Text,
        source_group_id -> Text,
        job_id -> Text,
        status -> Text,
        warning -> Bool,
        finished_at -> Nullable<BigInt>,
        tag -> Nullable<Text>,
        last_success_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// How far log retention has got: every job that finished before
    /// (`finished_at`, `job_id`) has had its log pruned. One row (id 1).
    log_prune_cursor (id) {
        id -> Integer,
        finished_at -> BigInt,
        job_id -> Text,
    }
}

diesel::table! {
    snapshots (host_id, snapshot_id) {
        host_id -> Text,
        snapshot_id -> Text,
        short_id -> Text,
        time -> BigInt,
        hostname -> Text,
        paths -> Text,
        tags -> Text,
        size_bytes -> Nullable<BigInt>,
        file_count -> Nullable<BigInt>,
        reported_at -> BigInt,
    }
}

diesel::table! {
    repo_stats (id) {
        id -> Text,
        host_id -> Text,
        recorded_at -> BigInt,
        size_bytes -> Nullable<BigInt>,
        snapshot_count -> Nullable<BigInt>,
        dedup_ratio -> Nullable<Double>,
        last_check_at -> Nullable<BigInt>,
        last_check_status -> Nullable<Text>,
        lock_state -> Nullable<Text>,
    }
}

diesel::table! {
    missed_runs (id) {
        id -> Text,
        host_id -> Text,
        schedule_id -> Text,
        scheduled_at -> BigInt,
        detected_at -> BigInt,
    }
}

diesel::table! {
    audit_log (id) {
        id -> Text,
        at -> BigInt,
        actor -> Text,
        action -> Text,
        target -> Nullable<Text>,
        detail -> Nullable<Text>,
        source_addr -> Nullable<Text>,
    }
}

diesel::table! {
    /// One row (id 1) whose `revision` takes a new random value with every
    /// write to `policies` (triggers): what `store::schedule_set`'s memory
    /// of parsed policies is checked against.
    policy_revision (id) {
        id -> Integer,
        revision -> BigInt,
    }
}

diesel::table! {
    /// Source groups and schedules for every host whose labels match
    /// `selector`; each matching host gets its own rows (`policy_id`).
    policies (id) {
        id -> Text,
        name -> Text,
        /// `{"labels": {...}}` (JSON).
        selector -> Text,
        /// The policy's groups (JSON list).
        source_groups -> Text,
        /// The policy's schedules (JSON list).
        schedules -> Text,
        repository_id -> Nullable<Text>,
        /// Options as given (JSON object).
        options -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
        /// Health checks every matching host runs (JSON list).
        health_checks -> Text,
    }
}

diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(api_tokens -> users (user_id));
diesel::joinable!(hosts -> repositories (repository_id));
diesel::joinable!(leases -> jobs (job_id));
diesel::joinable!(leases -> hosts (host_id));
diesel::joinable!(source_groups -> hosts (host_id));
diesel::joinable!(schedules -> hosts (host_id));
diesel::joinable!(schedule_source_groups -> schedules (schedule_id));
diesel::joinable!(schedule_source_groups -> source_groups (source_group_id));
diesel::joinable!(host_schedule_version -> hosts (host_id));
diesel::joinable!(jobs -> hosts (host_id));
diesel::joinable!(job_logs -> jobs (job_id));
diesel::joinable!(snapshots -> hosts (host_id));
diesel::joinable!(repo_stats -> hosts (host_id));
diesel::joinable!(missed_runs -> hosts (host_id));
diesel::joinable!(host_labels -> hosts (host_id));
diesel::joinable!(backup_latest -> hosts (host_id));
diesel::joinable!(backup_latest -> source_groups (source_group_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    sessions,
    api_tokens,
    repositories,
    leases,
    hosts,
    enrollment_tokens,
    source_groups,
    schedules,
    schedule_source_groups,
    host_schedule_version,
    jobs,
    job_logs,
    snapshots,
    repo_stats,
    missed_runs,
    audit_log,
    host_labels,
    job_counts,
    job_outcomes_hourly,
    backup_latest,
    log_prune_cursor,
    policies,
);

// Notifications (issue 15 A): kept together at the end so that the
// feature's tables read as one block.
diesel::table! {
    notification_channels (id) {
        id -> Text,
        name -> Text,
        kind -> Text,
        url -> Nullable<Text>,
        secret_sealed -> Nullable<Binary>,
        recipients -> Text,
        events -> Text,
        selector -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    notification_conditions (key) {
        key -> Text,
        host_id -> Text,
        event -> Text,
        since -> BigInt,
    }
}

diesel::table! {
    notification_outbox (id) {
        id -> Text,
        channel_id -> Text,
        event -> Text,
        payload -> Text,
        created_at -> BigInt,
        attempts -> Integer,
        next_attempt_at -> BigInt,
        status -> Text,
        delivered_at -> Nullable<BigInt>,
        last_status -> Nullable<Integer>,
        last_error -> Nullable<Text>,
        summary_id -> Nullable<Text>,
    }
}

diesel::joinable!(notification_outbox -> notification_channels (channel_id));

diesel::allow_tables_to_appear_in_same_query!(
    notification_channels,
    notification_outbox,
    notification_conditions,
    hosts,
);

diesel::table! {
    health_checks (host_id) {
        host_id -> Text,
        checks -> Text,
        updated_at -> BigInt,
    }
}

diesel::table! {
    health_results (host_id, name) {
        host_id -> Text,
        name -> Text,
        ok -> Bool,
        latency_ms -> Nullable<BigInt>,
        status_code -> Nullable<Integer>,
        error -> Nullable<Text>,
        checked_at -> BigInt,
    }
}

diesel::table! {
    health_history (host_id, name, checked_at) {
        host_id -> Text,
        name -> Text,
        checked_at -> BigInt,
        ok -> Bool,
        latency_ms -> Nullable<BigInt>,
        status_code -> Nullable<Integer>,
        error -> Nullable<Text>,
    }
}

diesel::table! {
    host_metrics (host_id, resolution, at) {
        host_id -> Text,
        resolution -> Integer,
        at -> BigInt,
        load1 -> Nullable<Double>,
        mem_used_bytes -> Nullable<BigInt>,
        mem_total_bytes -> Nullable<BigInt>,
        disk_free_bytes -> Nullable<BigInt>,
        source_disk_free -> Nullable<Text>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(health_results, hosts);
// A greeting's one-row read (`store::host_state`).
diesel::allow_tables_to_appear_in_same_query!(health_checks, hosts);
diesel::allow_tables_to_appear_in_same_query!(health_checks, repositories);
diesel::allow_tables_to_appear_in_same_query!(health_checks, host_schedule_version);
diesel::allow_tables_to_appear_in_same_query!(policy_revision, hosts);
diesel::allow_tables_to_appear_in_same_query!(policy_revision, repositories);
diesel::allow_tables_to_appear_in_same_query!(policy_revision, host_schedule_version);
diesel::allow_tables_to_appear_in_same_query!(policy_revision, health_checks);
diesel::allow_tables_to_appear_in_same_query!(host_metrics, hosts);

diesel::table! {
    host_discovery (host_id) {
        host_id -> Text,
        containers -> Text,
        received_at -> BigInt,
    }
}
