#!/usr/bin/env python3
"""Do answers take the same time whether or not an address has an account?

Starts a release Usher on a fresh SQLite database (rate limits off), makes
one verified and one unverified account, then times each address-revealing
request for an address with an account and for one without, interleaved,
and prints the medians and 90th percentiles side by side. Then the same for
a right password to an account with two-step sign-in and to one without
(the first opens the code step, the second a session).

    cargo build --release && python3 bench/timing.py [--rounds 40]
"""
import argparse
import http.cookiejar
import os
import re
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

PASSWORD = "violet tractor umbrella 42"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    def __init__(self, base):
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), NoRedirect()
        )

    def get(self, path):
        with self.opener.open(self.base + path) as response:
            return response.read().decode()

    def csrf(self, path="/login"):
        return re.search(r'name="csrf_token" value="([^"]+)"', self.get(path)).group(1)

    def post(self, path, fields):
        data = urllib.parse.urlencode(fields).encode()
        started = time.perf_counter()
        try:
            with self.opener.open(self.base + path, data) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            status = error.code
        return status, (time.perf_counter() - started) * 1000


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--binary", default=os.path.abspath("target/release/usher"))
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="usher-timing-")
    db_path = os.path.join(work, "usher.db")
    port = free_port()
    env = dict(os.environ, DATABASE_URL=db_path, USHER_BIND=f"127.0.0.1:{port}", USHER_THROTTLE="off",
               USHER_SESSION_KEY="timing benchmark key of at least thirty-two bytes",
               USHER_MAIL_DIR=os.path.join(work, "mail"), RUST_LOG="warn")
    server = subprocess.Popen([args.binary], env=env, cwd=work)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/healthz")
                break
            except OSError:
                time.sleep(0.1)
        browser = Browser(base)
        for email in ["known@example.com", "waiting@example.com", "twostep@example.com"]:
            token = browser.csrf("/register")
            browser.post("/register", {"csrf_token": token, "email": email, "password": PASSWORD,
                                       "password_confirm": PASSWORD})
        with sqlite3.connect(db_path) as db:
            db.execute("UPDATE users SET email_verified_at = 1 WHERE email IN ('known@example.com', 'twostep@example.com')")
            # The password step only asks whether the factor is on; the key is never opened.
            db.execute("INSERT INTO two_factor (user_id, secret, enabled_at, last_step, created_at) "
                       "SELECT id, x'00', 1, 0, 1 FROM users WHERE email = 'twostep@example.com'")

        cases = [
            ("sign-in (wrong password)", "/login", "known@example.com",
             lambda email, n: {"email": email, "password": "not the password!"}),
            ("forgot password", "/password/forgot", "known@example.com", lambda email, n: {"email": email}),
            ("resend verification", "/verify/resend", "waiting@example.com", lambda email, n: {"email": email}),
            ("code entry (wrong code)", "/verify", "waiting@example.com",
             lambda email, n: {"email": email, "code": "000000"}),
            ("register", "/register", "known@example.com",
             lambda email, n: {"email": email if "known" in email else f"new{n}@example.com",
                               "password": PASSWORD, "password_confirm": PASSWORD}),
        ]
        print(f"{'request':26} {'with account: p50 / p90 ms':>28} {'without: p50 / p90 ms':>24}")
        for name, path, known, fields in cases:
            times = {"known": [], "unknown": []}
            token = browser.csrf()
            for n in range(args.rounds):
                for kind, email in (("known", known), ("unknown", f"nobody{n}@example.com")):
                    status, ms = browser.post(path, {"csrf_token": token, **fields(email, n)})
                    assert status < 500, (name, status)
                    times[kind].append(ms)
            row = []
            for kind in ("known", "unknown"):
                values = sorted(times[kind])
                row.append(f"{statistics.median(values):7.1f} / {values[int(len(values) * 0.9)]:6.1f}")
            print(f"{name:26} {row[0]:>28} {row[1]:>24}")

        print(f"\n{'right password':26} {'two-step on: p50 / p90 ms':>28} {'off: p50 / p90 ms':>24}")
        times = {"on": [], "off": []}
        for n in range(args.rounds):
            for kind, email in (("on", "twostep@example.com"), ("off", "known@example.com")):
                fresh = Browser(base)  # a new browser each time: no session to carry over
                token = fresh.csrf()
                status, ms = fresh.post("/login", {"csrf_token": token, "email": email, "password": PASSWORD})
                assert status == 303, (email, status)
                times[kind].append(ms)
        row = []
        for kind in ("on", "off"):
            values = sorted(times[kind])
            row.append(f"{statistics.median(values):7.1f} / {values[int(len(values) * 0.9)]:6.1f}")
        print(f"{'sign-in (right password)':26} {row[0]:>28} {row[1]:>24}")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    sys.exit(main())
