DROP TABLE throttle_hits;
DROP TABLE audit_events;
DROP TABLE leases;
DROP TABLE outbox;
DROP TABLE sessions;
DROP TABLE email_tokens;
DROP TABLE users;
