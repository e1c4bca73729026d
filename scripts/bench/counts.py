#!/usr/bin/env python3
"""Counts and first pages over a million events (SQLite): `/$count` and the first page of 50 for
filters of equality and range terms on the indexed properties, each timed at one connection
(wrk, 3 s); a first page is rendered afresh each time (another Host per request), and timed
once more as asked again (answered from the server's kept pages). The goal (issue 14) is absolute: p50 at most 20 ms. Writes the table into
docs/performance.md.

    scripts/bench/counts.py [--events 1000000] [--data-dir DIR (reused if it holds a seeded fleet)]
"""
import argparse
import datetime
import os
import pathlib
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request

# The same process and wrk helpers as the OData benchmark beside this file.
from odata import run, wrk as timed

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = ROOT / "target" / "release" / "graphpilot"
EVENTS = "/beta/deviceManagement/autopilotEvents"



def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--data-dir")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    subprocess.run(["cargo", "build", "--release", "--locked", "-q", "--bin", "graphpilot"], cwd=ROOT, check=True)
    work = pathlib.Path(args.data_dir) if args.data_dir else pathlib.Path(tempfile.mkdtemp())
    db = work / "graphpilot.db"
    if not db.exists():
        print(run(str(BIN), "seed", "--data-dir", str(work), "--tenant", "contoso", "--count", str(args.events)).strip(),
              file=sys.stderr)
    connection = sqlite3.connect(db)
    newest = connection.execute("SELECT max(event_date_time) FROM autopilot_events").fetchone()[0]
    end = datetime.datetime(1, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(microseconds=newest // 10)
    iso = lambda moment: moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    week, month = iso(end - datetime.timedelta(days=7)), iso(end - datetime.timedelta(days=30))
    profile = connection.execute("SELECT deployment_profile_display_name FROM autopilot_events "
                                 "WHERE deployment_profile_display_name IS NOT NULL LIMIT 1").fetchone()[0]
    os_version = connection.execute("SELECT os_version FROM autopilot_events WHERE os_version IS NOT NULL "
                                    "LIMIT 1 OFFSET 5000").fetchone()[0]
    serial = connection.execute("SELECT device_serial_number FROM autopilot_events LIMIT 1 OFFSET 77777").fetchone()[0]
    filters = [
        "deploymentState eq 'failure'",
        "deploymentState eq 'failure' and enrollmentType eq 'offlineDomainJoined'",
        "enrollmentType eq 'azureADJoinedWithWhiteGlove'",
        "deploymentState eq 'success' and enrollmentType eq 'azureADJoinedWithAutopilotProfile'",
        f"eventDateTime ge {week}",
        f"deploymentState eq 'failure' and eventDateTime ge {month}",
        f"enrollmentType eq 'offlineDomainJoined' and eventDateTime ge {month}",
        "deploymentState in ('failure', 'inProgress') and deviceSetupStatus eq 'failure'",
        "accountSetupStatus eq 'failure'",
        f"windowsAutopilotDeploymentProfileDisplayName eq '{profile}'",
        f"osVersion eq '{os_version}' and deploymentState eq 'success'",
        "deploymentTotalDuration gt duration'PT45M'",
        f"deviceSerialNumber eq '{serial}'",
    ]
    server = subprocess.Popen([str(BIN), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(work), "--throttling", "off"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=dict(os.environ, RUST_LOG="warn"))
    rows = ["| filter | matches | `/$count` p50 (ms) | p99 | first page of 50 p50 (ms) | p99 | the page asked again, p50 (ms) |",
            "|---|---|---|---|---|---|---|"]
    try:
        base = None
        for line in server.stdout:
            if "service root" in line:
                base = line.split()[-1].removesuffix("/beta")
                break
        token = run(str(BIN), "token", "--data-dir", str(work), "--tenant", "contoso", "--app", "bench",
                    "--role", "DeviceManagementManagedDevices.Read.All").strip()
        for text in filters:
            quoted = urllib.parse.quote(text)
            request = urllib.request.Request(f"{base}{EVENTS}/$count?$filter={quoted}",
                                             headers={"Authorization": f"Bearer {token}"})
            matches = int(urllib.request.urlopen(request).read())
            count = timed(base, f"{EVENTS}/$count?$filter={quoted}", token, args.seconds)[1:]
            page = timed(base, f"{EVENTS}?$filter={quoted}&$top=50", token, args.seconds)[1:]
            kept = timed(base, f"{EVENTS}?$filter={quoted}&$top=50", token, args.seconds, fresh=False)[1:]
            rows.append(f"| `{text}` | {matches:,} | {count[0]:.2f} | {count[1]:.2f} | {page[0]:.2f} | {page[1]:.2f} "
                        f"| {kept[0]:.2f} |")
            print(rows[-1], file=sys.stderr)
    finally:
        server.terminate()
        server.wait()
        if not args.data_dir:
            shutil.rmtree(work)
    commit = run("git", "rev-parse", "--short", "HEAD", cwd=ROOT).strip()
    section = "\n".join([
        "<!-- bench:counts:start -->",
        f"Measured by `scripts/bench/counts.py --events {args.events}` on {datetime.date.today()} (commit {commit}): "
        f"{args.events:,} seeded events in one tenant, SQLite, one connection, wrk on the same 2-core machine.",
        "",
        *rows,
        "<!-- bench:counts:end -->",
    ])
    print(section)
    if not args.no_write:
        path = ROOT / "docs/performance.md"
        text = path.read_text()
        if "<!-- bench:counts:start -->" in text:
            text = re.sub(r"<!-- bench:counts:start -->.*<!-- bench:counts:end -->", lambda _: section, text, flags=re.S)
        else:
            text = text.rstrip() + "\n\n## Counts and first pages at a million events\n\n" + section + "\n"
        path.write_text(text)


if __name__ == "__main__":
    main()
