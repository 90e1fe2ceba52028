-- Invitations: an administrator invites an address (accounts/invitations.rs);
-- the link mailed to it creates an account, verified and approved, in the
-- groups named. Only the SHA-256 of the link's token is kept, minted when
-- the mail is composed (so NULL until then, and again after a re-send).
CREATE TABLE invitations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    email TEXT NOT NULL,                      -- normalised, as users.email
    group_names TEXT NOT NULL DEFAULT '',     -- space-separated names of groups to join
    token_hash BLOB,                          -- SHA-256 of the link's token, once minted
    invited_by BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,               -- of the link; a re-send moves it
    revoked_at BIGINT,
    accepted_at BIGINT,
    user_id BIGINT REFERENCES users(id) ON DELETE SET NULL -- the account it created
);
CREATE INDEX invitations_by_email ON invitations (email);
CREATE UNIQUE INDEX invitations_by_token_hash ON invitations (token_hash);

-- An invitation's mail names its row: it goes to an address without an account.
-- No REFERENCES: SQLite cannot drop a column in a foreign key (down.sql);
-- a mail whose invitation is gone is skipped when composed.
ALTER TABLE outbox ADD COLUMN invitation_id BIGINT;
-- Finding an invitation's newer mail, and unsetting the column when one goes.
CREATE INDEX outbox_by_invitation ON outbox (invitation_id);
