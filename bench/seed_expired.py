#!/usr/bin/env python3
"""Seeds expired sessions and email tokens for `usher cleanup` to delete: a
bench-only tool.

    seed_expired.py DATABASE_URL COUNT

Inserts COUNT sessions that timed out an hour ago and COUNT verification
links that expired an hour ago, spread over the users already in the
database, each set in one INSERT ... SELECT (as seed_users.py does).
"""

import sqlite3
import subprocess
import sys
import time


def statements(count: int, now: int, series: str, random_bytes: str, random_text: str) -> list[str]:
    """INSERTs for either backend; the series yields i = 1..count."""
    expired = now - 3600
    user = "(SELECT min(id) FROM users) + i % (SELECT count(*) FROM users)"
    return [
        "INSERT INTO sessions (id_hash, user_id, public_id, state, remember, created_at, last_seen_at, "
        "idle_expires_at, absolute_expires_at, user_agent, ip) "
        f"SELECT {random_bytes}, {user}, {random_text}, '{{}}', FALSE, {expired - 7200}, {expired - 1800}, "
        f"{expired}, {expired + 600}, 'bench', '127.0.0.1' FROM {series}",
        "INSERT INTO email_tokens (user_id, purpose, secret_hash, attempts, created_at, expires_at) "
        f"SELECT {user}, 'verify_link', {random_bytes}, 0, {expired - 86400}, {expired} FROM {series}",
    ]


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    url, count = sys.argv[1], int(sys.argv[2])
    now = int(time.time())
    started = time.monotonic()
    if url.startswith(("postgres://", "postgresql://")):
        sql = statements(count, now, f"generate_series(1, {count}) AS i",
                         "sha256(('expired ' || i)::text::bytea)", "md5(i::text)")
        script = ";\n".join(sql) + ";\nVACUUM ANALYZE sessions;\nVACUUM ANALYZE email_tokens;\n"
        subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", url], input=script, text=True, check=True)
    else:
        series = f"(WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count}) SELECT i FROM n)"
        db = sqlite3.connect(url.removeprefix("sqlite://"), timeout=60)
        db.execute("PRAGMA busy_timeout = 60000")
        with db:
            for statement in statements(count, now, series, "randomblob(32)", "hex(randomblob(12))"):
                db.execute(statement)
        db.close()
    print(f"seeded {count} expired sessions and {count} expired email tokens in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
