//! Dashboard sign-in secrets: one-time codes and session secrets are 256-bit random values shown
//! once; only their SHA-256 hashes are stored. Lifetimes are the contract's (analytics.md §6).

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::random_bytes;

/// How long a one-time code printed by `graphpilot dashboard` stays usable.
pub const CODE_SECONDS: i64 = 10 * 60;
/// The longest a dashboard session lasts.
pub const SESSION_SECONDS: i64 = 12 * 3600;

/// A fresh secret in clear (URL-safe) and its hash.
pub fn new_secret() -> (String, String) {
    let clear = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
    let hash = hash_of(&clear);
    (clear, hash)
}

/// The hash a secret is stored as: SHA-256, lower-case hex.
pub fn hash_of(secret: &str) -> String {
    digest::digest(&digest::SHA256, secret.as_bytes())
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_fresh_and_only_their_hash_matches() {
        let (first, first_hash) = new_secret();
        let (second, _) = new_secret();
        assert_ne!(first, second);
        assert_eq!(first.len(), 43, "256 bits in unpadded base64url");
        assert_eq!(hash_of(&first), first_hash);
        assert_ne!(first, first_hash);
    }
}
