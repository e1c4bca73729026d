//! An identity provider shaped like Entra ID v2.0, enough for MSAL and azure-identity pointed at
//! graphpilot as their authority: the client-credentials token endpoint, the OpenID discovery
//! document, the JWKS it names and the instance-discovery answer. Errors use Entra's OAuth shape
//! (`error`, `error_description` with an AADSTS code, `error_codes`, trace and correlation ids).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use super::AppState;
use super::context::RequestContext;
use super::extract::{PathValue, QueryValues};
use super::response::json_response;
use crate::auth::apps::secret_matches;
use crate::auth::{GRAPH_AUDIENCES, TokenRequest, mint};
use crate::edm::DateTimeOffset;

/// Lifetime of issued tokens, as Entra's default for client credentials.
const TOKEN_SECONDS: i64 = 3599;

/// An OAuth error as Entra writes it.
fn oauth_error(status: StatusCode, error: &str, code: u32, description: &str) -> Response {
    let trace = uuid::Uuid::new_v4().to_string();
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {description} Trace ID: {trace}"),
        "error_codes": [code],
        "timestamp": DateTimeOffset::now().to_string(),
        "trace_id": trace,
        "correlation_id": uuid::Uuid::new_v4().to_string(),
    });
    let mut response = json_response(status, body.to_string());
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, "no-store".parse().expect("static"));
    response
}

/// `POST /{tenant}/oauth2/v2.0/token`: client credentials with a client secret (in the form or
/// by HTTP Basic).
pub async fn token(
    State(state): State<Arc<AppState>>,
    PathValue(tenant): PathValue<String>,
    parts: Parts,
    body: Bytes,
) -> Response {
    let form: Vec<(String, String)> = match serde_urlencoded::from_bytes(&body) {
        Ok(form) => form,
        Err(_) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900144,
                "The request body must be application/x-www-form-urlencoded.",
            );
        }
    };
    let field = |name: &str| {
        form.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let basic = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Basic "))
        .and_then(|encoded| STANDARD.decode(encoded.trim()).ok())
        .and_then(|decoded| String::from_utf8(decoded).ok())
        .and_then(|pair| {
            pair.split_once(':')
                .map(|(id, secret)| (id.to_string(), secret.to_string()))
        });
    let client_id = field("client_id")
        .map(str::to_string)
        .or_else(|| basic.as_ref().map(|b| b.0.clone()));
    let secret = field("client_secret")
        .map(str::to_string)
        .or_else(|| basic.as_ref().map(|b| b.1.clone()));
    match field("grant_type") {
        Some("client_credentials") => {}
        Some(other) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                70003,
                &format!(
                    "The app requested an unsupported grant type '{other}'; graphpilot issues tokens for client_credentials only."
                ),
            );
        }
        None => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'grant_type'.",
            );
        }
    }
    let Some(client_id) = client_id else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        );
    };
    let Some(scope) = field("scope") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.",
        );
    };
    let resource = scope
        .split_whitespace()
        .next()
        .and_then(|scope| scope.strip_suffix("/.default"));
    if !resource.is_some_and(|resource| {
        GRAPH_AUDIENCES
            .iter()
            .any(|aud| aud.trim_end_matches('/') == resource)
    }) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            &format!(
                "The provided value for scope '{scope}' is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI): use https://graph.microsoft.com/.default."
            ),
        );
    }
    // A client id with NUL names no app (and PostgreSQL's text could not even be asked).
    let registered = if client_id.contains('\0') {
        Ok(Vec::new())
    } else {
        state.store.apps(Some(&client_id)).await
    };
    let app = match registered {
        Ok(apps) => apps.into_iter().next(),
        Err(error) => {
            tracing::error!(error = %error, "cannot read app registrations");
            return oauth_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "temporarily_unavailable",
                90033,
                "A transient error has occurred. Please try again.",
            );
        }
    };
    let Some(app) = app.filter(|app| app.tenant.eq_ignore_ascii_case(&tenant)) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'. Register it with `graphpilot app add --tenant {tenant}`."
            ),
        );
    };
    let Some(secret) = secret else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        );
    };
    if !secret_matches(&app, &secret) {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            &format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
            ),
        );
    }
    let token = mint(
        &state.key,
        &TokenRequest {
            tenant: &app.tenant,
            app: &app.client_id,
            roles: app.permissions.clone(),
            scopes: Vec::new(),
            user: None,
            expires_in: TOKEN_SECONDS,
        },
    );
    match token {
        Ok(token) => {
            let body = json!({
                "token_type": "Bearer",
                "expires_in": TOKEN_SECONDS,
                "ext_expires_in": TOKEN_SECONDS,
                "access_token": token,
            });
            let mut response = json_response(StatusCode::OK, body.to_string());
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, "no-store".parse().expect("static"));
            response
        }
        Err(error) => {
            tracing::error!(error = %error, "cannot sign a token");
            oauth_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "temporarily_unavailable",
                90033,
                "A transient error has occurred. Please try again.",
            )
        }
    }
}

/// `GET /{tenant}/v2.0/.well-known/openid-configuration`.
pub async fn openid_configuration(
    State(state): State<Arc<AppState>>,
    PathValue(tenant): PathValue<String>,
    parts: Parts,
) -> Response {
    let origin = RequestContext::origin(&parts, state.scheme);
    let body = json!({
        "issuer": format!("{origin}/{tenant}/v2.0"),
        "authorization_endpoint": format!("{origin}/{tenant}/oauth2/v2.0/authorize"),
        "token_endpoint": format!("{origin}/{tenant}/oauth2/v2.0/token"),
        "device_authorization_endpoint": format!("{origin}/{tenant}/oauth2/v2.0/devicecode"),
        "jwks_uri": format!("{origin}/{tenant}/discovery/v2.0/keys"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid", "roles"],
        "tenant_region_scope": "NA",
        "cloud_instance_name": "graphpilot",
        "msgraph_host": "graph.microsoft.com",
    });
    json_response(StatusCode::OK, body.to_string())
}

/// `GET /{tenant}/discovery/v2.0/keys` (and `/discovery/v2.0/keys`): the signing key as a JWKS.
pub async fn keys(State(state): State<Arc<AppState>>) -> Response {
    let body = json!({ "keys": [state.key.jwk.clone()] });
    json_response(StatusCode::OK, body.to_string())
}

/// `GET /common/discovery/instance`: MSAL's instance discovery, answered for this host so a
/// client that does not turn discovery off still finds the tenant's discovery document.
pub async fn instance_discovery(
    State(state): State<Arc<AppState>>,
    QueryValues(query): QueryValues<Vec<(String, String)>>,
    parts: Parts,
) -> Response {
    let origin = RequestContext::origin(&parts, state.scheme);
    let host = origin
        .split("://")
        .nth(1)
        .unwrap_or("localhost")
        .to_string();
    // authorization_endpoint=https://host/{tenant}/oauth2/v2.0/authorize names the tenant.
    let tenant = query
        .iter()
        .find(|(key, _)| key == "authorization_endpoint")
        .and_then(|(_, endpoint)| endpoint.split("://").nth(1))
        .and_then(|rest| rest.split('/').nth(1))
        .filter(|tenant| !tenant.is_empty())
        .unwrap_or("common")
        .to_string();
    let body = json!({
        "tenant_discovery_endpoint": format!("{origin}/{tenant}/v2.0/.well-known/openid-configuration"),
        "api-version": "1.1",
        "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
    });
    json_response(StatusCode::OK, body.to_string())
}
