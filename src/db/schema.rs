// The tables of migrations/{sqlite,postgres}, in `diesel print-schema` form.

diesel::table! {
    instances (id) {
        id -> Text,
        name -> Text,
        base_url -> Text,
        client_id -> Text,
        client_secret_sealed -> Binary,
        ca_pem -> Nullable<Text>,
        scopes -> Text,
        discovery -> Text,
        last_check_ok -> Bool,
        last_check_report -> Text,
        last_checked_at -> Timestamp,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        token_lifetime_seconds -> Nullable<BigInt>,
        client_rejected_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    labgate_meta (name) {
        name -> Text,
        value -> Text,
    }
}

diesel::table! {
    services (id) {
        id -> Text,
        name -> Text,
        client_id -> Text,
        secret_hash -> Text,
        instances -> Text,
        scopes -> Text,
        return_origins -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        projects -> Text,
        max_access -> Text,
        secret_rotated_at -> Timestamp,
        identities -> Text,
    }
}

diesel::table! {
    connect_sessions (id) {
        id -> Text,
        service_id -> Text,
        instance_id -> Text,
        subject -> Text,
        scopes -> Text,
        return_to -> Nullable<Text>,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        started_at -> Nullable<Timestamp>,
        state_hash -> Nullable<Text>,
        nonce -> Nullable<Text>,
                pkce_verifier_sealed -> Nullable<Binary>,
        browser_binding_hash -> Nullable<Text>,
        finished_at -> Nullable<Timestamp>,
        outcome -> Nullable<Text>,
        connection_id -> Nullable<Text>,
    }
}

diesel::table! {
    connections (id) {
        id -> Text,
        service_id -> Text,
        instance_id -> Text,
        subject -> Text,
        scopes -> Text,
        gitlab_user_id -> Text,
        gitlab_username -> Text,
        access_token_sealed -> Binary,
        refresh_token_sealed -> Binary,
        expires_at -> Timestamp,
        status -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        refreshed_at -> Nullable<Timestamp>,
        refresh_lease_owner -> Nullable<Text>,
        refresh_lease_until -> Nullable<Timestamp>,
        refresh_in_flight_since -> Nullable<Timestamp>,
        status_reason -> Nullable<Text>,
        token_issued_at -> Timestamp,
        refresh_due_at -> Timestamp,
        kind -> Text,
        access_token_id -> Nullable<Text>,
        rotation_impossible -> Bool,
        expiry_announced_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    refresh_attempts (id) {
        id -> BigInt,
        connection_id -> Text,
        started_at -> Timestamp,
        finished_at -> Timestamp,
        outcome -> Text,
        gitlab_request_id -> Nullable<Text>,
        process -> Text,
        detail -> Nullable<Text>,
    }
}

diesel::table! {
    audit_events (id) {
        id -> BigInt,
        at -> Timestamp,
        kind -> Text,
        actor -> Text,
        instance -> Nullable<Text>,
        subject -> Nullable<Text>,
        connection_id -> Nullable<Text>,
        scopes -> Nullable<Text>,
        detail -> Nullable<Text>,
    }
}

diesel::table! {
    admin_sessions (token_hash) {
        token_hash -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        actor -> Text,
    }
}

diesel::table! {
    admin_sign_ins (id) {
        id -> Text,
        state_hash -> Text,
        instance_id -> Text,
        nonce -> Text,
        pkce_verifier_sealed -> Binary,
        browser_binding_hash -> Text,
        next_path -> Nullable<Text>,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    access_grants (id) {
        id -> Text,
        token_hash -> Text,
        service_id -> Text,
        instance_id -> Text,
        subject -> Text,
        projects -> Text,
        access -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    service_webhooks (id) {
        id -> Text,
        service_id -> Text,
        position -> BigInt,
        url -> Text,
        secret_sealed -> Binary,
        created_at -> Timestamp,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> Text,
        event_id -> Text,
        event_type -> Text,
        service_id -> Nullable<Text>,
        url -> Text,
        body -> Text,
        status -> Text,
        attempts -> BigInt,
        last_error -> Nullable<Text>,
        next_attempt_at -> Timestamp,
        lease_owner -> Nullable<Text>,
        lease_until -> Nullable<Timestamp>,
        delivered_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        secret_sealed -> Nullable<Binary>,
    }
}

diesel::joinable!(connect_sessions -> instances (instance_id));
diesel::joinable!(access_grants -> instances (instance_id));
diesel::joinable!(access_grants -> services (service_id));
diesel::joinable!(refresh_attempts -> connections (connection_id));
diesel::joinable!(connect_sessions -> services (service_id));
diesel::joinable!(service_webhooks -> services (service_id));
diesel::joinable!(webhook_deliveries -> services (service_id));

diesel::allow_tables_to_appear_in_same_query!(
    instances,
    labgate_meta,
    services,
    connect_sessions,
    connections,
    audit_events,
    admin_sessions,
    admin_sign_ins,
    refresh_attempts,
    access_grants,
    service_webhooks,
    webhook_deliveries
);
