//! Hostile transport-level input (api.md §14): oversized headers, slow clients, conflicting
//! framing. Each gets a clear answer (or a closed connection) and changes nothing.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

fn address(app: &TestApp) -> String {
    app.base().trim_start_matches("http://").to_string()
}

/// Sends raw bytes and reads what comes back until the server closes or `wait` passes.
async fn raw_exchange(app: &TestApp, request: &[u8], wait: Duration) -> (String, Duration) {
    let mut stream = TcpStream::connect(address(app)).await.unwrap();
    let started = Instant::now();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(wait, stream.read_to_end(&mut answer)).await;
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn oversized_headers_are_431_in_graphs_shape_and_create_nothing() {
    let app = spawn_app().await;
    // Up to 64 KiB of headers is fine (api.md §14)...
    let response = app
        .request(reqwest::Method::GET, &app.events_url())
        .header("x-padding", "x".repeat(60 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // ...past it, Graph's 431.
    let response = app
        .request(reqwest::Method::POST, &app.events_url())
        .header("x-padding", "x".repeat(40 * 1024))
        .header("x-more-padding", "x".repeat(30 * 1024))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let message = assert_graph_error(response, 431, "RequestHeaderFieldsTooLarge").await;
    assert!(message.contains("65536"), "{message}");
    // Far larger: refused by the connection itself, still with 431.
    let huge = "x".repeat(200 * 1024);
    let (answer, _) = raw_exchange(
        &app,
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: {huge}\r\n\r\n").as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:.80}");
    assert_eq!(app.count().await, 0);
}

#[tokio::test]
async fn a_client_that_sends_its_headers_too_slowly_is_dropped() {
    let app = spawn_app_with(Options {
        extra: vec!["--header-timeout".into(), "1".into()],
        ..Options::default()
    })
    .await;
    // Half a request line, then nothing: the server closes the connection after the deadline.
    let (answer, elapsed) = raw_exchange(&app, b"GET /healthz HT", Duration::from_secs(10)).await;
    assert!(
        elapsed < Duration::from_secs(5),
        "held for {elapsed:?}: {answer}"
    );
    assert!(!answer.contains("200 OK"), "{answer}");
    // Others are served meanwhile and after.
    assert_eq!(
        app.client
            .get(format!("{}/healthz", app.base()))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn a_body_that_arrives_too_slowly_is_408_and_creates_nothing() {
    let app = spawn_app_with(Options {
        extra: vec!["--body-timeout".into(), "1".into()],
        ..Options::default()
    })
    .await;
    let request = format!(
        "POST /beta/deviceManagement/autopilotEvents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"deviceSe",
        app.token
    );
    let (answer, elapsed) = raw_exchange(&app, request.as_bytes(), Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"RequestTimeout\""), "{answer}");
    assert!(elapsed < Duration::from_secs(5));
    assert_eq!(app.count().await, 0);
}

#[tokio::test]
async fn conflicting_content_length_and_transfer_encoding_cannot_smuggle_a_request() {
    let app = spawn_app().await;
    // Content-Length covers only the chunk-size line; a server that framed by it would read the
    // rest as a second request (the smuggled DELETE). Transfer-Encoding governs (RFC 9112 §6.3),
    // and the connection is closed after the answer.
    let body = "{\"deviceSerialNumber\":\"FRAMED-BY-CHUNKS\"}";
    let chunked = format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len());
    let smuggled = "DELETE /beta/deviceManagement/autopilotEvents/x HTTP/1.1\r\nHost: x\r\n\r\n";
    let request = format!(
        "POST /beta/deviceManagement/autopilotEvents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n\
         {chunked}{smuggled}",
        app.token
    );
    let (answer, elapsed) = raw_exchange(&app, request.as_bytes(), Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert!(answer.contains("FRAMED-BY-CHUNKS"), "{answer}");
    assert_eq!(
        answer.matches("HTTP/1.1 ").count(),
        1,
        "the bytes after the chunked body were not served as a request: {answer}"
    );
    assert!(
        elapsed < Duration::from_secs(4),
        "the connection was closed"
    );
    assert_eq!(app.count().await, 1);
}

#[tokio::test]
async fn long_strings_huge_paging_values_and_giant_filters_get_clear_answers() {
    let app = spawn_app().await;
    // A 100,000-character string is stored and read back whole (the body limit is 4 MiB).
    let long = "S".repeat(100_000);
    let created = app
        .create_event(json!({"deviceSerialNumber": long.clone()}))
        .await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        app.get_json(&app.event_url(id)).await["deviceSerialNumber"],
        long
    );
    // Paging values: beyond any table is an empty page, beyond the type or the limit a 400.
    let skip_far = app
        .get(&format!("{}?$skip=9223372036854775807", app.events_url()))
        .await;
    assert_eq!(skip_far.status(), 200);
    let body: serde_json::Value = skip_far.json().await.unwrap();
    assert_eq!(body["value"].as_array().unwrap().len(), 0);
    for query in [
        "$skip=18446744073709551616",
        "$skip=99999999999999999999999",
        "$top=1001",
        "$top=18446744073709551615",
    ] {
        let response = app.get(&format!("{}?{query}", app.events_url())).await;
        assert_graph_error(response, 400, "BadRequest").await;
    }
    // 1,050 terms (under the 32 KiB query limit; 10,000 terms cannot fit in it and are 414):
    // over the limit of 1,000 terms.
    let terms = vec!["userId eq null"; 1_050]
        .join(" or ")
        .replace(' ', "%20");
    assert!(terms.len() < 32 * 1024);
    let response = app
        .get(&format!("{}?$filter={terms}", app.events_url()))
        .await;
    let message = assert_graph_error(response, 400, "BadRequest").await;
    assert!(message.contains("1000"), "{message}");
    assert_eq!(app.count().await, 1);
}

#[tokio::test]
async fn a_refused_request_with_a_body_leaves_the_connection_usable() {
    let app = spawn_app().await;
    let reader = mint(&app.data_dir, "contoso", "reader", &["--role", READ_ONLY]);
    let body = "{\"deviceSerialNumber\":\"NOT-ALLOWED\"}";
    // A POST refused before its body is needed (403), then a second request on the same
    // connection: the unread body was drained, so the second request is answered.
    let requests = format!(
        "POST /beta/deviceManagement/autopilotEvents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {reader}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}\
         GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let (answer, _) = raw_exchange(&app, requests.as_bytes(), Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(
        answer.contains("HTTP/1.1 200"),
        "the second request was answered: {answer}"
    );
    assert_eq!(app.count().await, 0);
}

#[tokio::test]
async fn method_override_headers_are_ignored() {
    let app = spawn_app().await;
    let created = app
        .create_event(json!({"deviceSerialNumber": "KEEP"}))
        .await;
    let url = app.event_url(created["id"].as_str().unwrap());
    for header in [
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
    ] {
        let response = app
            .request(reqwest::Method::GET, &url)
            .header(header, "DELETE")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{header}");
        let response = app
            .request(reqwest::Method::POST, &app.events_url())
            .header(header, "PATCH")
            .json(&json!({"deviceSerialNumber": "NEW"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{header}");
    }
    assert_eq!(app.get_json(&url).await["deviceSerialNumber"], "KEEP");
    assert_eq!(app.count().await, 4);
}

/// Found by a hostile probe: duplicate keys were looked for by comparing each key with every
/// one before it, so one 3 MB body of 200,000 keys held a worker thread for minutes.
#[tokio::test]
async fn an_object_of_200000_keys_is_refused_promptly() {
    let app = spawn_app().await;
    let keys: Vec<String> = (0..200_000).map(|n| format!("\"k{n}\":{n}")).collect();
    let body = format!("{{{}}}", keys.join(","));
    for method in [
        reqwest::Method::POST,
        reqwest::Method::POST,
        reqwest::Method::PATCH,
    ] {
        let url = if method == reqwest::Method::PATCH {
            app.event_url(app.create_event(json!({})).await["id"].as_str().unwrap())
        } else {
            app.events_url()
        };
        let response = app
            .request(method, &url)
            .header("content-type", "application/json")
            .body(body.clone())
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .unwrap();
        let message = assert_graph_error(response, 400, "ModelValidationFailure").await;
        assert!(message.contains("'k0'"), "{message}");
    }
    assert_eq!(app.count().await, 1);
}
