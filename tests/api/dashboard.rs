//! The deployments dashboard (analytics.md §6): sign-in by one-time link and by pasted token,
//! the session cookie's reach, and the page itself in Debian's headless Chromium, whose every
//! number is compared with the analytics API's.

use std::path::Path;

use futures_util::FutureExt;

use reqwest::header::{COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use reqwest::redirect::Policy;
use serde_json::{Value, json};

use crate::helpers::*;

const READ_ONLY: &str = "DeviceManagementManagedDevices.Read.All";

/// A client that shows redirects instead of following them.
fn no_redirects() -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// `graphpilot dashboard --tenant T --url …`: the one line it prints.
fn one_time_link(app: &TestApp, tenant: &str) -> String {
    let link = stdout_of(graphpilot_on(
        &app.storage,
        &["dashboard"],
        &["--tenant", tenant, "--url", &app.base()],
    ));
    assert_eq!(link.lines().count(), 1, "one line: {link}");
    link.trim().to_string()
}

/// The `name=value` of a response's session cookie, and the whole header.
fn session_cookie(response: &reqwest::Response) -> (String, String) {
    let header = response.headers()[SET_COOKIE].to_str().unwrap().to_string();
    let pair = header.split(';').next().unwrap().trim().to_string();
    (pair, header)
}

#[tokio::test]
async fn a_one_time_link_signs_in_once_and_its_cookie_opens_only_the_dashboard_and_analytics() {
    let app = spawn_app().await;
    app.create_event(json!({"eventDateTime": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string(), "deploymentState": "success"}))
        .await;
    let client = no_redirects();
    let link = one_time_link(&app, "contoso");
    assert!(link.starts_with(&format!("{}/", app.base())), "{link}");
    let code = link.split("code=").nth(1).unwrap();
    assert!(code.len() >= 22, "at least 128 random bits: {code}");

    let response = client.get(&link).send().await.unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()[LOCATION], "/dashboard");
    let (cookie, header) = session_cookie(&response);
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(header.contains(attribute), "{header}");
    }
    assert!(!header.contains("Secure"), "plain http: {header}");
    let max_age: i64 = header
        .split(';')
        .find_map(|part| part.trim().strip_prefix("Max-Age="))
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=12 * 3600).contains(&max_age), "{header}");

    // Used once: the second time is the sign-in page, 401, no cookie.
    let again = client.get(&link).send().await.unwrap();
    assert_eq!(again.status(), 401);
    assert!(!again.headers().contains_key(SET_COOKIE));
    assert!(again.text().await.unwrap().contains("name=\"token\""));
    let unknown = client
        .get(format!("{}/dashboard/signin?code=nope", app.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 401);

    // The cookie opens the dashboard and the analytics API.
    let with_cookie = |method: reqwest::Method, path: &str| {
        client
            .request(method, format!("{}{path}", app.base()))
            .header(COOKIE, &cookie)
            .send()
            .map(Result::unwrap)
    };
    let page = with_cookie(reqwest::Method::GET, "/dashboard").await;
    assert_eq!(page.status(), 200);
    assert_eq!(
        page.headers()["content-security-policy"],
        "default-src 'self'"
    );
    assert!(page.text().await.unwrap().contains("id=\"successRate\""));
    let summary = with_cookie(reqwest::Method::GET, "/graphpilot/analytics/summary").await;
    assert_eq!(summary.status(), 200);
    assert_eq!(summary.json::<Value>().await.unwrap()["deployments"], 1);
    // …and nothing else.
    for path in [
        "/beta/deviceManagement/autopilotEvents",
        "/graphpilot/requests",
        "/graphpilot/faults",
    ] {
        let response = with_cookie(reqwest::Method::GET, path).await;
        assert_graph_error(response, 401, "InvalidAuthenticationToken").await;
    }

    // Sign-out ends the session and clears the cookie.
    let response = with_cookie(reqwest::Method::POST, "/dashboard/signout").await;
    assert_eq!(response.status(), 303);
    assert!(session_cookie(&response).1.contains("Max-Age=0"));
    let response = with_cookie(reqwest::Method::GET, "/graphpilot/analytics/summary").await;
    assert_graph_error(response, 401, "InvalidAuthenticationToken").await;
    let page = with_cookie(reqwest::Method::GET, "/dashboard").await;
    assert_eq!(page.status(), 200);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("action=\"/dashboard/session\"")
    );
}

#[tokio::test]
async fn a_pasted_token_opens_a_session_of_its_tenant_and_bad_ones_are_refused() {
    let app = spawn_app().await;
    let client = no_redirects();
    let url = format!("{}/dashboard/session", app.base());
    let post = |token: &str, origin: Option<&str>| {
        let mut request = client.post(&url).form(&[("token", token)]);
        if let Some(origin) = origin {
            request = request.header(ORIGIN, origin);
        }
        request.send()
    };
    // Another tenant's events never show.
    let fabrikam = mint(
        &app.data_dir,
        "fabrikam",
        "app-one",
        &["--role", READ_WRITE],
    );
    app.client
        .post(app.events_url())
        .bearer_auth(&fabrikam)
        .json(&json!({"eventDateTime": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()}))
        .send()
        .await
        .unwrap();
    let short = mint(
        &app.data_dir,
        "contoso",
        "reader",
        &["--role", READ_ONLY, "--expires-in", "120"],
    );
    let response = post(&short, Some(&app.base())).await.unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()[LOCATION], "/dashboard");
    let (cookie, header) = session_cookie(&response);
    let max_age: i64 = header
        .split(';')
        .find_map(|part| part.trim().strip_prefix("Max-Age="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(max_age <= 120, "no longer than the token: {header}");
    let summary: Value = client
        .get(format!("{}/graphpilot/analytics/summary", app.base()))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        summary["deployments"], 0,
        "contoso has none; fabrikam's never count"
    );

    // Bad token 401, no read permission 403, another origin 403: no cookie in each case.
    let no_read = mint(&app.data_dir, "contoso", "writer-less", &[]);
    for (token, origin, status) in [
        ("not-a-token", None, 401),
        ("", None, 401),
        (no_read.as_str(), None, 403),
        (short.as_str(), Some("http://evil.example"), 403),
        (short.as_str(), Some("null"), 403),
    ] {
        let response = post(token, origin).await.unwrap();
        assert_eq!(response.status(), status, "{token:.12}… from {origin:?}");
        assert!(!response.headers().contains_key(SET_COOKIE));
    }
    let expired = mint(
        &app.data_dir,
        "contoso",
        "late",
        &["--role", READ_ONLY, "--expires-in", "-10"],
    );
    assert_eq!(post(&expired, None).await.unwrap().status(), 401);
}

#[tokio::test]
async fn over_https_the_session_cookie_is_secure() {
    let app = spawn_app_with(Options {
        extra: vec!["--tls".into()],
        ..Options::default()
    })
    .await;
    let ca = app.data_dir.join("ca.pem");
    std::fs::write(&ca, graphpilot_cert(&app)).unwrap();
    let base = app.base().replace("127.0.0.1", "localhost");
    let link = stdout_of(graphpilot_on(
        &app.storage,
        &["dashboard"],
        &["--tenant", "contoso", "--url", &base],
    ));
    let output = std::process::Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-D", "-", "--cacert"])
        .arg(&ca)
        .arg(link.trim())
        .output()
        .expect("curl runs");
    let headers = String::from_utf8_lossy(&output.stdout).to_lowercase();
    assert!(headers.contains(" 303"), "{headers}");
    let cookie = headers
        .lines()
        .find(|line| line.starts_with("set-cookie:"))
        .unwrap();
    assert!(cookie.contains("; secure"), "{cookie}");
}

/// Figures the page showed, checked against the API over the window the page used.
async fn assert_page_matches_api(app: &TestApp, shown: &Value, profile: Option<&str>) {
    let mut query = format!(
        "from={}&to={}",
        shown["from"].as_str().unwrap(),
        shown["to"].as_str().unwrap()
    );
    if let Some(profile) = profile {
        query.push_str(&format!("&profile={}", profile.replace(' ', "%20")));
    }
    let api = |path: String| {
        let url = format!("{}/graphpilot/analytics/{path}", app.base());
        let request = app.client.get(url).bearer_auth(&app.token);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()
        }
    };
    let summary = api(format!("summary?{query}")).await;
    let headline = &shown["headline"];
    let number = |value: &Value| -> Value {
        match value.as_str() {
            Some("") | None => Value::Null,
            Some(text) => serde_json::from_str(text).unwrap_or(Value::String(text.into())),
        }
    };
    for name in [
        "deployments",
        "succeeded",
        "failed",
        "inProgress",
        "finished",
        "timedOut",
        "successRate",
    ] {
        assert_eq!(
            number(&headline[name]["value"]),
            summary[name],
            "headline {name}"
        );
    }
    let total = &summary["durations"]["deploymentTotalDuration"];
    assert_eq!(
        headline["p50"]["value"].as_str().filter(|t| !t.is_empty()),
        total["p50"].as_str()
    );
    assert_eq!(
        headline["p90"]["value"].as_str().filter(|t| !t.is_empty()),
        total["p90"].as_str()
    );
    // The rate is shown as a percentage of the API's.
    if let Some(rate) = summary["successRate"].as_f64() {
        assert_eq!(
            headline["successRate"]["text"].as_str().unwrap(),
            format!("{:.1} %", rate * 100.0)
        );
    }
    let timeline = api(format!(
        "timeline?bucket={}&{query}",
        shown["bucket"].as_str().unwrap()
    ))
    .await;
    let rows = timeline["rows"].as_array().unwrap();
    let drawn = shown["timeline"].as_array().unwrap();
    assert_eq!(drawn.len(), rows.len(), "one bar per bucket");
    for (bar, row) in drawn.iter().zip(rows) {
        assert_eq!(bar["start"], row["start"]);
        assert_eq!(bar["succeeded"], row["succeeded"]);
        assert_eq!(bar["failed"], row["failed"]);
    }
    let cell_value = |cell: &Value| number(&cell["value"]);
    let profiles = api(format!("breakdown?by=profile&top=20&{query}")).await;
    let table = shown["profiles"].as_array().unwrap();
    assert_eq!(table.len(), profiles["rows"].as_array().unwrap().len());
    for (row, expected) in table.iter().zip(profiles["rows"].as_array().unwrap()) {
        assert_eq!(
            row[0]["text"].as_str(),
            expected["key"].as_str().or(Some("(none)"))
        );
        assert_eq!(cell_value(&row[1]), expected["deployments"]);
        assert_eq!(cell_value(&row[2]), expected["successRate"]);
        assert_eq!(cell_value(&row[3]), expected["failed"]);
        assert_eq!(cell_value(&row[4]), expected["inProgress"]);
        assert_eq!(row[5]["value"].as_str(), expected["p50"].as_str());
    }
    let failures = api(format!("failures?top=10&{query}")).await;
    let table = shown["failures"].as_array().unwrap();
    assert_eq!(table.len(), failures["rows"].as_array().unwrap().len());
    for (row, expected) in table.iter().zip(failures["rows"].as_array().unwrap()) {
        assert_eq!(
            row[0]["text"].as_str(),
            expected["reason"].as_str().or(Some("(no details)"))
        );
        assert_eq!(cell_value(&row[1]), expected["count"]);
        assert_eq!(cell_value(&row[2]), expected["share"]);
    }
    let stuck = api(format!("stuck?top=20&{query}")).await;
    assert_eq!(number(&shown["stuckCount"]), stuck["count"]);
    assert_eq!(
        shown["stuck"].as_array().unwrap().len(),
        stuck["value"].as_array().unwrap().len()
    );
    let blockers = api(format!("blockers?top=10&{query}")).await;
    let table = shown["blockers"].as_array().unwrap();
    assert_eq!(table.len(), blockers["rows"].as_array().unwrap().len());
    for (row, expected) in table.iter().zip(blockers["rows"].as_array().unwrap()) {
        assert_eq!(
            row[0]["text"].as_str(),
            expected["displayName"].as_str().or(Some("(unnamed)"))
        );
        assert_eq!(cell_value(&row[2]), expected["affectedDeployments"]);
        assert_eq!(cell_value(&row[3]), expected["failedDeployments"]);
        assert_eq!(cell_value(&row[4]), expected["topErrorCode"]);
    }
}

#[tokio::test]
async fn the_dashboard_in_chromium_shows_the_apis_numbers_and_signs_in_and_out() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "the browser test needs Chromium at {chromium} (Debian: apt-get install chromium; .ci/run installs it)"
    );
    let script_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        script_dir.join("node_modules/playwright-core").exists(),
        "run `npm ci --prefix tests/browser` (scripts/test does)"
    );
    let app = spawn_app().await;
    stdout_of(graphpilot_on(
        &app.storage,
        &["seed"],
        &[
            "--tenant",
            "contoso",
            "--count",
            "4000",
            "--end",
            "now",
            "--scenario",
            "stuck-in-progress",
        ],
    ));
    stdout_of(graphpilot_on(
        &app.storage,
        &["seed"],
        &["--tenant", "fabrikam", "--count", "500", "--end", "now"],
    ));
    let now = jiff::Timestamp::now();
    for (hours, state) in [(50, "failure"), (26, "success")] {
        let at = (now - jiff::SignedDuration::from_hours(hours))
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        app.create_event(json!({"eventDateTime": at, "deploymentState": state, "deviceSerialNumber": "REPEAT-1"}))
            .await;
    }
    let screenshot = std::env::var("GRAPHPILOT_SCREENSHOT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| app.data_dir.join("dashboard.png"));
    let reader = mint(
        &app.data_dir,
        "contoso",
        "dashboard-reader",
        &["--role", READ_ONLY],
    );
    let output = tokio::process::Command::new("node")
        .arg("dashboard.mjs")
        .current_dir(&script_dir)
        .env("GRAPHPILOT_BASE", app.base())
        .env("GRAPHPILOT_SIGNIN_URL", one_time_link(&app, "contoso"))
        .env("GRAPHPILOT_TOKEN", &reader)
        .env("GRAPHPILOT_SERIAL", "REPEAT-1")
        .env("GRAPHPILOT_SCREENSHOT", &screenshot)
        .env("CHROMIUM", &chromium)
        .output()
        .await
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(
        result["problems"],
        json!([]),
        "no console output, no failed request"
    );
    assert_eq!(result["csp"], "default-src 'self'");
    let cookie = &result["cookies"][0];
    assert_eq!(cookie["name"], "graphpilot_session");
    assert_eq!(cookie["httpOnly"], true);
    assert_eq!(cookie["sameSite"], "Strict");
    assert_eq!(cookie["path"], "/");
    assert!(
        result["initial"]["headline"]["deployments"]["value"]
            .as_str()
            .unwrap()
            != "0"
    );
    assert_page_matches_api(&app, &result["initial"], None).await;
    let filtered = &result["filtered"];
    let profile = filtered["profile"]
        .as_str()
        .expect("a profile to filter by");
    assert_page_matches_api(&app, filtered, Some(profile)).await;
    assert_ne!(
        filtered["headline"]["deployments"]["value"],
        result["initial"]["headline"]["deployments"]["value"],
        "the filter changes the figures"
    );
    assert_eq!(result["device"]["serial"], "REPEAT-1");
    assert_eq!(result["device"]["attempts"], "2");
    assert_eq!(result["device"]["firstTimeRight"], "false");
    assert_eq!(result["device"]["rows"], 2);
    let stuck_serial = result["stuckDevice"]["serial"]
        .as_str()
        .expect("a stuck device to open");
    let history = app
        .client
        .get(format!(
            "{}/graphpilot/analytics/devices/{stuck_serial}",
            app.base()
        ))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(
        result["stuckDevice"]["attempts"],
        history["attempts"].to_string()
    );
    assert_eq!(result["focused"], "profile", "filters take keyboard focus");
    assert_eq!(result["afterSignOut"], 401);
    assert_eq!(result["withToken"], "contoso");
    assert!(screenshot.exists());
}
