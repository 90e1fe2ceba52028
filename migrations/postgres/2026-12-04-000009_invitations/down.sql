DROP INDEX outbox_by_invitation;
ALTER TABLE outbox DROP COLUMN invitation_id;
DROP TABLE invitations;
