#!/usr/bin/env python3
"""OData at scale: seeds 1,000,000 events in one tenant and 100,000 in another (SQLite), serves
them with --throttling off, and times the queries dashboards run, each next to the same SQL run
directly in SQLite in the same run. Writes the table into docs/performance.md.

    scripts/bench/odata.py [--events 1000000] [--seconds 5]
"""
import argparse
import base64
import datetime
import json
import os
import pathlib
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = ROOT / "target" / "release" / "graphpilot"
END = datetime.datetime(2026, 11, 1, tzinfo=datetime.timezone.utc)
EPOCH_TICKS = 621_355_968_000_000_000  # 0001-01-01 → 1970-01-01 in 100 ns ticks


def ticks(moment):
    return EPOCH_TICKS + int(moment.timestamp()) * 10_000_000


def run(*args, **kwargs):
    return subprocess.run(args, check=True, text=True, capture_output=True, **kwargs).stdout


def wrk(base, path, token, seconds, fresh=True):
    """Times GET `path` at one connection. `fresh`: under another Host each request, so a page is
    rendered every time and never answered from the server's kept pages (the same SQL either way)."""
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: the benchmarks time requests with it (Debian: apt-get install wrk)")
    env = dict(os.environ, BENCH_MODE="path-fresh" if fresh else "path", BENCH_PATH=path, BENCH_TOKEN=token)
    out = run("wrk", "-t1", "-c1", f"-d{seconds}s", "-s", str(ROOT / "scripts/bench/wrk.lua"), base, env=env)
    rps, p50, p99, non2xx, socket = re.search(r"^RESULT (\S+) (\S+) (\S+) (\S+) (\S+)", out, re.M).groups()
    assert non2xx == "0" and socket == "0", out
    return float(rps), int(p50) / 1000, int(p99) / 1000


def direct(db, sql, params, runs=300):
    """Median wall time (ms) of the statement run directly in SQLite, rows fetched."""
    connection = sqlite3.connect(db)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        connection.execute(sql, params).fetchall()
        samples.append((time.perf_counter() - start) * 1000)
    connection.close()
    return statistics.median(samples)


def get(url, token):
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def cursor_of(next_link):
    token = urllib.parse.parse_qs(urllib.parse.urlsplit(next_link).query, keep_blank_values=True)["$skiptoken"][0]
    payload = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        subprocess.run(["sh", "-c", "apt-get update -qq && apt-get install -y -qq wrk"], check=True)
    subprocess.run(["cargo", "build", "--release", "--locked", "-q"], cwd=ROOT, check=True)
    work = pathlib.Path(tempfile.mkdtemp())
    data = work / "data"
    db = data / "graphpilot.db"
    start = time.perf_counter()
    print(run(str(BIN), "seed", "--data-dir", str(data), "--tenant", "contoso", "--count", str(args.events)).strip(), file=sys.stderr)
    seed_seconds = time.perf_counter() - start
    print(run(str(BIN), "seed", "--data-dir", str(data), "--tenant", "fabrikam", "--count", str(args.events // 10), "--seed", "2").strip(), file=sys.stderr)
    server = subprocess.Popen([str(BIN), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data), "--throttling", "off"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=dict(os.environ, RUST_LOG="warn"))
    try:
        root = None
        for line in server.stdout:
            if "service root" in line:
                root = line.split()[-1]
                break
        base = root.removesuffix("/beta")
        token = run(str(BIN), "token", "--data-dir", str(data), "--tenant", "contoso", "--app", "bench",
                    "--role", "DeviceManagementManagedDevices.Read.All").strip()
        since = END - datetime.timedelta(days=30)
        since_text = since.strftime("%Y-%m-%dT%H:%M:%SZ")
        week_text = (END - datetime.timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
        events = "/beta/deviceManagement/autopilotEvents"
        failures = f"{events}?$filter=" + urllib.parse.quote(f"deploymentState eq 'failure' and eventDateTime ge {since_text}") \
            + "&$orderby=" + urllib.parse.quote("eventDateTime desc")
        # Walk to page 200 of both walks (or the last page, for small fleets) to get their cursors.
        def deep_page(path):
            url, page = base + path, 1
            while page < 200:
                following = get(url, token).get("@odata.nextLink")
                if following is None:
                    break
                url, page = following, page + 1
            return url, page
        failures_200, failures_page = deep_page(failures)
        plain_200, plain_page = deep_page(events)
        count = f"{events}/$count?$filter=" + urllib.parse.quote(f"deploymentState eq 'failure' and eventDateTime ge {week_text}")

        select = "SELECT * FROM autopilot_events WHERE tenant_id = ? AND deployment_state = 3 AND event_date_time >= ?"
        edt, last_id = cursor_of(failures_200)
        plain_seq = cursor_of(plain_200)[0]
        rows = [
            ("failures in the last 30 days, newest first: page 1", failures,
             select + " ORDER BY event_date_time DESC, id DESC LIMIT 51", ("contoso", ticks(since))),
            (f"the same walk: page {failures_page}", failures_200.removeprefix(base),
             select + " AND event_date_time <= ? AND (event_date_time < ? OR (event_date_time = ? AND id < ?)) ORDER BY event_date_time DESC, id DESC LIMIT 51",
             ("contoso", ticks(since), edt, edt, edt, last_id)),
            ("/$count of failures in the last 7 days", count,
             "SELECT COUNT(*) FROM autopilot_events WHERE tenant_id = ? AND deployment_state = 3 AND event_date_time >= ?",
             ("contoso", ticks(END - datetime.timedelta(days=7)))),
            ("unfiltered walk: page 1", events,
             "SELECT * FROM autopilot_events WHERE tenant_id = ? ORDER BY seq LIMIT 51", ("contoso",)),
            (f"unfiltered walk: page {plain_page}", plain_200.removeprefix(base),
             "SELECT * FROM autopilot_events WHERE tenant_id = ? AND seq > ? ORDER BY seq LIMIT 51", ("contoso", plain_seq)),
        ]
        table = ["| query | graphpilot p50 (ms) | p99 (ms) | req/s (1 connection) | same SQL in SQLite, median (ms) | ratio |",
                 "|---|---|---|---|---|---|"]
        plans = []
        for label, path, sql, params in rows:
            rps, p50, p99 = wrk(base, path, token, args.seconds)
            sql_ms = direct(str(db), sql, params)
            table.append(f"| {label} | {p50:.2f} | {p99:.2f} | {rps:.0f} | {sql_ms:.3f} | {p50 / sql_ms:.1f}x |")
            plan = sqlite3.connect(str(db)).execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
            plans.append(f"- {label}: `{'; '.join(row[-1] for row in plan)}`")
            print(table[-1], file=sys.stderr)
    finally:
        server.terminate()
        server.wait()
    commit = run("git", "rev-parse", "--short", "HEAD", cwd=ROOT).strip()
    section = "\n".join([
        "<!-- bench:odata:start -->",
        f"Measured by `scripts/bench/odata.py --events {args.events} --seconds {args.seconds}` on {datetime.date.today()} "
        f"(commit {commit}): {args.events:,} events in tenant contoso plus {args.events // 10:,} in fabrikam, SQLite, "
        f"one connection, wrk on the same 2-core machine. `graphpilot seed --count {args.events}` took {seed_seconds:.1f} s.",
        "",
        *table,
        "",
        "Query plans (EXPLAIN QUERY PLAN of the direct SQL, the same shape graphpilot sends):",
        "",
        *plans,
        "<!-- bench:odata:end -->",
    ])
    print(section)
    path = ROOT / "docs/performance.md"
    text = path.read_text()
    if "<!-- bench:odata:start -->" in text:
        text = re.sub(r"<!-- bench:odata:start -->.*<!-- bench:odata:end -->", lambda _: section, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n## OData at scale\n\n" + section + "\n"
    path.write_text(text)
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
