#!/usr/bin/env python3
"""Times every analytics endpoint of a running graphpilot, default window and filtered, and
prints p50/p90 per request beside a baseline measured in the same run: the cheapest aggregate over
the same 30-day window (counts by deploymentState) run through the database's own tools (SQLite:
Python's sqlite3 on the same file; PostgreSQL: one psql session with \\timing), so every figure
is also a ratio to what the database itself needs to read the window.

    scripts/bench/analytics.py --base http://127.0.0.1:8080 --token "$TOKEN" \
        [--sqlite DATA_DIR/graphpilot.db | --postgres postgres://…/db] [--rounds 15]
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


BASELINE_SQL = ("SELECT deployment_state, COUNT(*) FROM autopilot_events WHERE tenant_id = 'contoso' "
                "AND event_date_time >= {start} AND event_date_time < {now} GROUP BY deployment_state")


def window_ticks():
    now = (int(time.time()) + 62135596800) * 10_000_000
    return now - 30 * 86400 * 10_000_000, now


def baseline_postgres(url, rounds):
    start, now = window_ticks()
    script = "\\timing on\n" + "\n".join([BASELINE_SQL.format(start=start, now=now) + ";"] * (rounds + 1))
    output = subprocess.run(["psql", url, "-q", "-X"], input=script, capture_output=True, text=True, check=True).stdout
    times = [float(line.split()[1]) / 1000 for line in output.splitlines() if line.startswith("Time: ")]
    return times[1:]


def baseline_sqlite(path, rounds):
    import sqlite3
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    start, now = window_ticks()
    times = []
    for round_ in range(rounds + 1):
        began = time.perf_counter()
        connection.execute(BASELINE_SQL.format(start=start, now=now)).fetchall()
        if round_:
            times.append(time.perf_counter() - began)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="http://127.0.0.1:8080")
    parser.add_argument("--token", required=True)
    parser.add_argument("--sqlite")
    parser.add_argument("--postgres")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    root = f"{args.base}/graphpilot/analytics/"
    baseline = None
    if args.sqlite:
        baseline = percentile(baseline_sqlite(args.sqlite, args.rounds), 50)
    elif args.postgres:
        baseline = percentile(baseline_postgres(args.postgres, args.rounds), 50)
    _, stuck = timed(root + "stuck?top=1", args.token)
    serial = stuck["value"][0]["deviceSerialNumber"] if stuck["value"] else "NONE"
    print("| request | p50 ms | p90 ms | p50 / baseline | answer |")
    print("|---|---|---|---|---|")
    for name, path in REQUESTS:
        path = path or f"devices/{serial}"
        times = []
        for round_ in range(args.rounds + 1):
            elapsed, body = timed(root + path, args.token)
            if round_:  # the first warms caches
                times.append(elapsed)
        shape = body.get("deployments", body.get("groups", body.get("count", body.get("attempts", ""))))
        ratio = f"{percentile(times, 50) / baseline:.2f}x" if baseline else ""
        print(f"| {name} | {percentile(times, 50) * 1000:.1f} | {percentile(times, 90) * 1000:.1f} | {ratio} | {shape} |")
        sys.stdout.flush()
    if baseline:
        tool = "Python's sqlite3" if args.sqlite else "psql"
        print(f"| baseline: {tool}, counts by state over the 30-day window | {baseline * 1000:.1f} | | 1.0x | |")


if __name__ == "__main__":
    main()
