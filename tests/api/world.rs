//! The faults of the world around graphpilot: a disk that fills up and frees again, a file system
//! gone read-only, a database stopped and started under write load, a node killed, a lock held
//! elsewhere. For each: clean Graph errors while it lasts, nothing acknowledged lost, no request
//! held past its deadline, recovery without a restart.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::*;

/// What a fault load saw: per acknowledged event its last acknowledged osVersion, the serial
/// numbers of creates refused with 503/507, every status with its count, and the slowest answer.
#[derive(Default)]
struct Ledger {
    acknowledged: HashMap<String, String>,
    refused_creates: Vec<String>,
    statuses: HashMap<u16, u64>,
    slowest: Duration,
    /// When each status was last seen, to tell when writes resumed.
    last_seen: HashMap<u16, Instant>,
}

struct Load {
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// `writers` tasks, each creating events with unique serial numbers (padded to `body_bytes`)
    /// and PATCHing its newest; every 5xx must be a Graph-shaped 503 or 507 with Retry-After (or
    /// a 504 for a commit that outlasted the deadline). Every request must be answered.
    fn start(app: &TestApp, writers: usize, body_bytes: usize) -> Load {
        Self::start_with(app, writers, body_bytes, false)
    }

    /// [`Load::start`] for a server that will be killed: a task ends at its first request that
    /// gets no answer (which then counts as neither acknowledged nor refused).
    fn start_with(app: &TestApp, writers: usize, body_bytes: usize, until_dropped: bool) -> Load {
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..writers)
            .map(|writer| {
                let (client, url, token) =
                    (app.client.clone(), app.events_url(), app.token.clone());
                let (ledger, stop) = (ledger.clone(), stop.clone());
                tokio::spawn(async move {
                    let padding = "p".repeat(body_bytes);
                    let mut newest: Option<String> = None;
                    for n in 0_u64.. {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        let serial = format!("W{writer}-{n}");
                        let patching = n % 3 == 2 && newest.is_some();
                        let request = if patching {
                            let id = newest.clone().unwrap();
                            client
                                .patch(format!("{url}/{id}"))
                                .json(&json!({"osVersion": serial}))
                        } else {
                            client.post(&url).json(&json!({
                                "deviceSerialNumber": serial,
                                "osVersion": serial,
                                "enrollmentFailureDetails": padding,
                            }))
                        };
                        if patching {
                            // Until it is answered, the event's state is unknown.
                            ledger
                                .lock()
                                .unwrap()
                                .acknowledged
                                .remove(newest.as_ref().unwrap());
                        }
                        let clock = Instant::now();
                        let sent = request
                            .bearer_auth(&token)
                            .timeout(Duration::from_secs(60))
                            .send()
                            .await;
                        let response = match sent {
                            Ok(response) => response,
                            Err(_) if until_dropped => return,
                            Err(error) => panic!("a request got no answer: {error}"),
                        };
                        let took = clock.elapsed();
                        let status = response.status().as_u16();
                        {
                            let mut ledger = ledger.lock().unwrap();
                            *ledger.statuses.entry(status).or_default() += 1;
                            ledger.last_seen.insert(status, Instant::now());
                            ledger.slowest = ledger.slowest.max(took);
                        }
                        match status {
                            200 | 201 => {
                                let body: Value = response.json().await.unwrap();
                                let id = body["id"].as_str().unwrap().to_string();
                                let mut ledger = ledger.lock().unwrap();
                                ledger.acknowledged.insert(id.clone(), serial.clone());
                                newest = Some(id);
                            }
                            504 => {
                                // Its commit outlasted the deadline: it may or may not have
                                // happened, so the ledger claims nothing about it.
                                assert_graph_error(response, 504, "GatewayTimeout").await;
                                if patching {
                                    newest = None;
                                }
                            }
                            503 | 507 => {
                                assert!(
                                    response.headers().contains_key("retry-after"),
                                    "{status} without Retry-After"
                                );
                                let code = if status == 503 {
                                    "ServiceUnavailable"
                                } else {
                                    "InsufficientStorage"
                                };
                                assert_graph_error(response, status, code).await;
                                if !patching {
                                    ledger.lock().unwrap().refused_creates.push(serial);
                                }
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                            other => panic!("writer {writer} got {other}"),
                        }
                    }
                })
            })
            .collect();
        Load {
            ledger,
            stop,
            tasks,
        }
    }

    async fn finish(self) -> Ledger {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("a load task failed");
        }
        Arc::try_unwrap(self.ledger)
            .ok()
            .expect("the tasks are done")
            .into_inner()
            .unwrap()
    }

    fn count(&self, status: u16) -> u64 {
        self.ledger
            .lock()
            .unwrap()
            .statuses
            .get(&status)
            .copied()
            .unwrap_or(0)
    }

    /// Waits (up to `limit`) until `status` has been seen `more` more times.
    async fn wait_for(&self, status: u16, more: u64, limit: Duration) -> Duration {
        let start = Instant::now();
        let from = self.count(status);
        while self.count(status) < from + more {
            assert!(
                start.elapsed() < limit,
                "no {more} more {status}s within {limit:?}: {:?}",
                self.ledger.lock().unwrap().statuses
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        start.elapsed()
    }
}

/// Every acknowledged event is there with its last acknowledged value, and no refused create was
/// applied (each serial number is on at most the events the ledger says).
async fn assert_ledger_holds(app: &TestApp, ledger: &Ledger) {
    for (id, version) in &ledger.acknowledged {
        let response = app.get(&app.event_url(id)).await;
        assert_eq!(response.status(), 200, "acknowledged event {id} is gone");
        let event: Value = response.json().await.unwrap();
        assert_eq!(event["osVersion"], version.as_str(), "event {id}");
    }
    for serial in &ledger.refused_creates {
        let url = format!(
            "{}?$filter=deviceSerialNumber eq '{serial}'&$select=id",
            app.events_url()
        );
        let page = app.get_json(&url).await;
        assert_eq!(
            page["value"].as_array().unwrap().len(),
            0,
            "the create of {serial} was refused, yet it was applied"
        );
    }
}

fn run(program: &str, args: &[&str]) {
    let output = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("{program} runs: {error}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed (these tests mount file systems and run PostgreSQL, as root): {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A small tmpfs mounted for one test; unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(mebibytes: u32) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let size = format!("size={mebibytes}m");
        run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &size,
                "tmpfs",
                dir.path().to_str().unwrap(),
            ],
        );
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount(&self, options: &str) {
        let options = format!("remount,{options}");
        run("mount", &["-o", &options, self.path().to_str().unwrap()]);
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .args(["-l", self.dir.path().to_str().unwrap()])
            .status();
    }
}

fn on_postgres() -> bool {
    std::env::var("GRAPHPILOT_TEST_POSTGRES").is_ok_and(|server| !server.is_empty())
}

async fn sqlite_app_on(disk: &SmallDisk, extra: &[&str]) -> (Storage, Options, TestApp) {
    let storage = Storage {
        data_dir: disk.path().join("data"),
        database: None,
    };
    let options = Options {
        extra: extra.iter().map(|arg| arg.to_string()).collect(),
        ..Options::default()
    };
    let app = start_on(&storage, &options).await;
    (storage, options, app)
}

#[tokio::test]
async fn a_full_disk_refuses_writes_with_507_keeps_reads_and_loses_nothing_acknowledged() {
    if on_postgres() {
        return; // The SQLite file's disk; PostgreSQL's disk is the database server's.
    }
    let disk = SmallDisk::mount(12);
    let (storage, options, mut app) = sqlite_app_on(&disk, &[]).await;
    let load = Load::start(&app, 4, 40_000);
    // Fill the disk: writes keep being refused, cleanly, for a while.
    load.wait_for(507, 40, Duration::from_secs(120)).await;
    assert_eq!(load.count(500), 0);
    // While it is full: reads return what was acknowledged; readiness says writes are refused.
    let probe = app.get_own("/healthz").await;
    assert_eq!(probe.status(), 200);
    assert!(probe.text().await.unwrap().contains("writes refused"));
    let sample: Vec<(String, String)> = {
        let ledger = load.ledger.lock().unwrap();
        ledger
            .acknowledged
            .iter()
            .take(20)
            .map(|(a, b)| (a.clone(), b.clone()))
            .collect()
    };
    assert!(!sample.is_empty(), "the disk filled before any write");
    for (id, version) in &sample {
        assert_eq!(
            app.get_json(&app.event_url(id)).await["osVersion"],
            version.as_str()
        );
    }
    // Space comes back: writes resume by themselves.
    disk.remount("size=256m");
    let freed = Instant::now();
    load.wait_for(201, 20, Duration::from_secs(20)).await;
    eprintln!("writes resumed {:?} after space was freed", freed.elapsed());
    let ledger = load.finish().await;
    assert!(ledger.acknowledged.len() > 100, "{:?}", ledger.statuses);
    assert_ledger_holds(&app, &ledger).await;
    // A clean restart on the same directory, and everything is still there.
    assert!(app.terminate().await.success());
    let restarted = start_on(&storage, &options).await;
    assert_ledger_holds(&restarted, &ledger).await;
}

#[tokio::test]
async fn a_server_restarted_on_a_full_disk_serves_reads_and_refuses_writes() {
    if on_postgres() {
        return;
    }
    let disk = SmallDisk::mount(12);
    let (storage, options, mut app) = sqlite_app_on(&disk, &[]).await;
    let load = Load::start(&app, 4, 40_000);
    load.wait_for(507, 10, Duration::from_secs(120)).await;
    let ledger = load.finish().await;
    assert!(app.terminate().await.success());
    // Still full: the server starts, reads, and answers writes with 507.
    let restarted = start_on(&storage, &options).await;
    assert_ledger_holds(&restarted, &ledger).await;
    let refused = restarted
        .post_json(
            &restarted.events_url(),
            &json!({"enrollmentFailureDetails": "x".repeat(200_000)}),
        )
        .await;
    assert_graph_error(refused, 507, "InsufficientStorage").await;
    // A batch's writes are refused step by step the same way, and none of them is applied.
    let padding = "b".repeat(200_000);
    let body = json!({"requests": [
        {"id": "1", "method": "POST", "url": "/deviceManagement/autopilotEvents",
         "headers": {"Content-Type": "application/json"},
         "body": {"deviceSerialNumber": "BATCH-1", "enrollmentFailureDetails": padding}},
        {"id": "2", "method": "POST", "url": "/deviceManagement/autopilotEvents",
         "headers": {"Content-Type": "application/json"},
         "body": {"deviceSerialNumber": "BATCH-2", "enrollmentFailureDetails": padding}},
    ]});
    let answer: Value = restarted
        .request(reqwest::Method::POST, &format!("{}/$batch", restarted.root))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for step in answer["responses"].as_array().unwrap() {
        assert_eq!(step["status"], 507, "{answer}");
        assert_eq!(step["body"]["error"]["code"], "InsufficientStorage");
        assert!(step["headers"]["Retry-After"].is_string(), "{answer}");
    }
    let refused = Ledger {
        refused_creates: vec!["BATCH-1".into(), "BATCH-2".into()],
        ..Ledger::default()
    };
    assert_ledger_holds(&restarted, &refused).await;
}

#[tokio::test]
async fn a_data_directory_on_a_read_only_file_system_is_refused_at_start_with_what_to_do() {
    if on_postgres() {
        return;
    }
    let disk = SmallDisk::mount(64);
    let (storage, options, mut app) = sqlite_app_on(&disk, &[]).await;
    app.create_event(json!({"osVersion": "kept"})).await;
    assert!(app.terminate().await.success());
    disk.remount("ro");
    let clock = Instant::now();
    let output = graphpilot_on(&storage, &["serve", "--listen", "127.0.0.1:0"], &[]);
    assert!(!output.status.success());
    assert!(
        clock.elapsed() < Duration::from_secs(5),
        "took {:?}",
        clock.elapsed()
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("read-only file system"), "{stderr}");
    assert!(stderr.contains("remount it read-write"), "{stderr}");
    // Writable again: the same directory starts and has what it had.
    disk.remount("rw");
    let restarted = start_on(&storage, &options).await;
    assert_eq!(restarted.count().await, 1);
}

/// An ext4 file system on a loop device, which (unlike tmpfs) can be frozen: every write and
/// fsync to it then blocks until it is thawed, as a stalled disk does.
struct FreezableDisk {
    mount: tempfile::TempDir,
    _image: tempfile::TempDir,
}

impl FreezableDisk {
    fn mount() -> FreezableDisk {
        let image = tempfile::tempdir().unwrap();
        let file = image.path().join("disk.img");
        std::fs::File::create(&file)
            .unwrap()
            .set_len(256 * 1024 * 1024)
            .unwrap();
        run("mkfs.ext4", &["-q", "-F", file.to_str().unwrap()]);
        let mount = tempfile::tempdir().unwrap();
        run(
            "mount",
            &[
                "-o",
                "loop",
                file.to_str().unwrap(),
                mount.path().to_str().unwrap(),
            ],
        );
        FreezableDisk {
            mount,
            _image: image,
        }
    }

    fn freeze(&self) {
        run(
            "fsfreeze",
            &["--freeze", self.mount.path().to_str().unwrap()],
        );
    }

    fn thaw(&self) {
        run(
            "fsfreeze",
            &["--unfreeze", self.mount.path().to_str().unwrap()],
        );
    }
}

impl Drop for FreezableDisk {
    fn drop(&mut self) {
        let path = self.mount.path().to_str().unwrap().to_string();
        let _ = std::process::Command::new("fsfreeze")
            .args(["--unfreeze", &path])
            .output();
        let _ = std::process::Command::new("umount")
            .args(["-l", &path])
            .output();
    }
}

#[tokio::test]
async fn a_stalled_disk_delays_writes_to_answers_within_the_deadline_and_loses_nothing() {
    if on_postgres() {
        return;
    }
    let disk = FreezableDisk::mount();
    let storage = Storage {
        data_dir: disk.mount.path().join("data"),
        database: None,
    };
    let options = Options {
        extra: vec!["--request-timeout".into(), "3".into()],
        ..Options::default()
    };
    let app = start_on(&storage, &options).await;
    let load = Load::start(&app, 4, 1_000);
    load.wait_for(201, 30, Duration::from_secs(30)).await;
    disk.freeze();
    let frozen = Instant::now();
    // Writes queued behind the stalled commit are withdrawn at their deadline (503); the one
    // being committed is answered 504 at the deadline; nothing is held longer.
    load.wait_for(503, 4, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(6).saturating_sub(frozen.elapsed())).await;
    disk.thaw();
    load.wait_for(201, 20, Duration::from_secs(20)).await;
    let ledger = load.finish().await;
    eprintln!(
        "stalled disk: statuses {:?}, slowest {:?}",
        ledger.statuses, ledger.slowest
    );
    assert!(
        ledger.slowest < Duration::from_secs(5),
        "slowest {:?}",
        ledger.slowest
    );
    assert_ledger_holds(&app, &ledger).await;
}

#[tokio::test]
async fn a_lock_held_by_another_process_delays_writes_to_a_503_within_the_deadline_and_reads_go_on()
{
    if on_postgres() {
        return;
    }
    let disk = SmallDisk::mount(64);
    let (_storage, _options, app) = sqlite_app_on(&disk, &["--request-timeout", "6"]).await;
    let existing = app.create_event(json!({"osVersion": "before"})).await;
    let existing_url = app.event_url(existing["id"].as_str().unwrap());
    let load = Load::start(&app, 4, 1_000);
    load.wait_for(201, 20, Duration::from_secs(30)).await;
    // Another process takes SQLite's write lock and sits on it for 8 s.
    let file = app.data_dir.join("graphpilot.db");
    let mut other = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
        "sqlite://{}",
        file.display()
    ))
    .await
    .unwrap();
    sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();
    let held = Instant::now();
    // Reads are served meanwhile, promptly.
    while held.elapsed() < Duration::from_secs(7) {
        let clock = Instant::now();
        assert_eq!(app.get_json(&existing_url).await["osVersion"], "before");
        assert!(
            clock.elapsed() < Duration::from_secs(1),
            "a read waited {:?}",
            clock.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(load.count(503) > 0, "writes were not refused while stalled");
    sqlx::raw_sql("ROLLBACK").execute(&mut other).await.unwrap();
    load.wait_for(201, 20, Duration::from_secs(10)).await;
    let ledger = load.finish().await;
    // The deadline is 6 s; a batch that had started waits out the 5 s lock timeout.
    assert!(
        ledger.slowest < Duration::from_secs(9),
        "slowest answer {:?}",
        ledger.slowest
    );
    assert_ledger_holds(&app, &ledger).await;
}

/// A PostgreSQL server of the test's own (initdb in a temporary directory, run as the postgres
/// user on a free port), so that stopping it disturbs no other test.
struct PrivatePostgres {
    dir: tempfile::TempDir,
    port: u16,
    bin: PathBuf,
}

impl PrivatePostgres {
    fn start() -> PrivatePostgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's server binaries are installed (/usr/lib/postgresql)")
            .filter_map(|entry| entry.ok().map(|entry| entry.path().join("bin")))
            .filter(|bin| bin.join("pg_ctl").exists())
            .max()
            .expect("a PostgreSQL version with pg_ctl");
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("cluster");
        std::fs::create_dir(&data).unwrap();
        run("chmod", &["755", dir.path().to_str().unwrap()]);
        run("chown", &["postgres:postgres", data.to_str().unwrap()]);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let postgres = PrivatePostgres { dir, port, bin };
        postgres.as_postgres(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
            ],
        );
        postgres.up();
        postgres
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("cluster")
    }

    fn as_postgres(&self, tool: &str, args: &[&str]) {
        let tool = self.bin.join(tool);
        let mut all = vec!["-u", "postgres", "--", tool.to_str().unwrap()];
        all.extend_from_slice(args);
        run("runuser", &all);
    }

    fn up(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.data().display()
        );
        let log = self.data().join("log");
        self.as_postgres(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
    }

    fn down(&self) {
        self.as_postgres(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        );
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let tool = self.bin.join("pg_ctl");
        let _ = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(tool)
            .args([
                "-D",
                self.data().to_str().unwrap(),
                "-m",
                "immediate",
                "stop",
            ])
            .output();
    }
}

/// Stops the private database for `outage` under a write load and starts it again: the answers
/// during the outage, how long they took, readiness, and the time until writes resume.
async fn database_outage(outage: Duration, request_timeout: u64) {
    let postgres = PrivatePostgres::start();
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage {
        data_dir: dir.path().to_path_buf(),
        database: Some(postgres.url()),
    };
    let timeout = request_timeout.to_string();
    let options = Options {
        extra: vec!["--request-timeout".into(), timeout],
        ..Options::default()
    };
    let app = start_on(&storage, &options).await;
    let load = Load::start(&app, 8, 200);
    load.wait_for(201, 50, Duration::from_secs(30)).await;
    postgres.down();
    let stopped = Instant::now();
    load.wait_for(503, 10, Duration::from_secs(30)).await;
    let health = format!("{}/healthz", app.base());
    let ready = app.client.get(&health).send().await.unwrap();
    assert_graph_error(ready, 503, "ServiceUnavailable").await;
    let live = app.get_own("/livez").await;
    assert_eq!(live.status(), 200);
    tokio::time::sleep(outage.saturating_sub(stopped.elapsed())).await;
    postgres.up();
    let back = Instant::now();
    load.wait_for(201, 20, Duration::from_secs(30)).await;
    let resumed = back.elapsed();
    assert_eq!(app.client.get(&health).send().await.unwrap().status(), 200);
    let ledger = load.finish().await;
    eprintln!(
        "outage {outage:?}: statuses {:?}, slowest answer {:?}, writes resumed {resumed:?} after the database was back",
        ledger.statuses, ledger.slowest
    );
    assert!(
        ledger.slowest <= Duration::from_secs(request_timeout + 3),
        "an answer took {:?} (deadline {request_timeout} s)",
        ledger.slowest
    );
    assert!(
        resumed < Duration::from_secs(10),
        "writes resumed after {resumed:?}"
    );
    assert_ledger_holds(&app, &ledger).await;
}

#[tokio::test]
async fn a_short_database_outage_answers_503_promptly_and_loses_nothing() {
    if !on_postgres() {
        return; // Runs on the PostgreSQL pass, against a server of its own.
    }
    database_outage(Duration::from_secs(3), 5).await;
}

#[tokio::test]
async fn a_database_outage_longer_than_the_deadline_holds_no_request_past_it() {
    if !on_postgres() {
        return;
    }
    database_outage(Duration::from_secs(12), 3).await;
}

#[tokio::test]
async fn reads_and_writes_right_after_a_database_restart_are_served_not_refused() {
    if !on_postgres() {
        return;
    }
    let postgres = PrivatePostgres::start();
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage {
        data_dir: dir.path().to_path_buf(),
        database: Some(postgres.url()),
    };
    let app = start_on(&storage, &Options::default()).await;
    let event = app
        .create_event(serde_json::json!({"osVersion": "1"}))
        .await;
    let url = app.event_url(event["id"].as_str().unwrap());
    // Reads at once, so the pool holds several connections, all of which the restart kills.
    let reads = (0..16).map(|_| app.get_json(&url));
    for read in futures_util::future::join_all(reads).await {
        assert_eq!(read["osVersion"], "1");
    }
    // Writes at once too, so each writer holds a connection of its own.
    let creates = (0..16).map(|_| app.create_event(serde_json::json!({"osVersion": "w"})));
    futures_util::future::join_all(creates).await;
    postgres.down();
    postgres.up();
    let health = format!("{}/healthz", app.base());
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.client.get(&health).send().await.unwrap().status() != 200 {
        assert!(Instant::now() < deadline, "never ready again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every pooled connection is dead now; each read must still be answered from the database.
    let reads = (0..16).map(|_| app.request(reqwest::Method::GET, &url).send());
    for read in futures_util::future::join_all(reads).await {
        assert_eq!(read.unwrap().status(), 200);
    }
}

#[tokio::test]
async fn a_node_killed_under_load_leaves_the_other_serving_with_the_same_keys_and_data() {
    if !on_postgres() {
        return; // Several nodes share one PostgreSQL database.
    }
    let dir_a = tempfile::tempdir().unwrap();
    let storage_a = Storage::fresh(dir_a.path()).await;
    let dir_b = tempfile::tempdir().unwrap();
    let storage_b = Storage {
        data_dir: dir_b.path().to_path_buf(),
        database: storage_a.database.clone(),
    };
    let database = storage_a.database.clone().unwrap();
    let mut a = start_on(&storage_a, &Options::default()).await;
    let mut b = start_on(&storage_b, &Options::default()).await;
    // Tokens signed with the key the database shares, as `graphpilot token --database` makes.
    let shared = ["--role", READ_WRITE, "--database", database.as_str()];
    a.token = mint(&storage_a.data_dir, "contoso", "app-one", &shared);
    b.token = mint(&storage_b.data_dir, "contoso", "app-one", &shared);
    let load_a = Load::start_with(&a, 4, 200, true);
    let load_b = Load::start(&b, 4, 200);
    load_a.wait_for(201, 30, Duration::from_secs(30)).await;
    a.kill_hard().await;
    // A's writers see their connections refused; what A acknowledged is what counts.
    load_a.stop.store(true, Ordering::Relaxed);
    let ledger_a = load_a.finish().await;
    load_b.wait_for(201, 30, Duration::from_secs(30)).await;
    let ledger_b = load_b.finish().await;
    // A token minted for the database while A is gone is valid on B, and so is A's.
    let fresh = mint(dir_a.path(), "contoso", "app-two", &shared);
    for token in [&a.token, &fresh, &b.token] {
        let response = b
            .client
            .get(b.events_url())
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    assert!(!ledger_a.acknowledged.is_empty());
    assert_ledger_holds(&b, &ledger_a).await;
    assert_ledger_holds(&b, &ledger_b).await;
}

#[tokio::test]
async fn seeding_and_importing_on_a_full_disk_answer_507_and_work_once_space_is_freed() {
    if on_postgres() {
        return;
    }
    let disk = SmallDisk::mount(12);
    let (_storage, _options, app) = sqlite_app_on(&disk, &[]).await;
    let load = Load::start(&app, 4, 40_000);
    load.wait_for(507, 10, Duration::from_secs(120)).await;
    let ledger = load.finish().await;
    let admin = admin_token(&app);
    let seed_url = format!("{}/graphpilot/tenants/fabrikam/seed", app.base());
    let import_url = format!("{}/graphpilot/tenants/fabrikam/import", app.base());
    let seed = || {
        app.client
            .post(&seed_url)
            .bearer_auth(&admin)
            .json(&json!({"count": 3000}))
            .send()
    };
    let records: String = (0..2000)
        .map(|n| {
            format!(
                "{{\"id\":\"{}\",\"deviceSerialNumber\":\"IMP-{n}\",\"enrollmentFailureDetails\":\"{}\"}}\n",
                uuid::Uuid::new_v4(),
                "i".repeat(2_000)
            )
        })
        .collect();
    let import = || {
        app.client
            .post(&import_url)
            .bearer_auth(&admin)
            .header("content-type", "application/x-ndjson")
            .body(records.clone())
            .send()
    };
    assert_graph_error(seed().await.unwrap(), 507, "InsufficientStorage").await;
    assert_graph_error(import().await.unwrap(), 507, "InsufficientStorage").await;
    // What was acknowledged before is untouched, and the server goes on serving.
    assert_ledger_holds(&app, &ledger).await;
    disk.remount("size=256m");
    assert_eq!(seed().await.unwrap().status(), 200);
    assert_eq!(import().await.unwrap().status(), 200);
    let fabrikam = mint(&app.data_dir, "fabrikam", "reader", &["--role", READ_ONLY]);
    assert_eq!(app.count_as(&fabrikam).await, 5000);
    // The seed into an empty tenant table set rebuilt its indexes after the failed attempt too.
    assert_ledger_holds(&app, &ledger).await;
}
