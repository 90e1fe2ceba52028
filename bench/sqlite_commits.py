#!/usr/bin/env python3
"""Counts the commits other connections make to a SQLite database.

    sqlite_commits.py DATABASE SECONDS

Polls PRAGMA data_version every 10 ms for SECONDS, or until it gets SIGTERM,
and prints
{"db_commits_seen": N}: how many polls saw a change. Several commits between
two polls count once, so N is a lower bound; 0 means nothing was written.
"""

import json
import signal
import sqlite3
import sys
import time


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    db = sqlite3.connect(sys.argv[1].removeprefix("sqlite://"), timeout=30)
    version = db.execute("PRAGMA data_version").fetchone()[0]
    seen = 0
    end = time.monotonic() + float(sys.argv[2])
    stopped = []
    signal.signal(signal.SIGTERM, lambda *_: stopped.append(True))
    while time.monotonic() < end and not stopped:
        time.sleep(0.01)
        now = db.execute("PRAGMA data_version").fetchone()[0]
        if now != version:
            seen += 1
            version = now
    print(json.dumps({"db_commits_seen": seen}))


if __name__ == "__main__":
    main()
