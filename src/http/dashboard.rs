//! The deployments dashboard (analytics.md §6): its page and embedded assets, sign-in by one-time
//! code or pasted token, the session cookie, and who reads the analytics (token or session).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::caller::authenticate;
use super::context::RequestContext;
use super::error::ApiError;
use super::journal::Caller;
use crate::auth::{Access, now_seconds, sign_in};
use crate::edm::ENROLLMENT_TYPE;
use crate::store::DashboardSession;

/// The session cookie's name.
pub const COOKIE: &str = "graphpilot_session";
/// The most bytes a sign-in form may carry.
const MAX_FORM_BYTES: usize = 64 * 1024;

const PAGE: &str = include_str!("dashboard/index.html");
const SIGN_IN: &str = include_str!("dashboard/signin.html");
const SCRIPT: &str = include_str!("dashboard/dashboard.js");
const STYLE: &str = include_str!("dashboard/dashboard.css");
const ICON: &str = include_str!("dashboard/icon.svg");

/// Who reads the analytics: a bearer token's caller or a dashboard session's.
pub struct Reader {
    pub tenant: String,
    pub app: String,
    pub may_read: bool,
}

/// The reader of an analytics request: the `Authorization: Bearer` token when one is sent
/// (a bad one is refused, never replaced by the cookie), else the session cookie.
pub async fn reader(state: &AppState, parts: &Parts) -> Result<Reader, ApiError> {
    let reader = if parts.headers.contains_key(header::AUTHORIZATION) {
        let principal = authenticate(state, parts)?;
        Reader {
            tenant: principal.tenant.clone(),
            app: principal.app.clone(),
            may_read: principal.allows(Access::Read),
        }
    } else {
        let session = session_of(state, &parts.headers).await?.ok_or_else(|| {
            ApiError::unauthenticated(
                "Send 'Authorization: Bearer <access token>', or sign in to the dashboard.",
            )
        })?;
        Reader {
            tenant: session.tenant,
            app: session.app,
            may_read: true,
        }
    };
    if let Some(caller) = parts.extensions.get::<Caller>() {
        caller.set(&reader.tenant, &reader.app);
    }
    Ok(reader)
}

/// The session cookie's secret, if the request carries one.
fn cookie_secret(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim_matches('"'))
        .filter(|value| !value.is_empty())
}

/// The live session the request's cookie names, if any.
async fn session_of(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<DashboardSession>, ApiError> {
    let Some(secret) = cookie_secret(headers) else {
        return Ok(None);
    };
    state
        .store
        .dashboard_session(&sign_in::hash_of(secret), now_seconds())
        .await
        .map_err(|error| ApiError::from_store(error, "session", ""))
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A response of ours with the headers every dashboard response carries.
fn asset(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn html(status: StatusCode, body: String) -> Response {
    asset(status, "text/html; charset=utf-8", body)
}

/// The sign-in page, with a message when an attempt failed.
fn sign_in_page(status: StatusCode, message: Option<&str>) -> Response {
    let notice = message.map_or(String::new(), |text| {
        format!(
            "<p class=\"notice\" role=\"alert\">{}</p>",
            html_escape(text)
        )
    });
    html(status, SIGN_IN.replace("<!--notice-->", &notice))
}

fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// The `Set-Cookie` of a session (or of its removal, `max_age` 0).
fn session_cookie(state: &AppState, secret: &str, max_age: i64) -> HeaderValue {
    let secure = if state.scheme == "https" {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{COOKIE}={secret}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
        max_age.max(0)
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("graphpilot_session=; Max-Age=0; Path=/"))
}

/// Opens a session and answers 303 to the dashboard with its cookie.
async fn open_session(
    state: &AppState,
    session: DashboardSession,
    now: i64,
) -> Result<Response, ApiError> {
    let (secret, hash) = sign_in::new_secret();
    state
        .store
        .add_dashboard_session(&hash, &session, now)
        .await
        .map_err(|error| ApiError::from_store(error, "session", ""))?;
    let mut response = see_other("/dashboard");
    response.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie(state, &secret, session.expires_at - now),
    );
    Ok(response)
}

/// `GET /dashboard`: the dashboard for a live session, else the sign-in page.
pub async fn page(State(state): State<Arc<AppState>>, request: Request) -> Response {
    match session_of(&state, request.headers()).await {
        Ok(Some(session)) => {
            let members: String = ENROLLMENT_TYPE
                .members
                .iter()
                .map(|(name, _)| format!("<option value=\"{name}\">{name}</option>"))
                .collect();
            html(
                StatusCode::OK,
                PAGE.replace("{{tenant}}", &html_escape(&session.tenant))
                    .replace("<!--enrollment-types-->", &members),
            )
        }
        Ok(None) => sign_in_page(StatusCode::OK, None),
        Err(error) => error.into_response(),
    }
}

/// `GET /dashboard/signin?code=…`: the one-time URL `graphpilot dashboard` prints.
pub async fn sign_in_with_code(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let code = request.uri().query().and_then(|query| {
        serde_urlencoded::from_str::<Vec<(String, String)>>(query)
            .ok()?
            .into_iter()
            .find(|(name, _)| name == "code")
            .map(|(_, value)| value)
    });
    let refused = || {
        sign_in_page(
            StatusCode::UNAUTHORIZED,
            Some(
                "This sign-in link is used, expired or unknown. Run `graphpilot dashboard \
                 --tenant …` for a new one, or paste a token below.",
            ),
        )
    };
    let Some(code) = code.filter(|code| !code.is_empty()) else {
        return refused();
    };
    let now = now_seconds();
    let tenant = match state
        .store
        .take_dashboard_code(&sign_in::hash_of(&code), now)
        .await
    {
        Ok(Some(tenant)) => tenant,
        Ok(None) => return refused(),
        Err(error) => return ApiError::from_store(error, "code", "").into_response(),
    };
    let session = DashboardSession {
        tenant,
        app: "dashboard".into(),
        expires_at: now + sign_in::SESSION_SECONDS,
    };
    open_session(&state, session, now)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Whether a state-changing request comes from this server's own pages: no `Origin`, or ours.
fn same_origin(state: &AppState, parts: &Parts) -> bool {
    match parts.headers.get(header::ORIGIN) {
        None => true,
        Some(origin) => {
            origin.to_str().ok() == Some(RequestContext::origin(parts, state.scheme).as_str())
        }
    }
}

#[derive(serde::Deserialize)]
struct TokenForm {
    token: Option<String>,
}

/// `POST /dashboard/session` (form field `token`): a session for the token's tenant.
pub async fn sign_in_with_token(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    if !same_origin(&state, &parts) {
        return sign_in_page(
            StatusCode::FORBIDDEN,
            Some("Sign-in is accepted only from this server's own sign-in page."),
        );
    }
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
        return ApiError::payload_too_large(MAX_FORM_BYTES).into_response();
    };
    let token = serde_urlencoded::from_bytes::<TokenForm>(&bytes)
        .ok()
        .and_then(|form| form.token)
        .map(|token| token.trim().to_string())
        .unwrap_or_default();
    let bearer = format!("Bearer {token}");
    let Ok(value) = HeaderValue::from_str(&bearer) else {
        return sign_in_page(StatusCode::UNAUTHORIZED, Some("That token is not valid."));
    };
    parts.headers.insert(header::AUTHORIZATION, value);
    let principal = match authenticate(&state, &parts) {
        Ok(principal) => principal,
        Err(error) => {
            return sign_in_page(
                StatusCode::UNAUTHORIZED,
                Some(&format!("That token was refused: {}", error.message)),
            );
        }
    };
    if !principal.allows(Access::Read) {
        return sign_in_page(
            StatusCode::FORBIDDEN,
            Some(&format!(
                "That token may not read deployment events; it needs one of: {}.",
                Access::Read.permissions().join(", ")
            )),
        );
    }
    let now = now_seconds();
    let session = DashboardSession {
        tenant: principal.tenant.clone(),
        app: principal.app.clone(),
        expires_at: (now + sign_in::SESSION_SECONDS).min(principal.expires()),
    };
    open_session(&state, session, now)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// `POST /dashboard/signout`: ends the session and clears its cookie.
pub async fn sign_out(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    if !same_origin(&state, &parts) {
        return ApiError::forbidden_because("Sign-out is accepted only from the dashboard itself.")
            .into_response();
    }
    if let Some(secret) = cookie_secret(&parts.headers)
        && let Err(error) = state
            .store
            .end_dashboard_session(&sign_in::hash_of(secret))
            .await
    {
        return ApiError::from_store(error, "session", "").into_response();
    }
    let mut response = see_other("/dashboard");
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&state, "", 0));
    response
}

pub async fn script() -> Response {
    asset(
        StatusCode::OK,
        "text/javascript; charset=utf-8",
        SCRIPT.to_string(),
    )
}

pub async fn style() -> Response {
    asset(StatusCode::OK, "text/css; charset=utf-8", STYLE.to_string())
}

pub async fn icon() -> Response {
    asset(StatusCode::OK, "image/svg+xml", ICON.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; graphpilot_session=abc; b=2"),
        );
        assert_eq!(cookie_secret(&headers), Some("abc"));
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("graphpilot_session="),
        );
        assert_eq!(cookie_secret(&headers), None);
    }

    #[test]
    fn text_put_into_pages_is_escaped() {
        assert_eq!(
            html_escape("<script>\"x\"&'y'"),
            "&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;"
        );
    }
}
