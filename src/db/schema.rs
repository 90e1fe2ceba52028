//! One hand-written schema for both backends (`print-schema` differs per backend).

diesel::table! {
    users (id) {
        id -> BigInt,
        email -> Text,
        password_hash -> Text,
        email_verified_at -> Nullable<BigInt>,
        approval -> Text,
        is_admin -> Bool,
        disabled_at -> Nullable<BigInt>,
        created_at -> BigInt,
        updated_at -> BigInt,
        last_sign_in_at -> Nullable<BigInt>,
        deleted_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    email_tokens (id) {
        id -> BigInt,
        user_id -> BigInt,
        purpose -> Text,
        secret_hash -> Binary,
        attempts -> Integer,
        password_hash -> Nullable<Text>,
        created_at -> BigInt,
        expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    sessions (id_hash) {
        id_hash -> Binary,
        user_id -> BigInt,
        public_id -> Text,
        state -> Text,
        remember -> Bool,
        created_at -> BigInt,
        last_seen_at -> BigInt,
        idle_expires_at -> BigInt,
        absolute_expires_at -> BigInt,
        user_agent -> Text,
        ip -> Text,
        forward_id_hash -> Nullable<Binary>,
    }
}

diesel::table! {
    outbox (id) {
        id -> BigInt,
        kind -> Text,
        recipient -> Text,
        user_id -> Nullable<BigInt>,
        message_id -> Text,
        state -> Text,
        attempts -> Integer,
        last_error -> Nullable<Text>,
        created_at -> BigInt,
        send_before -> BigInt,
        next_attempt_at -> BigInt,
        lease_owner -> Nullable<Text>,
        lease_until -> Nullable<BigInt>,
        finished_at -> Nullable<BigInt>,
        password_hash -> Nullable<Text>,
        payload -> Nullable<Binary>,
        minted_token_id -> Nullable<BigInt>,
        event -> Nullable<Text>,
        email_change_id -> Nullable<BigInt>,
        invitation_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    email_changes (id) {
        id -> BigInt,
        user_id -> BigInt,
        old_email -> Text,
        new_email -> Text,
        state -> Text,
        confirm_hash -> Nullable<Binary>,
        expires_at -> BigInt,
        revert_hash -> Nullable<Binary>,
        revert_expires_at -> Nullable<BigInt>,
        created_at -> BigInt,
        confirmed_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    leases (name) {
        name -> Text,
        owner -> Nullable<Text>,
        lease_until -> BigInt,
    }
}

diesel::table! {
    audit_events (id) {
        id -> BigInt,
        at -> BigInt,
        kind -> Text,
        user_id -> Nullable<BigInt>,
        actor_id -> Nullable<BigInt>,
        ip -> Text,
        detail -> Text,
    }
}

diesel::table! {
    throttle_hits (id) {
        id -> BigInt,
        bucket -> Text,
        at -> BigInt,
    }
}

diesel::table! {
    readiness (id) {
        id -> BigInt,
        checked_at -> BigInt,
    }
}

diesel::table! {
    two_factor (user_id) {
        user_id -> BigInt,
        secret -> Binary,
        enabled_at -> Nullable<BigInt>,
        last_step -> BigInt,
        created_at -> BigInt,
    }
}

diesel::table! {
    recovery_codes (id) {
        id -> BigInt,
        user_id -> BigInt,
        salt -> Binary,
        code_hash -> Binary,
        used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    second_factor_challenges (id_hash) {
        id_hash -> Binary,
        user_id -> BigInt,
        remember -> Bool,
        created_at -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    groups (id) {
        id -> BigInt,
        name -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    group_members (group_id, user_id) {
        group_id -> BigInt,
        user_id -> BigInt,
        added_at -> BigInt,
    }
}

diesel::table! {
    invitations (id) {
        id -> BigInt,
        email -> Text,
        group_names -> Text,
        token_hash -> Nullable<Binary>,
        invited_by -> BigInt,
        created_at -> BigInt,
        expires_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
        accepted_at -> Nullable<BigInt>,
        user_id -> Nullable<BigInt>,
    }
}

diesel::joinable!(email_tokens -> users (user_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(outbox -> users (user_id));
diesel::joinable!(email_changes -> users (user_id));
diesel::joinable!(two_factor -> users (user_id));
diesel::joinable!(group_members -> groups (group_id));
diesel::joinable!(group_members -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(
    users,
    email_tokens,
    sessions,
    outbox,
    email_changes,
    leases,
    audit_events,
    throttle_hits,
    two_factor,
    recovery_codes,
    second_factor_challenges,
    groups,
    group_members,
    invitations
);
