-- Second factors (RFC 6238 authenticator codes) and their recovery codes
-- (accounts/two_factor.rs). The secret is stored sealed under
-- USHER_ENCRYPTION_KEY (auth/encryption.rs), never in clear.
CREATE TABLE two_factor (
    user_id BIGINT PRIMARY KEY NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    secret BYTEA NOT NULL,              -- key id, nonce, AES-256-GCM ciphertext; the user id is its associated data
    enabled_at BIGINT,                  -- NULL while enrolment waits for its first code
    last_step BIGINT NOT NULL DEFAULT 0, -- the latest RFC 6238 time step accepted: only later ones are
    created_at BIGINT NOT NULL
);

-- Single-use codes for a lost authenticator: a salted SHA-256 of each.
CREATE TABLE recovery_codes (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    salt BYTEA NOT NULL,
    code_hash BYTEA NOT NULL,
    used_at BIGINT
);
CREATE INDEX recovery_codes_by_user ON recovery_codes (user_id);

-- A right password for an account with a second factor: not a session,
-- only the right to type a code in this browser for a few minutes. Keyed
-- by a SHA-256 of the id in the browser's cookie.
CREATE TABLE second_factor_challenges (
    id_hash BYTEA PRIMARY KEY NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    remember BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX second_factor_challenges_by_user ON second_factor_challenges (user_id);
CREATE INDEX second_factor_challenges_by_expiry ON second_factor_challenges (expires_at);
