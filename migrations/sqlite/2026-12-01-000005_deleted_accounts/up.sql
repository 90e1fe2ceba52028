-- A deleted account stays as a tombstone: its id keeps the audit log's
-- events linked, while its address and password are wiped (see
-- accounts/deletion.rs).
ALTER TABLE users ADD COLUMN deleted_at BIGINT;
