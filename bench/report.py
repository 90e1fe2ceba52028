#!/usr/bin/env python3
"""Turns bench/run's results (JSON lines) into BENCHMARKS.md and prints it.

Anything below the NOTES_MARKER line of an existing BENCHMARKS.md (the
hand-written analysis of the figures) is kept.
"""

import argparse
import datetime
import json
import sys

NOTES_MARKER = "<!-- Everything below this line is kept when bench/run rewrites this file. -->"

MIB = 1024


def fmt(value, digits=1):
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("output")
    for name in ("command", "cores", "model", "memory", "load", "commit", "duration", "warmup",
                 "wrk", "kernel", "rss-note"):
        ap.add_argument(f"--{name}", default="")
    args = ap.parse_args()

    rows = [json.loads(line) for line in open(args.results) if line.strip()]

    def find(backend, scenario_prefix, users=None):
        for r in rows:
            if r.get("backend") == backend and r["scenario"].startswith(scenario_prefix) and (
                users is None or r.get("users") == users
            ):
                return r
        return None

    backends = [b for b in ("sqlite", "postgres") if any(r.get("backend") == b for r in rows)]
    base_users = min((r["users"] for r in rows if r.get("backend") in backends and r.get("users")), default=0)
    scale_users = max((r["users"] for r in rows if r.get("backend") in backends and r.get("users")), default=0)

    out = []
    w = out.append
    w("# Benchmarks")
    w("")
    w(f"Written by `bench/run` on {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC "
      f"from a real run; run it again to refresh every figure (see the command below).")
    w("")
    w(f"- **Command:** `{args.command.strip()}`"
      + (" with `USHER_BENCH_POSTGRES_URL` set" if "postgres" in backends else ""))
    w(f"- **Machine:** {args.cores} × {args.model}, {args.memory} memory, Linux {args.kernel}; "
      f"load average before the run {args.load}")
    w(f"- **Usher:** commit {args.commit}, release build, `USHER_WORKERS={args.cores}`, `USHER_THROTTLE=off`, "
      f"mail to files, default hashing queue (128), logs at `warn`")
    w(f"- **Load generator:** {args.wrk} on loopback, {args.cores} threads (fewer when there are fewer "
      f"connections), a {args.warmup} s warm-up then {args.duration} s measured per scenario; every response "
      f"checked by `bench/wrk.lua`")
    w(f"- **Peak RSS:** the server's VmHWM over the measured run (reset through `/proc/PID/clear_refs` "
      f"before it){'; ' + args.rss_note if args.rss_note else ''}")
    w("")
    w("## Figures")
    w("")
    w("| backend | users | scenario | connections | requests/s | p50 ms | p99 ms | non-2xx/3xx | statuses | peak RSS MiB | other CPU % |")
    w("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |")
    for r in rows:
        if "p50_ms" not in r and "rps" not in r:
            continue
        statuses = ", ".join(f"{k}: {v:,}" for k, v in sorted(r.get("statuses", {}).items()))
        scenario = r["scenario"]
        if "pairs_rps" in r:
            scenario += f" (the median of {len(r['pairs_rps'])} runs)"
        if "delivery_p99_ms" in r:
            scenario += (f" ({r['mails']:,} mails, {fmt(r['mails_per_s_under_load'])} mails/s under load, "
                         f"backlog drained {r['drain_seconds']:.1f} s after it, sign-up to delivery "
                         f"p50 {r['delivery_p50_ms']:,.0f} ms, p99 {r['delivery_p99_ms']:,.0f} ms; "
                         f"{r['mail_connections']} mail connections)")
        if "cleanup_seconds" in r:
            scenario += (f" ({r['deleted_tokens']:,} tokens and {r['deleted_sessions']:,} sessions deleted "
                         f"in {r['cleanup_seconds']} s)")
        w(
            f"| {r['backend']} | {fmt(r.get('users') or None)} | {scenario} | {r.get('connections', '–')} "
            f"| {fmt(r.get('rps'))} | {fmt(r.get('p50_ms'), 2)} | {fmt(r.get('p99_ms'), 2)} "
            f"| {fmt(r.get('status_4xx_5xx'))} | {statuses or '–'} "
            f"| {fmt(r['rss_kib'] / MIB) if r.get('rss_kib') else '–'} "
            f"| {fmt(r['other_cpu_pct']) if 'other_cpu_pct' in r else '–'} |"
        )
    for r in rows:
        if r["scenario"] == "peak RSS since start":
            w(f"| {r['backend']} | | peak RSS of the server over its whole run | | | | | | | {fmt(r['rss_kib'] / MIB)} | |")
    w("")
    rounds = max((len(r["pairs_rps"]) for r in rows if "pairs_rps" in r), default=0)
    w(f"GET /login, GET /account and the forward-auth check are each measured in {rounds} runs, every run right after a run of the "
      "bare actix-web page (a server with the same worker count, up for the whole benchmark): on 2 "
      "cores shared with wrk, the same page's rate moves by up to 2× between runs, so each ratio below "
      f"is the median of the {rounds} pairs' ratios, and each table row shows the median run. Each sign-in "
      "run follows its own Argon2id ceiling: verifies per second with one thread per core, as "
      "Usher's hashing threads verify (its RSS column is that process's peak). \"non-2xx/3xx\" counts responses "
      "with a status of 400 or more; the 503s of the shedding row are the expected answer of a "
      "full hashing queue. \"other CPU\" is the share of the machine's CPU time during the "
      "measured run that neither the server nor wrk used: more than a few percent means "
      "something else was running and the row's figures are low.")
    w("")

    # ------------------------------------------------------------ targets
    w("## Targets")
    w("")
    w("| target | backend | measured | met |")
    w("| --- | --- | --- | --- |")

    def verdict(ok):
        return "yes" if ok else "**no**"

    missed = []

    def target(text, backend, measured, ok, *sources):
        disturbed = max((r.get("other_cpu_pct", 0) for r in sources if r), default=0)
        note = f" (other work took {disturbed:.0f} % of the CPU meanwhile: a rerun may differ)" if disturbed > 10 else ""
        w(f"| {text} | {backend} | {measured}{note} | {verdict(ok) if ok is not None else 'report'} |")
        if ok is False:
            missed.append(f"{text} ({backend}): {measured}{note}")

    for b in backends:
        login = find(b, "GET /login (anonymous)", base_users)
        account = find(b, "GET /account (session)", base_users)
        forward = find(b, "GET /auth/forward (signed in, a group rule)", base_users)
        signin = find(b, "POST /login (sign-in)", base_users)
        probe = find(b, "GET /login during the sign-in flood")
        flood64 = find(b, "POST /login, 64 concurrent")
        shed = find(b, "POST /login, 256 concurrent")
        def against_ceiling(r):
            pairs = ", ".join(f"{u:,.0f} vs {c:,.0f}" for u, c in r["pairs_rps"])
            return r["ratio_to_ceiling"], f"{r['ratio_to_ceiling']:.2f} × (median of the pairs' ratios; req/s of Usher vs the bare page: {pairs})"

        if login:
            ratio, measured = against_ceiling(login)
            target("GET /login ≥ 0.6 × bare actix ceiling", b, measured, ratio >= 0.6, login)
        # A signed-in page or check, in one trip to a database thread:
        # PostgreSQL's trip crosses a socket to another process.
        hot_share = 0.5 if b == "sqlite" else 0.2
        if account:
            ratio, measured = against_ceiling(account)
            target(f"GET /account ≥ {hot_share} × bare actix ceiling", b, measured, ratio >= hot_share, account)
        if forward:
            ratio, measured = against_ceiling(forward)
            target(f"forward-auth check ≥ {hot_share} × bare actix ceiling", b, measured, ratio >= hot_share, forward)
            target("forward-auth check p99 < 5 ms at 32 connections", b,
                   f"p99 {forward['p99_ms']:.2f} ms (p50 {forward['p50_ms']:.2f} ms, {forward['connections']} "
                   "connections, the median of the runs)", forward["p99_ms"] < 5, forward)
        if signin:
            ratio = signin["rps"] / signin["argon2_ceiling"]
            target("POST /login ≥ 0.95 × sign-in limit", b,
                   f"{ratio:.2f} × ({fmt(signin['rps'])} / {fmt(signin['argon2_ceiling'])} per s, the limit measured "
                   "just before)", ratio >= 0.95, signin)
        if probe:
            target("GET /login p99 ≤ 10 ms during the sign-in flood", b,
                   f"p99 {probe['p99_ms']:.1f} ms (p50 {probe['p50_ms']:.1f} ms, {probe['connections']} connections)",
                   probe["p99_ms"] <= 10)
        if flood64:
            target("peak RSS ≤ 64 MiB during 64 concurrent sign-ins", b,
                   f"{flood64['rss_kib'] / MIB:.1f} MiB (a fresh server's peak)", flood64["rss_kib"] <= 64 * MIB)
        if shed:
            n503 = shed.get("statuses", {}).get("503", 0)
            target("beyond the queue: 503 pages, never a timeout", b,
                   f"{n503:,} × 503, {shed['timeouts']} timeouts, {shed['rss_kib'] / MIB:.1f} MiB peak",
                   n503 > 0 and shed["timeouts"] == 0)
        hostile = find(b, "10,000 hostile form posts")
        if hostile:
            target("RSS back under 80 MiB after 10,000 hostile form posts", b,
                   f"{hostile['rss_kib'] / MIB:.1f} MiB once they ended (peak {hostile['peak_rss_kib'] / MIB:.1f} MiB); "
                   f"{hostile['unexpected']} unexpected answers, statuses {hostile['statuses']}",
                   hostile["rss_kib"] < 80 * MIB and hostile["unexpected"] == 0)
        gzipped = find(b, "gzip-encoded sign-in form")
        if gzipped:
            target("a gzip-encoded form post answers 415 and signs no one in", b,
                   f"{gzipped['status']}, {gzipped['session_cookies']} session cookies",
                   gzipped["status"] == 415 and gzipped["session_cookies"] == 0)
        mail = find(b, "POST /register, mail to an SMTP sink")
        if mail:
            # A mail leaves after its sign-up's response, so the window's
            # last few fall after it: 5 % slack.
            keeps_up = mail["mails_per_s_under_load"] >= 0.95 * mail["signups_per_s"]
            target("mail keeps up with sign-ups: mails/s under load ≥ 0.95 × sign-ups/s, sign-up to delivery p99 ≤ 10 s",
                   b, f"{fmt(mail['mails_per_s_under_load'])} mails/s vs {fmt(mail['signups_per_s'])} sign-ups/s; "
                   f"p99 {mail['delivery_p99_ms'] / 1000:.2f} s (p50 {mail['delivery_p50_ms'] / 1000:.2f} s, max "
                   f"{mail['delivery_max_ms'] / 1000:.2f} s, from the request to the sink); backlog drained "
                   f"{mail['drain_seconds']:.1f} s after the load", keeps_up and mail["delivery_p99_ms"] <= 10_000, mail)
        if login:
            # Background work (the mail worker, the periodic cleanup and its
            # lease) may write now and then; a write per request would show
            # as about 1 per request.
            if "db_commits_seen" in login:
                n, requests = login["db_commits_seen"], login.get("requests_all_rounds", login["requests"])
                target("no database write on anonymous GETs", b,
                       f"{n} commits seen by an observer during {requests:,} requests", n < 0.001 * requests)
            elif "row_writes" in login:
                writes, requests = login["row_writes"], login["write_requests"]
                detail = ", ".join(f"{k}: {v}" for k, v in sorted(writes.items())) or "none"
                target("no database write on anonymous GETs", b,
                       f"{sum(writes.values())} rows written during {requests:,} requests ({detail})",
                       sum(writes.values()) < 0.001 * requests)
        if signin and "row_writes" in signin:
            writes = signin["row_writes"]
            # Per session row inserted: one per successful sign-in, including
            # those still in flight when wrk stopped counting.
            sessions = writes.get("sessions inserts", 0)
            others = {k: v for k, v in writes.items() if k != "sessions inserts"}
            per = {k: v / max(sessions, 1) for k, v in others.items()}
            detail = ", ".join(f"{k} {v:.2f}" for k, v in sorted(per.items())) or "nothing else"
            target("≤ 1 write per sign-in besides the session row", b,
                   f"{sum(per.values()):.2f} per sign-in over {sessions:,} sign-ins ({detail})",
                   # PostgreSQL's counters are flushed lazily per backend: allow a 1 % lag.
                   sessions > 0 and sum(per.values()) <= 1.01)
        elif signin:
            target("≤ 1 write per sign-in besides the session row", b,
                   "not measured on SQLite (no per-table counters); see PostgreSQL: the code is the same", None)

    for b in backends:
        if scale_users > base_users:
            seed = find(b, f"seed {scale_users - base_users} users")
            if seed:
                target(f"seed {scale_users:,} users in under a few minutes", b,
                       f"{seed['seconds']} s for {scale_users - base_users:,} users", seed["seconds"] <= 180)
            # Each figure as a share of the ceiling measured beside it, since
            # the machine's speed drifts over a run; the raw rates follow.
            for scenario, label, share in (
                ("GET /account (session)", "GET /account", lambda r: r["ratio_to_ceiling"]),
                ("GET /auth/forward (signed in, a group rule)", "the forward-auth check",
                 lambda r: r["ratio_to_ceiling"]),
                ("POST /login (sign-in)", "POST /login", lambda r: r["rps"] / r["argon2_ceiling"]),
            ):
                small, large = find(b, scenario, base_users), find(b, scenario, scale_users)
                if small and large:
                    change = share(large) / share(small) - 1
                    target(f"{label} at {scale_users:,} users within 15 % of {base_users:,}", b,
                           f"{change:+.1%} as shares of the ceiling beside each ({share(large):.2f} vs "
                           f"{share(small):.2f}); raw {fmt(large['rps'])} vs {fmt(small['rps'])} req/s, p99 "
                           f"{large['p99_ms']:.1f} vs {small['p99_ms']:.1f} ms", abs(change) <= 0.15, small, large)
        else:
            w(f"| GET /account, the forward-auth check and POST /login at 1 M users within 15 % of 1 k | {b} "
              "| not run: `bench/run --scale` | – |")
    for b in backends:
        users = scale_users if scale_users > base_users else base_users
        pages = [find(b, f"GET /admin/users, {label}", users)
                 for label in ("first page", "a page deep in the list", "email-prefix search", "filter waiting",
                               "filter verified", "filter unverified", "filter disabled", "filter admins")]
        if all(pages):
            worst = max(p["p99_ms"] for p in pages)
            detail = "; ".join(f"{p['scenario'].split(', ', 1)[1]} p99 {p['p99_ms']:.1f} ms" for p in pages)
            at_scale = users >= 1_000_000
            target("admin user list p99 ≤ 20 ms at 1 M users (first page, a deep page, prefix search, each filter)", b,
                   f"at {users:,} users, {pages[0]['connections']} connections: {detail}",
                   worst <= 20 if at_scale else None, *pages)
        cleanup = find(b, "GET /account during usher cleanup")
        if cleanup:
            expected = cleanup["expired_seeded"]
            all_deleted = cleanup["deleted_tokens"] >= expected and cleanup["deleted_sessions"] >= expected
            target("`usher cleanup` of 1 M expired tokens and sessions in batches, GET /account p99 ≤ 50 ms meanwhile", b,
                   f"{cleanup['deleted_tokens']:,} tokens and {cleanup['deleted_sessions']:,} sessions deleted in "
                   f"{cleanup['cleanup_seconds']} s; GET /account meanwhile p99 {cleanup['p99_ms']:.1f} ms, "
                   f"p50 {cleanup['p50_ms']:.2f} ms, {fmt(cleanup['rps'])} req/s, {cleanup['connections']} connections",
                   all_deleted and expected >= 1_000_000 and cleanup["p99_ms"] <= 50, cleanup)
        else:
            w(f"| `usher cleanup` of 1 M expired tokens and sessions, GET /account p99 ≤ 50 ms meanwhile | {b} "
              "| not run: `bench/run --scale` | – |")
    w("")

    notes = []
    try:
        existing = open(args.output).read()
        if NOTES_MARKER in existing:
            notes = existing.split(NOTES_MARKER, 1)[1].strip("\n").splitlines()
    except FileNotFoundError:
        pass
    text = "\n".join(out) + "\n"
    with open(args.output, "w") as f:
        f.write(text + "\n" + NOTES_MARKER + "\n\n" + ("\n".join(notes) + "\n" if notes else ""))
    sys.stdout.write(text)
    if missed:
        sys.stdout.write("\nTargets missed:\n" + "".join(f"  - {m}\n" for m in missed))
    print(f"\nWrote {args.output}")


if __name__ == "__main__":
    main()
