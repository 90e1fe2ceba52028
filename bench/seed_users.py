#!/usr/bin/env python3
"""Seeds verified, approved users for the benchmark: a bench-only tool.

    seed_users.py DATABASE_URL FIRST LAST PHC_HASH

Inserts users FIRST..LAST (inclusive) as `user<i>@bench.test`, every one
with the same password hash, verified and approved, in one INSERT ... SELECT
(a recursive CTE on SQLite, generate_series on PostgreSQL). The schema must
exist already (`usher migrate`). SQLite goes through python's sqlite3
module, PostgreSQL through psql, so nothing else needs installing.
"""

import sqlite3
import subprocess
import sys
import time


def main() -> None:
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    url, first, last, phc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    if not phc.startswith("$argon2id$"):
        sys.exit("seed_users.py: the hash must be an Argon2id PHC string")
    now = int(time.time())
    started = time.monotonic()
    columns = "email, password_hash, email_verified_at, approval, is_admin, disabled_at, created_at, updated_at"
    if url.startswith(("postgres://", "postgresql://")):
        sql = (
            f"INSERT INTO users ({columns}) "
            f"SELECT 'user' || i || '@bench.test', :'phc', {now}, 'approved', FALSE, NULL, {now}, {now} "
            f"FROM generate_series({first}, {last}) AS i;\n"
            # Now rather than when autovacuum notices the inserts, mid-measurement.
            "VACUUM ANALYZE users;\n"
        )
        subprocess.run(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-v", f"phc={phc}", url],
            input=sql, text=True, check=True,
        )
    else:
        path = url.removeprefix("sqlite://")
        db = sqlite3.connect(path, timeout=60)
        db.execute("PRAGMA busy_timeout = 60000")
        with db:
            db.execute(
                f"WITH RECURSIVE n(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
                f"INSERT INTO users ({columns}) "
                f"SELECT 'user' || i || '@bench.test', ?, ?, 'approved', 0, NULL, ?, ? FROM n",
                (first, last, phc, now, now, now),
            )
        db.execute("ANALYZE")
        db.close()
    count = last - first + 1
    print(f"seeded {count} users in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
