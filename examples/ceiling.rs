//! The load benchmark's ceiling: graphpilot's event routes served from memory, bodies rendered
//! once in advance, nothing durable. What HTTP alone costs on this machine (`scripts/bench/run`).
//!
//! ```text
//! cargo run --release --example ceiling -- <dir>
//! ```
//! `<dir>` holds `page.json` (the bytes of the benchmark's filtered page, as graphpilot answered
//! it) and `entities.ndjson` (one GET-by-id body per line, as graphpilot answered them). Prints
//! `listening http://127.0.0.1:<port>` once it accepts connections.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value};

/// The allocator graphpilot's binary uses, so the ceiling differs from it only in the work done.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EVENTS: &str = "/beta/deviceManagement/autopilotEvents";

struct Ceiling {
    page: Bytes,
    entities: RwLock<HashMap<String, Bytes>>,
}

fn json(status: StatusCode, body: Bytes) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;odata.metadata=minimal;charset=utf-8"),
    );
    response
}

async fn page(State(ceiling): State<Arc<Ceiling>>) -> Response {
    json(StatusCode::OK, ceiling.page.clone())
}

async fn one(State(ceiling): State<Arc<Ceiling>>, Path(id): Path<String>) -> Response {
    match ceiling.entities.read().expect("lock").get(&id) {
        Some(body) => json(StatusCode::OK, body.clone()),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A PATCH as an in-memory store would do it: parse the stored entity and the body, merge,
/// render, keep.
async fn patch(
    State(ceiling): State<Arc<Ceiling>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let Ok(changes) = serde_json::from_slice::<Map<String, Value>>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let mut entities = ceiling.entities.write().expect("lock");
    let Some(stored) = entities.get(&id) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut entity: Map<String, Value> = serde_json::from_slice(stored).expect("stored JSON");
    entity.extend(changes);
    let rendered = Bytes::from(serde_json::to_vec(&entity).expect("JSON"));
    entities.insert(id, rendered.clone());
    json(StatusCode::OK, rendered)
}

/// A POST: parse, give it an id, render, keep.
async fn create(State(ceiling): State<Arc<Ceiling>>, body: Bytes) -> Response {
    let Ok(mut entity) = serde_json::from_slice::<Map<String, Value>>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let id = uuid::Uuid::new_v4().to_string();
    entity.insert("id".into(), Value::String(id.clone()));
    let rendered = Bytes::from(serde_json::to_vec(&entity).expect("JSON"));
    ceiling
        .entities
        .write()
        .expect("lock")
        .insert(id, rendered.clone());
    json(StatusCode::CREATED, rendered)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .expect("usage: ceiling <dir with page.json and entities.ndjson>");
    let dir = std::path::Path::new(&dir);
    let page_bytes = Bytes::from(std::fs::read(dir.join("page.json"))?);
    let mut entities = HashMap::new();
    for line in std::fs::read_to_string(dir.join("entities.ndjson"))?.lines() {
        let parsed: Map<String, Value> = serde_json::from_str(line).expect("one JSON per line");
        let id = parsed["id"].as_str().expect("an id").to_string();
        entities.insert(id, Bytes::from(line.to_string()));
    }
    let state = Arc::new(Ceiling {
        page: page_bytes,
        entities: RwLock::new(entities),
    });
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(EVENTS, get(page).post(create))
        .route(&format!("{EVENTS}/{{id}}"), get(one).patch(patch))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}
