#!/usr/bin/env python3
"""Times `graphpilot sync` pulling a seeded tenant from a local source (a second graphpilot with
the production profile over HTTPS: pages of 50), beside `graphpilot import` of the same events
(exported as NDJSON) into a fresh store in the same run; then an incremental run with nothing new.

    scripts/bench/sync.py [--events 100000]
"""
import argparse
import os
import pathlib
import re
import subprocess
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = str(ROOT / "target" / "release" / "graphpilot")


def run(*args, env=None):
    return subprocess.run([BIN, *args], check=True, capture_output=True, text=True, env=env).stdout


def timed(*args, env=None):
    started = time.perf_counter()
    run(*args, env=env)
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        source_dir, local_dir, import_dir = (os.path.join(work, name) for name in ("source", "local", "import"))
        run("seed", "--data-dir", source_dir, "--tenant", "contoso", "--count", str(args.events), "--end", "now")
        registered = run("app", "add", "--data-dir", source_dir, "--tenant", "contoso", "--name", "bench",
                         "--permission", "DeviceManagementManagedDevices.Read.All")
        client_id = re.search(r"client[ _-]?id\S*\s+(\S+)", registered, re.I).group(1)
        secret = re.search(r"secret\S*\s+(\S+)", registered, re.I).group(1)
        ca = os.path.join(work, "ca.pem")
        pathlib.Path(ca).write_text(run("cert", "--data-dir", source_dir))
        server = subprocess.Popen([BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", source_dir, "--tls",
                                   "--profile", "graph", "--quirk", "retentionDays=0", "--throttling", "off"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                  env=dict(os.environ, RUST_LOG="warn"))
        for line in server.stdout:
            if "service root" in line:
                base = line.split()[-1].removesuffix("/beta").replace("127.0.0.1", "localhost")
                break
        env = dict(os.environ, GRAPHPILOT_SYNC_CLIENT_SECRET=secret, RUST_LOG="warn")
        sync = ["sync", "--data-dir", local_dir, "--source", f"{base}/beta", "--authority", base,
                "--tenant", "contoso", "--client-id", client_id, "--ca-cert", ca]
        full = timed(*sync, env=env)
        incremental = timed(*sync, env=env)
        status = run("sync", "--status", "--data-dir", local_dir)
        server.terminate()
        server.wait()
        export = os.path.join(work, "events.ndjson")
        run("export", "--data-dir", source_dir, "--tenant", "contoso", "--format", "ndjson", "--output", export)
        imported = timed("import", "--data-dir", import_dir, "--tenant", "contoso", export)
        pages = args.events / 50
        print(status)
        print("| events | full sync (pages of 50) | pages/s | events/s | `graphpilot import` of the same NDJSON | sync / import | incremental, nothing new |")
        print("|---|---|---|---|---|---|---|")
        print(f"| {args.events:,} | {full:.1f} s | {pages / full:.0f} | {args.events / full:,.0f} | {imported:.1f} s | "
              f"{full / imported:.1f} | {incremental:.1f} s |")


if __name__ == "__main__":
    main()
