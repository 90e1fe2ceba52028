-- What a notice reports about the event that caused it (time, address, browser), as JSON; never a secret.
ALTER TABLE outbox ADD COLUMN event TEXT;
