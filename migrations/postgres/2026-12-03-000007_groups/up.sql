-- Groups of accounts, made and filled by administrators (accounts/groups.rs);
-- the rules of forward authentication name them, and it passes them on in
-- Remote-Groups. Names are checked by domain/group.rs: a-z, 0-9, '_', '-'.
-- The built-in `admins` group is never stored: it is users.is_admin.
CREATE TABLE groups (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT COLLATE "C" NOT NULL UNIQUE,    -- byte order, as in SQLite, so lists sort alike
    created_at BIGINT NOT NULL
);

CREATE TABLE group_members (
    group_id BIGINT NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    added_at BIGINT NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
-- The groups of one account: read on every forward-authentication request.
CREATE INDEX group_members_by_user ON group_members (user_id);
