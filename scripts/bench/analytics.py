#!/usr/bin/env python3
"""Times every analytics endpoint of a running graphpilot, default window and filtered, and
prints p50/p90 per request with the same aggregate run through the database's own driver as a
baseline (SQLite: Python's sqlite3 on the same file; PostgreSQL: psql), so figures are ratios.

    scripts/bench/analytics.py --base http://127.0.0.1:8080 --token "$TOKEN" \
        [--sqlite DATA_DIR/graphpilot.db | --postgres postgres://…] [--rounds 15]
"""
import argparse
import json
import statistics
import subprocess
import sys
import time
import urllib.request

PROFILE = "Autopilot%20-%20Standard%20User"
REQUESTS = [
    ("summary", "summary"),
    ("summary, filtered", f"summary?profile={PROFILE}&enrollmentType=azureADJoinedWithAutopilotProfile"),
    ("timeline", "timeline"),
    ("timeline, week, filtered", f"timeline?bucket=week&esp=ESP%20-%20Engineering"),
    ("breakdown by profile", "breakdown?by=profile"),
    ("breakdown by osVersion, filtered", "breakdown?by=osVersion&esp=ESP%20-%20Default"),
    ("failures", "failures"),
    ("failures, filtered", f"failures?profile={PROFILE}"),
    ("stuck", "stuck"),
    ("stuck, filtered", "stuck?enrollmentType=azureADJoinedWithWhiteGlove&olderThan=P1D"),
    ("blockers", "blockers"),
    ("blockers, filtered", "blockers?esp=ESP%20-%20Engineering"),
    ("devices/{serial}", None),
]


def timed(url, token):
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    started = time.perf_counter()
    with urllib.request.urlopen(request) as response:
        body = response.read()
    return time.perf_counter() - started, json.loads(body)


def percentile(values, p):
    ordered = sorted(values)
    return ordered[max(0, -(-p * len(ordered) // 100) - 1)]


def baseline_sqlite(path, rounds):
    import sqlite3
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    now = (int(time.time()) + 62135596800) * 10_000_000
    start = now - 30 * 86400 * 10_000_000
    sql = ("SELECT deployment_state, COUNT(*) FROM autopilot_events WHERE tenant_id = ? "
           "AND event_date_time >= ? AND event_date_time < ? GROUP BY deployment_state")
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        connection.execute(sql, ("contoso", start, now)).fetchall()
        times.append(time.perf_counter() - began)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="http://127.0.0.1:8080")
    parser.add_argument("--token", required=True)
    parser.add_argument("--sqlite")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    root = f"{args.base}/graphpilot/analytics/"
    _, stuck = timed(root + "stuck?top=1", args.token)
    serial = stuck["value"][0]["deviceSerialNumber"] if stuck["value"] else "NONE"
    print(f"| request | p50 ms | p90 ms | answer |")
    print(f"|---|---|---|---|")
    for name, path in REQUESTS:
        path = path or f"devices/{serial}"
        times = []
        for round_ in range(args.rounds + 1):
            elapsed, body = timed(root + path, args.token)
            if round_:  # the first warms caches
                times.append(elapsed)
        shape = body.get("deployments", body.get("groups", body.get("count", body.get("attempts", ""))))
        print(f"| {name} | {percentile(times, 50) * 1000:.1f} | {percentile(times, 90) * 1000:.1f} | {shape} |")
        sys.stdout.flush()
    if args.sqlite:
        times = baseline_sqlite(args.sqlite, args.rounds)
        print(f"| baseline: sqlite3 GROUP BY state over the 30-day window | {percentile(times, 50) * 1000:.1f} | {percentile(times, 90) * 1000:.1f} | |")


if __name__ == "__main__":
    main()
