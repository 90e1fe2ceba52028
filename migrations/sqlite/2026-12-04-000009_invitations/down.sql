ALTER TABLE outbox DROP COLUMN invitation_id;
DROP TABLE invitations;
