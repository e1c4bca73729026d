//! App registrations for the token endpoint: a client id, a secret shown once, and the Graph
//! application permissions (`roles`) the app's tokens carry.

use aws_lc_rs::constant_time;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{REPORT_READ_PERMISSIONS as READ_PERMISSIONS, random_bytes};
use crate::store::AppRegistration;

/// A new registration and its secret (the only time the secret exists in clear).
pub fn register(
    tenant: &str,
    name: &str,
    permissions: &[String],
) -> anyhow::Result<(AppRegistration, String)> {
    anyhow::ensure!(!tenant.trim().is_empty(), "--tenant must not be empty");
    anyhow::ensure!(!name.trim().is_empty(), "--name must not be empty");
    for permission in permissions {
        anyhow::ensure!(
            READ_PERMISSIONS.contains(&permission.as_str()),
            "unknown permission '{permission}'; graphpilot grants {}",
            READ_PERMISSIONS.join(", ")
        );
    }
    let secret = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
    let registration = AppRegistration {
        client_id: uuid::Uuid::new_v4().to_string(),
        tenant: tenant.to_string(),
        name: name.to_string(),
        secret_sha256: secret_hash(&secret),
        permissions: permissions.to_vec(),
        created_at: super::now_seconds(),
    };
    Ok((registration, secret))
}

fn secret_hash(secret: &str) -> String {
    super::sign_in::hash_of(secret)
}

/// Whether `secret` is the app's secret (compared in constant time).
pub fn secret_matches(app: &AppRegistration, secret: &str) -> bool {
    constant_time::verify_slices_are_equal(
        secret_hash(secret).as_bytes(),
        app.secret_sha256.as_bytes(),
    )
    .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_matches_only_itself_and_is_not_stored() {
        let (app, secret) = register(
            "contoso",
            "reporting",
            &["DeviceManagementManagedDevices.Read.All".into()],
        )
        .unwrap();
        assert!(secret_matches(&app, &secret));
        assert!(!secret_matches(&app, &format!("{secret}x")));
        assert!(!secret_matches(&app, ""));
        assert!(!app.secret_sha256.contains(&secret));
        assert!(secret.len() >= 43);
    }

    #[test]
    fn unknown_permissions_are_refused_with_the_known_ones() {
        let error = register("contoso", "x", &["User.Read.All".into()]).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("DeviceManagementConfiguration.Read.All")
        );
    }
}
