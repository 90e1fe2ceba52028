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
