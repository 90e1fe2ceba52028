#!/usr/bin/env python3
"""Puts one user in one group for the benchmark: a bench-only tool.

    seed_group.py DATABASE_URL GROUP EMAIL

Creates group GROUP (the schema must exist: `usher migrate`) and adds the
user EMAIL to it, as the forward-auth check's group rule needs. SQLite goes
through python's sqlite3 module, PostgreSQL through psql.
"""

import sqlite3
import subprocess
import sys
import time


def main() -> None:
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    url, group, email = sys.argv[1:]
    now = int(time.time())
    statements = [
        ("INSERT INTO groups (name, created_at) VALUES (?, ?)", (group, now)),
        (
            "INSERT INTO group_members (group_id, user_id, added_at) "
            "SELECT g.id, u.id, ? FROM groups g, users u WHERE g.name = ? AND u.email = ?",
            (now, group, email),
        ),
    ]
    if url.startswith(("postgres://", "postgresql://")):
        script = "".join(
            sql.replace("?", "{}").format(*(quote(v) for v in values)) + ";\n" for sql, values in statements
        )
        subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", url], input=script, text=True, check=True)
    else:
        with sqlite3.connect(url.removeprefix("sqlite://")) as db:
            for sql, values in statements:
                db.execute(sql, values)
    print(f"   {email} is in group {group}", file=sys.stderr)


def quote(value) -> str:
    """An SQL literal: integers as they are, text in single quotes."""
    return str(value) if isinstance(value, int) else "'" + str(value).replace("'", "''") + "'"


if __name__ == "__main__":
    main()
