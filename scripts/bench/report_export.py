#!/usr/bin/env python3
"""Times a report export job (POST, poll until completed, download) over a seeded tenant and its
server's memory while the job runs, beside `graphpilot export --format csv` of the same tenant
run in the same session (its wall time and peak RSS): the ratio says what the report's snapshot,
cells, CSV quoting and zip cost over a plain export. Run at two sizes to see memory stay flat.

    scripts/bench/report_export.py [--events 100000 1000000] [--postgres postgres://…:5432]
"""
import argparse
import json
import os
import pathlib
import subprocess
import tempfile
import threading
import time
import urllib.request
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = ROOT / "target" / "release" / "graphpilot"


def rss_kib(pid, field="VmRSS"):
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except FileNotFoundError:
        return 0
    return 0


class Sampler(threading.Thread):
    """The largest resident set of a process while it runs (sampled every 20 ms)."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.running = pid, 0, True

    def run(self):
        while self.running:
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.02)


def request(method, url, token=None, body=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(urllib.request.Request(url, data=data, method=method, headers=headers)) as response:
        return response.read()


def measure(events, storage, data_dir):
    subprocess.run([str(BIN), "seed", *storage, "--tenant", "contoso", "--count", str(events)],
                   check=True, capture_output=True)
    # graphpilot export, alone, as the baseline.
    out = pathlib.Path(data_dir) / "export.csv"
    started = time.perf_counter()
    child = subprocess.Popen([str(BIN), "export", *storage, "--tenant", "contoso", "--format", "csv",
                              "--output", str(out)], stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(child.pid, 0)
    export_seconds = time.perf_counter() - started
    export_peak_mib = usage.ru_maxrss / 1024
    export_bytes = out.stat().st_size
    out.unlink()
    # The server, its job and its download.
    server = subprocess.Popen([str(BIN), "serve", "--listen", "127.0.0.1:0", "--throttling", "off", *storage],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                              env=dict(os.environ, RUST_LOG="warn"))
    for line in server.stdout:
        if "service root" in line:
            root = line.split()[-1]
            break
    token = subprocess.run([str(BIN), "token", "--data-dir", data_dir, *storage[2:], "--tenant", "contoso",
                            "--app", "bench", "--role", "DeviceManagementManagedDevices.ReadWrite.All"],
                           check=True, capture_output=True, text=True).stdout.strip()
    time.sleep(0.5)
    idle_mib = rss_kib(server.pid) / 1024
    sampler = Sampler(server.pid)
    sampler.start()
    started = time.perf_counter()
    job = json.loads(request("POST", f"{root}/deviceManagement/reports/exportJobs", token,
                             {"reportName": "AutopilotV1DeploymentStatus", "format": "csv"}))
    while True:
        job = json.loads(request("GET", f"{root}/deviceManagement/reports/exportJobs/{job['id']}", token))
        if job["status"] == "completed" and job["url"]:
            break
        if job["status"] == "failed":
            raise RuntimeError("the export job failed")
        time.sleep(0.05)
    job_seconds = time.perf_counter() - started
    zip_bytes = len(request("GET", job["url"]))
    total_seconds = time.perf_counter() - started
    sampler.running = False
    sampler.join()
    server.terminate()
    server.wait()
    return {
        "events": events,
        "export_s": export_seconds, "export_peak_mib": export_peak_mib, "export_mb": export_bytes / 1e6,
        "job_s": job_seconds, "with_download_s": total_seconds, "zip_mb": zip_bytes / 1e6,
        "server_idle_mib": idle_mib, "server_peak_mib": sampler.peak / 1024,
    }


def storage_for(kind, data_dir, postgres):
    if kind == "sqlite":
        return ["--data-dir", data_dir]
    name = f"gp_bench_{uuid.uuid4().hex}"
    subprocess.run(["psql", f"{postgres}/postgres", "-q", "-c", f"CREATE DATABASE {name}"], check=True)
    return ["--data-dir", data_dir, "--database", f"{postgres}/{name}"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--postgres", help="also measure on this PostgreSQL server")
    args = parser.parse_args()
    kinds = ["sqlite"] + (["postgres"] if args.postgres else [])
    print("| database | events | `graphpilot export` csv | its peak RSS | export job (POST → completed) | "
          "+ download | ratio job / export | server RSS idle → peak while the job runs | zip | csv |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for kind in kinds:
        for events in args.events:
            with tempfile.TemporaryDirectory() as data_dir:
                storage = storage_for(kind, data_dir, args.postgres)
                r = measure(events, storage, data_dir)
                print(f"| {kind} | {events:,} | {r['export_s']:.1f} s | {r['export_peak_mib']:.0f} MiB | "
                      f"{r['job_s']:.1f} s | {r['with_download_s']:.1f} s | {r['job_s'] / r['export_s']:.2f} | "
                      f"{r['server_idle_mib']:.0f} → {r['server_peak_mib']:.0f} MiB | {r['zip_mb']:.0f} MB | "
                      f"{r['export_mb']:.0f} MB |", flush=True)


if __name__ == "__main__":
    main()
