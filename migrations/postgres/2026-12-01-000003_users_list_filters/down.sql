DROP INDEX users_waiting_by_age;
CREATE INDEX users_by_approval ON users (approval, created_at);
DROP INDEX users_admins;
DROP INDEX users_disabled;
DROP INDEX users_unverified;
DROP INDEX users_verified;
DROP INDEX users_waiting;
ALTER TABLE users DROP COLUMN last_sign_in_at;
