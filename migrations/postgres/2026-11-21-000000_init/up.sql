-- All timestamps are UTC unix seconds.
CREATE TABLE users (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email TEXT COLLATE "C" NOT NULL UNIQUE,   -- normalised (lower case); byte order, as in SQLite, for range scans
    password_hash TEXT NOT NULL,
    email_verified_at BIGINT,
    approval TEXT NOT NULL,                   -- pending | approved | rejected
    is_admin BOOLEAN NOT NULL DEFAULT FALSE,
    disabled_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
-- The admin's queue of sign-ups waiting for approval, oldest first.
CREATE INDEX users_by_approval ON users (approval, created_at);

CREATE TABLE email_tokens (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    purpose TEXT NOT NULL,                    -- verify_link | verify_code | reset_link
    secret_hash BYTEA NOT NULL,                -- SHA-256 (links) or keyed SHA-256 (codes)
    attempts INTEGER NOT NULL DEFAULT 0,
    password_hash TEXT,                       -- chosen at the registration this secret answers
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX email_tokens_by_secret ON email_tokens (secret_hash);
CREATE INDEX email_tokens_by_user ON email_tokens (user_id, purpose);
CREATE INDEX email_tokens_by_expiry ON email_tokens (expires_at);

CREATE TABLE sessions (
    id_hash BYTEA PRIMARY KEY,                 -- SHA-256 of the cookie's session id
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    public_id TEXT NOT NULL,                  -- names the session on the account page; not a secret
    state TEXT NOT NULL,
    remember BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    idle_expires_at BIGINT NOT NULL,
    absolute_expires_at BIGINT NOT NULL,
    user_agent TEXT NOT NULL,
    ip TEXT NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE INDEX sessions_by_idle_expiry ON sessions (idle_expires_at);

CREATE TABLE outbox (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind TEXT NOT NULL,
    recipient TEXT NOT NULL,
    user_id BIGINT REFERENCES users(id) ON DELETE CASCADE,
    message_id TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL DEFAULT 'pending',    -- pending | sent | dead | expired | skipped
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    send_before BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    finished_at BIGINT,
    password_hash TEXT,                       -- for a verification answering a new registration
    payload BYTEA,                            -- the composed message, encrypted; wiped when finished
    minted_token_id BIGINT                    -- first secret minted for this message
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);

-- Named leases, so that one instance at a time runs periodic jobs.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    owner TEXT,
    lease_until BIGINT NOT NULL
);
INSERT INTO leases (name, owner, lease_until) VALUES ('cleanup', NULL, 0);

-- Security events, for administrators. Never a password or a token.
CREATE TABLE audit_events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    user_id BIGINT REFERENCES users(id) ON DELETE SET NULL,
    actor_id BIGINT REFERENCES users(id) ON DELETE SET NULL,
    ip TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX audit_events_by_user ON audit_events (user_id, id);

-- Rate limiting shared by all instances: one row per counted attempt.
CREATE TABLE throttle_hits (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bucket TEXT NOT NULL,                     -- e.g. 'signin-address:ann@example.com'
    at BIGINT NOT NULL
);
CREATE INDEX throttle_hits_by_bucket ON throttle_hits (bucket, at);
