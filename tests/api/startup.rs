//! Start-up failures say what is wrong and what to do, and exit non-zero at once.

use std::time::{Duration, Instant};

use crate::helpers::*;

fn serve(args: &[&str]) -> (bool, String, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Instant::now();
    let mut all = vec!["serve", "--data-dir", arg(dir.path())];
    all.extend_from_slice(args);
    let output = graphpilot(&all);
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
        clock.elapsed(),
    )
}

#[tokio::test]
async fn an_unreachable_or_unknown_database_is_a_clear_error_without_the_password() {
    let (ok, stderr, took) = serve(&[
        "--listen",
        "127.0.0.1:0",
        "--database",
        "postgres://postgres:s3cret@127.0.0.1:1/graphpilot",
    ]);
    assert!(!ok);
    assert!(stderr.contains("cannot open the database"), "{stderr}");
    assert!(stderr.contains("postgres:***@127.0.0.1:1"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");
    assert!(took < Duration::from_secs(20), "gave up in {took:?}");
    let (ok, stderr, _) = serve(&[
        "--listen",
        "127.0.0.1:0",
        "--database",
        "mysql://localhost/x",
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("use sqlite://FILE or postgres://"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_port_in_use_is_named() {
    let app = spawn_app().await;
    let address = app.base().trim_start_matches("http://").to_string();
    let (ok, stderr, _) = serve(&["--listen", &address]);
    assert!(!ok);
    assert!(
        stderr.contains("cannot listen on") && stderr.contains("in use"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_pool_size_is_honoured_and_checked() {
    let (ok, stderr, _) = serve(&["--listen", "127.0.0.1:0", "--pool-size", "0"]);
    assert!(!ok);
    assert!(stderr.contains("--pool-size"), "{stderr}");
    let app = spawn_app_with(Options {
        extra: vec!["--pool-size".into(), "1".into()],
        ..Options::default()
    })
    .await;
    let event = app.create_event(serde_json::json!({})).await;
    let url = app.event_url(event["id"].as_str().unwrap());
    let reads: Vec<_> = (0..24)
        .map(|_| {
            tokio::spawn(
                app.request(reqwest::Method::GET, &format!("{}?$select=id", url))
                    .send(),
            )
        })
        .collect();
    for read in reads {
        assert_eq!(read.await.unwrap().unwrap().status(), 200);
    }
}

#[tokio::test]
async fn processes_opening_a_new_database_at_once_all_find_it_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::fresh(dir.path()).await;
    // Six commands at the same moment on a store nobody has opened yet.
    let children: Vec<std::process::Child> = (0..6)
        .map(|_| {
            std::process::Command::new(binary())
                .args(["sync", "--status"])
                .args(storage.args())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{output:?}");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "no sync runs yet\n"
        );
    }
}
