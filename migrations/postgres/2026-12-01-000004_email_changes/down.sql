ALTER TABLE outbox DROP COLUMN email_change_id;
DROP TABLE email_changes;
