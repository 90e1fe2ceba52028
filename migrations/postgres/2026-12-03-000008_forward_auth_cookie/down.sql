DROP INDEX sessions_by_forward_id;
ALTER TABLE sessions DROP COLUMN forward_id_hash;
