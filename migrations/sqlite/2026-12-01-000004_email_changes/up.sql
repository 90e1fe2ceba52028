-- A change of an account's address: requested from the account page,
-- completed from a link sent to the new address, undone from a link sent
-- to the old one. Only hashes of the links' tokens are kept.
CREATE TABLE email_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    old_email TEXT NOT NULL,
    new_email TEXT NOT NULL,
    state TEXT NOT NULL,                      -- pending | confirmed | cancelled | replaced | reverted
    confirm_hash BLOB,                       -- SHA-256 of the link to the new address, once minted
    expires_at BIGINT NOT NULL,               -- of the confirmation link
    revert_hash BLOB,                        -- SHA-256 of the undo link to the old address, once minted
    revert_expires_at BIGINT,
    created_at BIGINT NOT NULL,
    confirmed_at BIGINT
);
CREATE INDEX email_changes_by_user ON email_changes (user_id, state);
CREATE INDEX email_changes_by_confirm_hash ON email_changes (confirm_hash);
CREATE INDEX email_changes_by_revert_hash ON email_changes (revert_hash);

-- Mail about a change of address names its row: it goes to an address
-- that is not (or no longer) the account's. No REFERENCES here: SQLite
-- cannot drop a column that is in a foreign key (down.sql), and a mail
-- whose row is gone is skipped when composed.
ALTER TABLE outbox ADD COLUMN email_change_id BIGINT;
