//! The data directory's ES256 signing key: generated once on first use, kept as PKCS#8 PEM, and
//! published as a JWK whose `kid` is its RFC 7638 thumbprint.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::Context;
use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{DecodingKey, EncodingKey};

const KEY_FILE: &str = "signing-key.pem";
const PEM_LABEL: &str = "PRIVATE KEY";

/// The key that signs and verifies tokens, and from which the paging-token secret derives.
pub struct SigningKey {
    pub encoding: EncodingKey,
    pub decoding: DecodingKey,
    pub kid: String,
    /// The public key as a JWK (for JWKS documents).
    pub jwk: serde_json::Value,
    /// A secret for MACs over server-issued opaque values (`$skiptoken`), derived from the key.
    pub mac_secret: [u8; 32],
    /// The private key as PKCS#8 PEM, for sharing through the database. Never logged.
    pub pem: String,
}

impl SigningKey {
    /// Loads `<data_dir>/signing-key.pem`, creating the directory and the key if missing. Two
    /// processes starting at once end up with the same key: the file is published atomically with
    /// a no-clobber link.
    pub fn load_or_create(data_dir: &Path) -> anyhow::Result<Self> {
        fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
        let path = data_dir.join(KEY_FILE);
        if !path.exists() {
            let document = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .and_then(|pair| pair.to_pkcs8v1())
                .map_err(|_| anyhow::anyhow!("cannot generate a P-256 key"))?;
            let pem = to_pem(document.as_ref());
            let temporary = data_dir.join(format!("{KEY_FILE}.{}.tmp", std::process::id()));
            let written = (|| {
                let mut file = fs::File::create(&temporary)?;
                restrict_permissions(&file)?;
                file.write_all(pem.as_bytes())?;
                file.sync_all()
            })();
            if let Err(error) = written {
                // A full or read-only disk: nothing half-written is left to be read later.
                let _ = fs::remove_file(&temporary);
                return Err(anyhow::Error::new(error).context(format!(
                    "cannot create the signing key in {} (is the disk full or read-only?)",
                    data_dir.display()
                )));
            }
            // hard_link fails if another process won the race; then its key is the key.
            let _ = fs::hard_link(&temporary, &path);
            fs::remove_file(&temporary)?;
        }
        let pem = fs::read_to_string(&path)
            .with_context(|| format!("cannot read the signing key {}", path.display()))?;
        Self::from_pem(&pem).with_context(|| format!("bad signing key file {}", path.display()))
    }

    /// A key from its PKCS#8 PEM text.
    pub fn from_pem(pem: &str) -> anyhow::Result<Self> {
        let der = from_pem(pem).context("not a PKCS#8 PEM private key")?;
        Self::from_pkcs8(&der, pem)
    }

    fn from_pkcs8(der: &[u8], pem: &str) -> anyhow::Result<Self> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
            .map_err(|_| anyhow::anyhow!("the signing key is not a P-256 PKCS#8 key"))?;
        // Uncompressed SEC1 point: 0x04 || x || y.
        let point = pair.public_key().as_ref();
        anyhow::ensure!(point.len() == 65, "unexpected public key encoding");
        let x = URL_SAFE_NO_PAD.encode(&point[1..33]);
        let y = URL_SAFE_NO_PAD.encode(&point[33..65]);
        let thumbprint_input = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid =
            URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, thumbprint_input.as_bytes()));
        let jwk = serde_json::json!({
            "kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "use": "sig", "alg": "ES256"
        });
        let mut mac_input = b"graphpilot mac secret v1".to_vec();
        mac_input.extend_from_slice(der);
        let mac_secret: [u8; 32] = digest::digest(&digest::SHA256, &mac_input)
            .as_ref()
            .try_into()
            .expect("SHA-256 is 32 bytes");
        Ok(Self {
            encoding: EncodingKey::from_ec_der(der),
            decoding: DecodingKey::from_ec_components(&x, &y)?,
            kid,
            jwk,
            mac_secret,
            pem: pem.to_string(),
        })
    }
}

/// Fills a buffer from the system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    aws_lc_rs::rand::SecureRandom::fill(&SystemRandom::new(), &mut bytes)
        .expect("the system random source works");
    bytes
}

fn to_pem(der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|chunk| std::str::from_utf8(chunk).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN {PEM_LABEL}-----\n{}\n-----END {PEM_LABEL}-----\n",
        lines.join("\n")
    )
}

fn from_pem(pem: &str) -> anyhow::Result<Vec<u8>> {
    let begin = format!("-----BEGIN {PEM_LABEL}-----");
    let end = format!("-----END {PEM_LABEL}-----");
    let start = pem.find(&begin).context("no PEM header")? + begin.len();
    let stop = pem.find(&end).context("no PEM footer")?;
    let body: String = pem[start..stop].split_whitespace().collect();
    Ok(STANDARD.decode(body)?)
}

#[cfg(unix)]
fn restrict_permissions(file: &fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn restrict_permissions(_: &fs::File) -> std::io::Result<()> {
    Ok(())
}
