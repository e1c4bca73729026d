//! Report export jobs (reports-and-sync.md A): the job's lifecycle over HTTP, the zip read back
//! with the zip and csv crates' readers and every cell checked against the events as the Graph
//! API lists them, the link's refusals, restarts, and the 400s that create nothing.

use std::io::Read;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

pub const REPORT: &str = "AutopilotV1DeploymentStatus";

pub fn jobs_url(app: &TestApp) -> String {
    format!("{}/deviceManagement/reports/exportJobs", app.root)
}

/// POSTs a job (201 checked) and returns its JSON.
pub async fn create_job(app: &TestApp, body: Value) -> Value {
    let response = app.post_json(&jobs_url(app), &body).await;
    assert_eq!(response.status(), 201, "create an export job");
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let job: Value = response.json().await.unwrap();
    assert_eq!(
        location,
        format!("{}('{}')", jobs_url(app), job["id"].as_str().unwrap())
    );
    job
}

/// Polls a job until it is completed (or failed) and returns it.
pub async fn wait_for_job(app: &TestApp, id: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let job = app.get_json(&format!("{}/{id}", jobs_url(app))).await;
        match job["status"].as_str().unwrap() {
            "completed" if !job["url"].is_null() => return job,
            "failed" => return job,
            "notStarted" | "inProgress" | "completed" => {}
            other => panic!("unexpected status {other}"),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "job {id} did not finish"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Downloads a link without a token; the zip's one entry (name, bytes).
pub async fn download(app: &TestApp, url: &str) -> (String, Vec<u8>) {
    let response = app.client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200, "download {url}");
    assert_eq!(response.headers()["content-type"], "application/zip");
    let bytes = response.bytes().await.unwrap();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    assert_eq!(archive.len(), 1, "one entry");
    let mut entry = archive.by_index(0).unwrap();
    let name = entry.name().unwrap().to_string();
    let mut content = Vec::new();
    entry.read_to_end(&mut content).unwrap();
    (name, content)
}

/// Every event of the tenant through the Graph API, in the report's order.
async fn events_in_report_order(app: &TestApp) -> Vec<Value> {
    let mut events = app
        .pages(&format!("{}?$top=1000", app.events_url()))
        .values()
        .await;
    let instant = |event: &Value| {
        event["eventDateTime"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap()
    };
    events.sort_by(|a, b| {
        instant(b)
            .cmp(&instant(a))
            .then_with(|| b["id"].as_str().unwrap().cmp(a["id"].as_str().unwrap()))
    });
    events
}

const COLUMNS: [(&str, &str); 27] = [
    ("AccountSetupDuration", "accountSetupDuration"),
    (
        "AutopilotProfileName",
        "windowsAutopilotDeploymentProfileDisplayName",
    ),
    ("DeploymentDuration", "deploymentDuration"),
    ("DeploymentEndDateTime", "deploymentEndDateTime"),
    ("DeploymentStartDateTime", "deploymentStartDateTime"),
    ("DeploymentState", "deploymentState"),
    ("DeploymentTotalDuration", "deploymentTotalDuration"),
    ("DeviceId", "deviceId"),
    ("DeviceName", "managedDeviceName"),
    ("DeviceRegisteredDateTime", "deviceRegisteredDateTime"),
    ("DeviceSerialNumber", "deviceSerialNumber"),
    ("DeviceSetupDuration", "deviceSetupDuration"),
    ("DeviceSetupStatus", "deviceSetupStatus"),
    ("EnrollmentDateTime", "enrollmentStartDateTime"),
    ("EnrollmentMethod", "enrollmentType"),
    ("EnrollmentStatus", "enrollmentState"),
    (
        "ESPPolicyId",
        "windows10EnrollmentCompletionPageConfigurationId",
    ),
    (
        "ESPPolicyName",
        "windows10EnrollmentCompletionPageConfigurationDisplayName",
    ),
    ("EspDeviceSetupFailureDetails", ""),
    ("EspUserSetupFailureDetails", ""),
    ("FailureDetails", "enrollmentFailureDetails"),
    ("FailureReason", ""),
    ("OS", "=Windows"),
    ("OSVersion", "osVersion"),
    ("UPN", "userPrincipalName"),
    ("UserId", "userId"),
    ("UserSetupStatus", "accountSetupStatus"),
];

/// The member order and English texts of the report's enums, written from the contract.
fn enum_cell(property: &str, member: &str) -> Option<(i64, &'static str)> {
    let table: &[(&str, &str)] = match property {
        "deploymentState" | "deviceSetupStatus" | "accountSetupStatus" => &[
            ("unknown", "Unknown"),
            ("success", "Success"),
            ("inProgress", "In progress"),
            ("failure", "Failure"),
            ("successWithTimeout", "Success with timeout"),
            ("notAttempted", "Not attempted"),
            ("disabled", "Disabled"),
            ("successOnRetry", "Success on retry"),
        ],
        "enrollmentState" => &[
            ("unknown", "Unknown"),
            ("enrolled", "Enrolled"),
            ("pendingReset", "Pending reset"),
            ("failed", "Failed"),
            ("notContacted", "Not contacted"),
            ("blocked", "Blocked"),
        ],
        "enrollmentType" => &[
            ("unknown", "Unknown"),
            (
                "azureADJoinedWithAutopilotProfile",
                "Azure AD joined with Autopilot profile",
            ),
            ("offlineDomainJoined", "Offline domain joined"),
            (
                "azureADJoinedUsingDeviceAuthWithAutopilotProfile",
                "Azure AD joined using device auth with Autopilot profile",
            ),
            (
                "azureADJoinedUsingDeviceAuthWithoutAutopilotProfile",
                "Azure AD joined using device auth without Autopilot profile",
            ),
            (
                "azureADJoinedWithOfflineAutopilotProfile",
                "Azure AD joined with offline Autopilot profile",
            ),
            (
                "azureADJoinedWithWhiteGlove",
                "Azure AD joined with white glove",
            ),
            (
                "offlineDomainJoinedWithWhiteGlove",
                "Offline domain joined with white glove",
            ),
            (
                "offlineDomainJoinedWithOfflineAutopilotProfile",
                "Offline domain joined with offline Autopilot profile",
            ),
        ],
        _ => return None,
    };
    let index = table.iter().position(|(name, _)| *name == member)?;
    Some((index as i64, table[index].1))
}

/// The expected header and rows of a localized CSV, from the events alone.
fn expected_csv(events: &[Value]) -> Vec<Vec<String>> {
    let mut header = Vec::new();
    for (column, property) in COLUMNS {
        header.push(column.to_string());
        if enum_cell(property, "unknown").is_some() {
            header.push(format!("{column}_loc"));
        }
    }
    let mut rows = vec![header];
    for event in events {
        let mut row = Vec::new();
        for (_, property) in COLUMNS {
            if let Some(constant) = property.strip_prefix('=') {
                row.push(constant.to_string());
                continue;
            }
            if property.is_empty() {
                row.push(String::new());
                continue;
            }
            let value = &event[property];
            match enum_cell(property, value.as_str().unwrap_or("")) {
                Some((number, text)) => {
                    row.push(number.to_string());
                    row.push(text.to_string());
                }
                None => row.push(match value {
                    Value::Null => String::new(),
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                }),
            }
        }
        rows.push(row);
    }
    rows
}

fn read_csv(content: &[u8]) -> Vec<Vec<String>> {
    assert!(content.starts_with(b"\xEF\xBB\xBF"), "a UTF-8 BOM");
    let body = &content[3..];
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(body);
    reader
        .records()
        .map(|record| record.unwrap().iter().map(str::to_string).collect())
        .collect()
}

async fn seed(app: &TestApp, count: u32) {
    stdout_of(graphpilot_on(
        &app.storage,
        &["seed"],
        &["--tenant", "contoso", "--count", &count.to_string()],
    ));
}

#[tokio::test]
async fn a_csv_export_holds_every_event_cell_for_cell_and_downloads_without_a_token() {
    let app = spawn_app().await;
    seed(&app, 240).await;
    // Values that CSV must quote, and one that it must not touch.
    for serial in [
        "comma,inside",
        "quote \"inside\"",
        "line\r\nbreak",
        " padded ",
    ] {
        app.create_event(
            json!({"deviceSerialNumber": serial, "eventDateTime": "2026-11-30T10:00:00Z"}),
        )
        .await;
    }
    let job = create_job(&app, json!({"reportName": "autopilotV1DeploymentStatus"})).await;
    assert_eq!(job["status"], "notStarted");
    assert_eq!(job["url"], Value::Null);
    assert_eq!(job["reportName"], REPORT);
    assert_eq!(job["format"], "csv");
    assert_eq!(job["localizationType"], "localizedValuesAsAdditionalColumn");
    assert_eq!(job["select"], json!([]));
    assert_eq!(job["filter"], Value::Null);
    assert_eq!(job["expirationDateTime"], "0001-01-01T00:00:00Z");
    assert_eq!(
        job["@odata.context"],
        format!(
            "{}/$metadata#deviceManagement/reports/exportJobs/$entity",
            app.root
        )
    );
    let id = job["id"].as_str().unwrap();
    let guid = id.strip_prefix("AutopilotV1DeploymentStatus_").unwrap();
    assert_eq!(guid, guid.to_lowercase());
    assert!(uuid::Uuid::parse_str(guid).is_ok());
    let done = wait_for_job(&app, id).await;
    assert_eq!(done["status"], "completed");
    let url = done["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{}/graphpilot/exports/{id}.zip?se=", app.base())),
        "{url}"
    );
    let expires: jiff::Timestamp = done["expirationDateTime"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let requested: jiff::Timestamp = done["requestDateTime"].as_str().unwrap().parse().unwrap();
    let ttl = expires.duration_since(requested).as_secs_f64();
    assert!(
        (6.0 * 3600.0 - 60.0..6.0 * 3600.0 + 60.0).contains(&ttl),
        "{ttl}"
    );
    let (name, content) = download(&app, url).await;
    assert_eq!(name, format!("{id}.csv"));
    let text = String::from_utf8(content.clone()).unwrap();
    // CRLF after every record, header included; the bare CRLF inside a quoted field stays.
    assert!(text.ends_with("\r\n"));
    assert!(text.contains("\"line\r\nbreak\""));
    assert!(text.contains(",\"comma,inside\","));
    assert!(text.contains(",\"quote \"\"inside\"\"\","));
    assert!(text.contains(", padded ,"));
    let rows = read_csv(&content);
    let events = events_in_report_order(&app).await;
    assert_eq!(events.len(), 244);
    let expected = expected_csv(&events);
    assert_eq!(rows[0], expected[0], "the header");
    assert_eq!(rows.len(), expected.len());
    for (index, (row, want)) in rows.iter().zip(&expected).enumerate() {
        assert_eq!(row, want, "row {index}");
    }
    // A token sent to the link is ignored, even a bad one.
    let response = app
        .client
        .get(url)
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let again = response.bytes().await.unwrap();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(again.to_vec())).unwrap();
    let mut entry = archive.by_index(0).unwrap();
    let mut same = Vec::new();
    entry.read_to_end(&mut same).unwrap();
    assert_eq!(same, content, "the same file");
}

#[tokio::test]
async fn json_and_replaced_texts_follow_the_selection() {
    let app = spawn_app().await;
    seed(&app, 30).await;
    let events = events_in_report_order(&app).await;
    let job = create_job(
        &app,
        json!({"reportName": REPORT, "format": "JSON", "localizationType": "ReplaceLocalizableValues",
               "select": ["deploymentState", "DeviceSerialNumber", "OS", "FailureReason"]}),
    )
    .await;
    assert_eq!(job["format"], "json");
    assert_eq!(job["localizationType"], "replaceLocalizableValues");
    assert_eq!(
        job["select"],
        json!([
            "deploymentState",
            "DeviceSerialNumber",
            "OS",
            "FailureReason"
        ])
    );
    let done = wait_for_job(&app, job["id"].as_str().unwrap()).await;
    let (name, content) = download(&app, done["url"].as_str().unwrap()).await;
    assert!(name.ends_with(".json"));
    assert!(!content.starts_with(b"\xEF\xBB\xBF"), "JSON has no BOM");
    let text = String::from_utf8(content).unwrap();
    let rows: Vec<serde_json::Map<String, Value>> = serde_json::from_str(&text).unwrap();
    assert_eq!(rows.len(), events.len());
    for (row, event) in rows.iter().zip(&events) {
        let keys: Vec<&str> = row.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "DeploymentState",
                "DeviceSerialNumber",
                "OS",
                "FailureReason"
            ]
        );
        let state = enum_cell(
            "deploymentState",
            event["deploymentState"].as_str().unwrap(),
        )
        .unwrap()
        .1;
        assert_eq!(row["DeploymentState"], state);
        assert_eq!(row["DeviceSerialNumber"], event["deviceSerialNumber"]);
        assert_eq!(row["OS"], "Windows");
        assert_eq!(row["FailureReason"], Value::Null);
    }
    // Localized JSON: the enum's integer, then its text.
    let job = create_job(
        &app,
        json!({"reportName": REPORT, "format": "json", "select": ["EnrollmentMethod"]}),
    )
    .await;
    let done = wait_for_job(&app, job["id"].as_str().unwrap()).await;
    let (_, content) = download(&app, done["url"].as_str().unwrap()).await;
    let rows: Vec<serde_json::Map<String, Value>> = serde_json::from_slice(&content).unwrap();
    let (number, text) = enum_cell(
        "enrollmentType",
        events[0]["enrollmentType"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(rows[0]["EnrollmentMethod"], number);
    assert_eq!(rows[0]["EnrollmentMethod_loc"], text);
    let keys: Vec<&str> = rows[0].keys().map(String::as_str).collect();
    assert_eq!(keys, ["EnrollmentMethod", "EnrollmentMethod_loc"]);
}

#[tokio::test]
async fn a_tenant_without_events_gets_the_header_alone() {
    let app = spawn_app().await;
    let job = create_job(
        &app,
        json!({"reportName": REPORT, "select": ["FailureReason"]}),
    )
    .await;
    let done = wait_for_job(&app, job["id"].as_str().unwrap()).await;
    let (_, content) = download(&app, done["url"].as_str().unwrap()).await;
    assert_eq!(content, b"\xEF\xBB\xBFFailureReason\r\n");
    // One empty column: an empty line per event, not `""`.
    app.create_event(json!({})).await;
    let job = create_job(
        &app,
        json!({"reportName": REPORT, "select": ["FailureReason"]}),
    )
    .await;
    let done = wait_for_job(&app, job["id"].as_str().unwrap()).await;
    let (_, content) = download(&app, done["url"].as_str().unwrap()).await;
    assert_eq!(content, b"\xEF\xBB\xBFFailureReason\r\n\r\n");
}

#[tokio::test]
async fn bad_bodies_are_refused_naming_the_fault_and_create_nothing() {
    let app = spawn_app().await;
    let url = jobs_url(&app);
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({}), "BadRequest", "reportName"),
        (json!({"reportName": "Devices"}), "BadRequest", "Devices"),
        (
            json!({"reportName": "AutopilotV2DeploymentStatus"}),
            "BadRequest",
            "AutopilotV2DeploymentStatus",
        ),
        (
            json!({"reportName": "AutopilotV2DeploymentStatusDetailedAppInfo"}),
            "BadRequest",
            "AutopilotV2DeploymentStatusDetailedAppInfo",
        ),
        (
            json!({"reportName": REPORT, "select": ["NoSuchColumn"]}),
            "BadRequest",
            "NoSuchColumn",
        ),
        (
            json!({"reportName": REPORT, "select": ["OS", "os"]}),
            "BadRequest",
            "'os'",
        ),
        (
            json!({"reportName": REPORT, "select": ["DeploymentState_loc"]}),
            "BadRequest",
            "DeploymentState_loc",
        ),
        (
            json!({"reportName": REPORT, "format": "pdf"}),
            "BadRequest",
            "pdf",
        ),
        (
            json!({"reportName": REPORT, "localizationType": "english"}),
            "BadRequest",
            "english",
        ),
        (
            json!({"reportName": REPORT, "filter": "DeploymentState eq '3'"}),
            "BadRequest",
            "no filters for this report",
        ),
        (
            json!({"reportName": REPORT, "search": "abc"}),
            "BadRequest",
            "no filters for this report",
        ),
        (
            json!({"reportName": REPORT, "snapshotId": "snap"}),
            "BadRequest",
            "no filters for this report",
        ),
        (
            json!({"reportName": REPORT, "colour": "red"}),
            "ModelValidationFailure",
            "colour",
        ),
        (
            json!({"reportName": 7}),
            "ModelValidationFailure",
            "reportName",
        ),
    ];
    for (body, code, named) in cases {
        let response = app.post_json(&url, &body).await;
        let message = assert_graph_error(response, 400, code).await;
        assert!(message.contains(named), "{body}: {message}");
    }
    let too_many: Vec<&str> = std::iter::repeat_n("OS", 257).collect();
    let response = app
        .post_json(&url, &json!({"reportName": REPORT, "select": too_many}))
        .await;
    assert!(
        assert_graph_error(response, 400, "BadRequest")
            .await
            .contains("256")
    );
    for raw in [
        "",
        "[]",
        "{\"reportName\":",
        "{\"reportName\":\"a\",\"reportName\":\"b\"}",
    ] {
        let response = app
            .request(Method::POST, &url)
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{raw}");
    }
    let response = app
        .request(Method::POST, &url)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    // Empty filter and search, and read-only properties, are fine.
    create_job(
        &app,
        json!({"reportName": REPORT, "filter": "", "search": "", "status": "completed", "url": "x", "id": "mine"}),
    )
    .await;
    let list = app.get_json(&url).await;
    assert_eq!(
        list["value"].as_array().unwrap().len(),
        1,
        "only the good job"
    );
    assert_ne!(list["value"][0]["id"], "mine");
}

#[tokio::test]
async fn jobs_belong_to_their_tenant_and_need_the_report_permissions() {
    let app = spawn_app().await;
    let url = jobs_url(&app);
    let job = create_job(&app, json!({"reportName": REPORT})).await;
    let id = job["id"].as_str().unwrap().to_string();
    let done = wait_for_job(&app, &id).await;
    let job_url = format!("{url}('{id}')");
    // Another tenant: not found, whatever it does.
    let other = mint(
        &app.data_dir,
        "fabrikam",
        "app-one",
        &["--role", READ_WRITE],
    );
    for method in [Method::GET, Method::DELETE] {
        let response = app
            .client
            .request(method, &job_url)
            .bearer_auth(&other)
            .send()
            .await
            .unwrap();
        assert_graph_error(response, 404, "ResourceNotFound").await;
    }
    let listed = app
        .client
        .get(&url)
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    let listed: Value = listed.json().await.unwrap();
    assert_eq!(listed["value"], json!([]));
    // Reads: the Read.All permissions of devices, configuration and apps; writes need ReadWrite.
    for role in [
        "DeviceManagementManagedDevices.Read.All",
        "DeviceManagementConfiguration.Read.All",
        "DeviceManagementApps.Read.All",
    ] {
        let reader = mint(&app.data_dir, "contoso", "reader", &["--role", role]);
        let read = app
            .client
            .get(&job_url)
            .bearer_auth(&reader)
            .send()
            .await
            .unwrap();
        assert_eq!(read.status(), 200, "{role} reads");
        let create = app
            .client
            .post(&url)
            .bearer_auth(&reader)
            .json(&json!({"reportName": REPORT}))
            .send()
            .await
            .unwrap();
        assert_graph_error(create, 403, "Forbidden").await;
    }
    let apps_writer = mint(
        &app.data_dir,
        "contoso",
        "writer",
        &["--role", "DeviceManagementApps.ReadWrite.All"],
    );
    let create = app
        .client
        .post(&url)
        .bearer_auth(&apps_writer)
        .json(&json!({"reportName": REPORT}))
        .send()
        .await
        .unwrap();
    assert_eq!(create.status(), 201);
    let response = app.client.get(&url).send().await.unwrap();
    assert_graph_error(response, 401, "InvalidAuthenticationToken").await;
    let response = app.patch_json(&job_url, &json!({"format": "json"})).await;
    assert_graph_error(response, 405, "MethodNotAllowed").await;
    // Both key forms; DELETE takes the file with it, again is 404, the link is 404.
    assert_eq!(app.get(&format!("{url}/{id}")).await.status(), 200);
    assert_eq!(app.delete(&job_url).await.status(), 204);
    assert_graph_error(app.delete(&job_url).await, 404, "ResourceNotFound").await;
    assert_graph_error(app.get(&job_url).await, 404, "ResourceNotFound").await;
    let response = app
        .client
        .get(done["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_graph_error(response, 404, "ResourceNotFound").await;
}

#[tokio::test]
async fn the_list_pages_in_creation_order_and_v1_serves_it_too() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let job = create_job(&app, json!({"reportName": REPORT})).await;
        ids.push(job["id"].as_str().unwrap().to_string());
    }
    let pages_url = format!("{}?$top=2", jobs_url(&app));
    let first = app.get_json(&pages_url).await;
    assert_eq!(first["value"].as_array().unwrap().len(), 2);
    assert!(
        first["@odata.nextLink"]
            .as_str()
            .unwrap()
            .contains("$skiptoken=")
    );
    let listed = app.pages(&pages_url).values().await;
    assert_eq!(ids_of(&listed), ids);
    // $select: the named properties (any case), id and @odata.type always; unknown ones refused.
    let selected = app
        .get_json(&format!("{}/{}?$select=STATUS,url", jobs_url(&app), ids[0]))
        .await;
    let keys: Vec<&str> = selected
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["@odata.context", "@odata.type", "id", "status", "url"]
    );
    assert!(
        selected["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("exportJobs(status,url)/$entity")
    );
    let listed = app
        .get_json(&format!("{}?$select=reportName", jobs_url(&app)))
        .await;
    assert_eq!(listed["value"][0].as_object().unwrap().len(), 3);
    let response = app.get(&format!("{}?$select=colour", jobs_url(&app))).await;
    assert!(
        assert_graph_error(response, 400, "BadRequest")
            .await
            .contains("colour")
    );
    let response = app
        .get(&format!(
            "{}?$filter=status%20eq%20'completed'",
            jobs_url(&app)
        ))
        .await;
    assert!(
        assert_graph_error(response, 400, "BadRequest")
            .await
            .contains("$filter")
    );
    let v1 = app.root.replace("/beta", "/v1.0");
    let job = app
        .get_json(&format!(
            "{v1}/deviceManagement/reports/exportJobs('{}')",
            ids[0]
        ))
        .await;
    assert_eq!(job["id"], ids[0]);
    assert!(
        job["@odata.context"]
            .as_str()
            .unwrap()
            .contains("/v1.0/$metadata#")
    );
    let created = app
        .post_json(
            &format!("{v1}/deviceManagement/reports/exportJobs"),
            &json!({"reportName": REPORT}),
        )
        .await;
    assert_eq!(created.status(), 201);
}

#[tokio::test]
async fn a_changed_or_expired_link_is_refused() {
    let app = spawn_app_with(Options {
        extra: vec!["--export-ttl".into(), "3s".into()],
        ..Options::default()
    })
    .await;
    seed(&app, 5).await;
    let job = create_job(&app, json!({"reportName": REPORT})).await;
    let id = job["id"].as_str().unwrap().to_string();
    let done = wait_for_job(&app, &id).await;
    let url = done["url"].as_str().unwrap().to_string();
    let (path, query) = url.split_once('?').unwrap();
    let other_id = path.replace(&id[id.len() - 4..], "0000");
    let mut tampered = vec![
        format!("{other_id}?{query}"),
        format!("{path}?{}", query.replace("&sig=", "&sig=A")),
        format!("{path}?{}", query.split('&').next().unwrap()),
        path.to_string(),
        format!("{path}?{}", query.replacen("se=2", "se=3", 1)),
    ];
    tampered.push(format!("{}/graphpilot/exports/{id}?{query}", app.base()));
    for bad in tampered {
        let response = app.client.get(&bad).send().await.unwrap();
        assert_graph_error(response, 403, "AuthenticationFailed").await;
    }
    assert_eq!(app.client.get(&url).send().await.unwrap().status(), 200);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let response = app.client.get(&url).send().await.unwrap();
    let message = assert_graph_error(response, 403, "AuthenticationFailed").await;
    assert!(message.contains("expired"), "{message}");
    // The job stays until DELETE.
    assert_eq!(
        app.get_json(&format!("{}/{id}", jobs_url(&app))).await["status"],
        "completed"
    );
}

#[tokio::test]
async fn completed_jobs_and_files_survive_a_restart_and_unfinished_ones_fail() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::fresh(dir.path()).await;
    let mut app = start_on(&storage, &Options::default()).await;
    seed(&app, 50).await;
    let done_job = create_job(&app, json!({"reportName": REPORT})).await;
    let done = wait_for_job(&app, done_job["id"].as_str().unwrap()).await;
    let url = done["url"].as_str().unwrap().to_string();
    let before = app
        .client
        .get(&url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(app.terminate().await.code(), Some(0));
    // A run whose job cannot finish before it stops.
    let slow = Options {
        extra: vec!["--quirk".into(), "exportDelay=600".into()],
        ..Options::default()
    };
    let mut app = start_on(&storage, &slow).await;
    let pending = create_job(&app, json!({"reportName": REPORT})).await;
    let pending_id = pending["id"].as_str().unwrap().to_string();
    let pending_url = |app: &TestApp| format!("{}/{pending_id}", jobs_url(app));
    assert_eq!(
        app.get_json(&pending_url(&app)).await["status"],
        "notStarted"
    );
    app.kill_hard().await;
    let app = start_on(&storage, &Options::default()).await;
    assert_eq!(app.get_json(&pending_url(&app)).await["status"], "failed");
    let again = app
        .get_json(&format!(
            "{}/{}",
            jobs_url(&app),
            done["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(again["status"], "completed");
    let port_agnostic = |link: &str| link.split_once("/graphpilot/").unwrap().1.to_string();
    assert_eq!(
        port_agnostic(again["url"].as_str().unwrap()),
        port_agnostic(&url)
    );
    let after = app
        .client
        .get(again["url"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(before, after, "the same bytes after a restart");
}
