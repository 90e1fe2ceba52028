-- The forward-auth cookie that guarded apps' proxies present: its own
-- random id, stored only as a SHA-256 and tied to the session it came with,
-- so it ends with that session and opens none of Usher's own pages.
ALTER TABLE sessions ADD COLUMN forward_id_hash BYTEA;
CREATE UNIQUE INDEX sessions_by_forward_id ON sessions (forward_id_hash);
