-- One row that /readyz writes: readiness means the database takes writes.
CREATE TABLE readiness (
    id BIGINT PRIMARY KEY,
    checked_at BIGINT NOT NULL
);
INSERT INTO readiness (id, checked_at) VALUES (1, 0);
