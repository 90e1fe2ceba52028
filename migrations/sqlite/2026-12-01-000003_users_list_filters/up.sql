-- When the account last completed a sign-in (UTC unix seconds), for the admin list.
ALTER TABLE users ADD COLUMN last_sign_in_at BIGINT;

-- The admin user list filtered by state, in email order, one partial index
-- per filter. Each WHERE is written exactly as `ListFilter::condition`
-- writes it in the query: both databases use a partial index only when the
-- query states its condition literally.
CREATE INDEX users_waiting ON users (email) WHERE approval = 'pending' AND email_verified_at IS NOT NULL;
CREATE INDEX users_verified ON users (email) WHERE email_verified_at IS NOT NULL;
CREATE INDEX users_unverified ON users (email) WHERE email_verified_at IS NULL;
CREATE INDEX users_disabled ON users (email) WHERE disabled_at IS NOT NULL;
CREATE INDEX users_admins ON users (email) WHERE is_admin;

-- The queue of sign-ups waiting for approval, oldest first, in place of an
-- index on (approval, created_at): given one, SQLite's planner estimated
-- 'pending' as rare and read every waiting row through it (then sorted)
-- instead of the few entries of `users_waiting` a page needs.
DROP INDEX users_by_approval;
CREATE INDEX users_waiting_by_age ON users (created_at, id) WHERE approval = 'pending' AND email_verified_at IS NOT NULL;
