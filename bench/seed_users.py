#!/usr/bin/env python3
"""Seeds users for the benchmark: a bench-only tool.

    seed_users.py DATABASE_URL FIRST LAST PHC_HASH

Inserts users FIRST..LAST (inclusive) as `user<i>@bench.test`, every one
with the same password hash, in one INSERT ... SELECT
(a recursive CTE on SQLite, generate_series on PostgreSQL). The schema must
exist already (`usher migrate`). SQLite goes through python's sqlite3
module, PostgreSQL through psql, so nothing else needs installing.

Most users are verified and approved. So that the admin list's filters have
something to show, i % 100 == 7 waits for approval, i % 100 == 13 has not
confirmed the address, i % 100 == 29 is disabled, and i % 1000 == 3 is an
administrator: 3 % of users cannot sign in (bench/wrk.lua skips them).
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
    verified = f"CASE WHEN i % 100 = 13 THEN NULL ELSE {now} END"
    approval = "CASE WHEN i % 100 IN (7, 13) THEN 'pending' ELSE 'approved' END"
    disabled = f"CASE WHEN i % 100 = 29 THEN {now} END"
    admin = "i % 1000 = 3"
    if url.startswith(("postgres://", "postgresql://")):
        sql = (
            f"INSERT INTO users ({columns}) "
            f"SELECT 'user' || i || '@bench.test', :'phc', {verified}, {approval}, {admin}, {disabled}, {now}, {now} "
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
                f"SELECT 'user' || i || '@bench.test', ?, {verified}, {approval}, {admin}, {disabled}, ?, ? FROM n",
                (first, last, phc, now, now),
            )
        db.execute("ANALYZE")
        db.close()
    count = last - first + 1
    print(f"seeded {count} users in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
