//! Tokens: minting (the `token` command), verification with a per-token cache, and the permission
//! rules of api.md §4 and §13.

pub mod apps;
mod keys;
pub mod sign_in;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};

pub use keys::{SigningKey, random_bytes};

/// Graph's audiences: the resource URI and the application id of Microsoft Graph.
pub const GRAPH_AUDIENCES: [&str; 3] = [
    "https://graph.microsoft.com",
    "https://graph.microsoft.com/",
    "00000003-0000-0000-c000-000000000000",
];

pub const READ_PERMISSIONS: [&str; 4] = [
    "DeviceManagementManagedDevices.Read.All",
    "DeviceManagementManagedDevices.ReadWrite.All",
    "DeviceManagementConfiguration.Read.All",
    "DeviceManagementConfiguration.ReadWrite.All",
];

/// The role of tokens allowed to use the admin API (`/graphpilot/…`); not a Graph permission.
pub const ADMIN_ROLE: &str = "graphpilot.Admin";

pub const WRITE_PERMISSIONS: [&str; 2] = [
    "DeviceManagementManagedDevices.ReadWrite.All",
    "DeviceManagementConfiguration.ReadWrite.All",
];

/// The claims of an access token, shaped like Entra ID's v1.0 tokens for Graph.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub aud: String,
    pub iss: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub tid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_displayname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appidacr: Option<String>,
    pub oid: String,
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idtyp: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_name: Option<String>,
    pub uti: String,
    pub ver: String,
}

/// What `graphpilot token` was asked for.
pub struct TokenRequest<'a> {
    pub tenant: &'a str,
    pub app: &'a str,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
    pub user: Option<&'a str>,
    pub expires_in: i64,
}

/// A stable GUID for a name inside a tenant (object ids of apps and users).
fn object_id(tenant: &str, name: &str) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        format!("{tenant}/{name}").as_bytes(),
    )
    .to_string()
}

pub fn now_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// Mints a signed token. `--scope`s (or a `--user`) make a delegated token, otherwise an
/// application token carrying `roles`.
pub fn mint(key: &SigningKey, request: &TokenRequest) -> anyhow::Result<String> {
    let now = now_seconds();
    let delegated = !request.scopes.is_empty() || request.user.is_some();
    let user = request.user.map(str::to_string);
    let oid = match &user {
        Some(upn) => object_id(request.tenant, upn),
        None => object_id(request.tenant, request.app),
    };
    let claims = Claims {
        aud: GRAPH_AUDIENCES[0].to_string(),
        iss: format!("https://sts.windows.net/{}/", request.tenant),
        iat: now,
        nbf: now,
        exp: now + request.expires_in,
        tid: request.tenant.to_string(),
        appid: Some(request.app.to_string()),
        azp: Some(request.app.to_string()),
        app_displayname: Some(request.app.to_string()),
        appidacr: Some("1".into()),
        sub: oid.clone(),
        oid,
        idtyp: Some(if delegated { "user" } else { "app" }.into()),
        roles: request.roles.clone(),
        scp: delegated.then(|| request.scopes.join(" ")),
        upn: user.clone(),
        unique_name: user,
        uti: uuid::Uuid::new_v4().simple().to_string(),
        ver: "1.0".into(),
    };
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(key.kid.clone());
    header.typ = Some("JWT".into());
    Ok(jsonwebtoken::encode(&header, &claims, &key.encoding)?)
}

/// Who is calling, once their token checked out.
#[derive(Debug)]
pub struct Principal {
    pub tenant: String,
    pub app: String,
    /// `scp` permissions for delegated tokens, `roles` for application tokens.
    pub permissions: Vec<String>,
    pub delegated: bool,
    not_before: i64,
    expires: i64,
}

/// Reading report export jobs (reports-and-sync.md A1): the read permissions of devices,
/// configuration and apps, or their write ones.
pub const REPORT_READ_PERMISSIONS: [&str; 6] = [
    "DeviceManagementManagedDevices.Read.All",
    "DeviceManagementManagedDevices.ReadWrite.All",
    "DeviceManagementConfiguration.Read.All",
    "DeviceManagementConfiguration.ReadWrite.All",
    "DeviceManagementApps.Read.All",
    "DeviceManagementApps.ReadWrite.All",
];

/// Creating and deleting report export jobs.
pub const REPORT_WRITE_PERMISSIONS: [&str; 3] = [
    "DeviceManagementManagedDevices.ReadWrite.All",
    "DeviceManagementConfiguration.ReadWrite.All",
    "DeviceManagementApps.ReadWrite.All",
];

/// What an operation needs (api.md §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    ReportRead,
    ReportWrite,
}

impl Access {
    pub fn permissions(self) -> &'static [&'static str] {
        match self {
            Access::Read => &READ_PERMISSIONS,
            Access::Write => &WRITE_PERMISSIONS,
            Access::ReportRead => &REPORT_READ_PERMISSIONS,
            Access::ReportWrite => &REPORT_WRITE_PERMISSIONS,
        }
    }
}

impl Principal {
    /// When the token expires (Unix seconds).
    pub fn expires(&self) -> i64 {
        self.expires
    }

    pub fn allows(&self, access: Access) -> bool {
        access
            .permissions()
            .iter()
            .any(|needed| self.permissions.iter().any(|held| held == needed))
    }
}

/// Why a token was refused; the message is safe to show the caller.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AuthError(pub String);

/// Verifies tokens signed with the data directory's key and caches each verified token until it
/// expires, so a signature is checked once per token rather than once per request.
pub struct Verifier {
    key: jsonwebtoken::DecodingKey,
    validation: Validation,
    cache: RwLock<HashMap<String, Arc<Principal>>>,
}

/// Beyond this many cached tokens the cache is pruned (expired first, then entirely).
const CACHE_LIMIT: usize = 50_000;

impl Verifier {
    pub fn new(key: &SigningKey) -> Self {
        let mut validation = Validation::new(Algorithm::ES256);
        validation.leeway = 0;
        validation.validate_nbf = true;
        validation.set_audience(&GRAPH_AUDIENCES);
        validation.set_required_spec_claims(&["exp", "nbf", "aud", "iss"]);
        Self {
            key: key.decoding.clone(),
            validation,
            cache: RwLock::new(HashMap::new()),
        }
    }

    pub fn verify(&self, token: &str) -> Result<Arc<Principal>, AuthError> {
        let now = now_seconds();
        if let Some(principal) = self.cache.read().expect("cache lock").get(token) {
            return check_lifetime(principal, now).map(|()| principal.clone());
        }
        let principal = Arc::new(self.verify_signature(token)?);
        check_lifetime(&principal, now)?;
        let mut cache = self.cache.write().expect("cache lock");
        if cache.len() >= CACHE_LIMIT {
            cache.retain(|_, cached| cached.expires > now);
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
        }
        cache.insert(token.to_string(), principal.clone());
        Ok(principal)
    }

    fn verify_signature(&self, token: &str) -> Result<Principal, AuthError> {
        use jsonwebtoken::errors::ErrorKind;
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(
            |error| {
                AuthError(match error.kind() {
                    ErrorKind::ExpiredSignature => "Lifetime validation failed, the token is expired.".into(),
                    ErrorKind::ImmatureSignature => "Lifetime validation failed, the token is not yet valid (nbf).".into(),
                    ErrorKind::InvalidAudience => "Access token validation failure. Invalid audience.".into(),
                    ErrorKind::InvalidSignature => "Access token validation failure. The signature is invalid.".into(),
                    ErrorKind::InvalidAlgorithm => "Access token validation failure. The signing algorithm is not accepted (ES256 only).".into(),
                    ErrorKind::MissingRequiredClaim(claim) => format!("Access token validation failure. The '{claim}' claim is missing."),
                    _ => "Invalid JWT token. The token is malformed or was not issued by this service.".into(),
                })
            },
        )?;
        let claims = data.claims;
        let issuers = [
            format!("https://sts.windows.net/{}/", claims.tid),
            format!("https://login.microsoftonline.com/{}/v2.0", claims.tid),
        ];
        if !issuers.contains(&claims.iss) {
            return Err(AuthError(
                "Access token validation failure. Invalid issuer.".into(),
            ));
        }
        let app = claims.appid.or(claims.azp).ok_or_else(|| {
            AuthError(
                "Access token validation failure. The token names no application (appid/azp)."
                    .into(),
            )
        })?;
        let delegated = claims.scp.is_some();
        let permissions = match claims.scp {
            Some(scopes) => scopes.split_whitespace().map(str::to_string).collect(),
            None => claims.roles,
        };
        Ok(Principal {
            tenant: claims.tid,
            app,
            permissions,
            delegated,
            not_before: claims.nbf,
            expires: claims.exp,
        })
    }
}

fn check_lifetime(principal: &Principal, now: i64) -> Result<(), AuthError> {
    if now >= principal.expires {
        return Err(AuthError(
            "Lifetime validation failed, the token is expired.".into(),
        ));
    }
    if now < principal.not_before {
        return Err(AuthError(
            "Lifetime validation failed, the token is not yet valid (nbf).".into(),
        ));
    }
    Ok(())
}
