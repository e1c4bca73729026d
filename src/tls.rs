//! HTTPS: a local certificate authority kept in `<data-dir>/tls/` (created once, so clients trust
//! it once), a server certificate it signs at every start for the names asked for, and a listener
//! that completes TLS handshakes off the accept loop (a slow handshake never holds up others) and
//! offers HTTP/2 and HTTP/1.1 by ALPN.

use std::fs;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca-key.pem";
/// The directory that holds the local CA and the server certificate.
pub fn tls_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("tls")
}

/// The local CA's certificate (PEM), creating the CA on first use.
pub fn ca_certificate_pem(data_dir: &Path) -> anyhow::Result<String> {
    let (certificate, _) = load_or_create_ca(data_dir)?;
    Ok(certificate)
}

/// The CA as (certificate PEM, key PEM). Created atomically: two processes starting at once end
/// up with the same CA.
fn load_or_create_ca(data_dir: &Path) -> anyhow::Result<(String, String)> {
    let dir = tls_dir(data_dir);
    let cert_path = dir.join(CA_CERT);
    let key_path = dir.join(CA_KEY);
    if !cert_path.exists() {
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let key = KeyPair::generate()?;
        let params = ca_params();
        let certificate = params.self_signed(&key)?;
        let staging = dir.join(format!("ca.{}.tmp", std::process::id()));
        fs::create_dir_all(&staging)?;
        let written = write_synced(&staging.join(CA_KEY), &key.serialize_pem())
            .and_then(|()| write_synced(&staging.join(CA_CERT), &certificate.pem()));
        if let Err(error) = written {
            let _ = fs::remove_dir_all(&staging);
            return Err(anyhow::Error::new(error).context(format!(
                "cannot create the local CA in {} (is the disk full or read-only?)",
                dir.display()
            )));
        }
        // The key first: whoever sees the certificate can rely on the key being there.
        if fs::hard_link(staging.join(CA_KEY), &key_path).is_ok() {
            let _ = fs::hard_link(staging.join(CA_CERT), &cert_path);
        }
        fs::remove_dir_all(&staging)?;
    }
    let read = |path: &Path| {
        fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
    };
    Ok((read(&cert_path)?, read(&key_path)?))
}

/// Writes a whole file and makes it durable before it is linked into place.
fn write_synced(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = fs::File::create(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// The CA's fixed subject and constraints: they are rebuilt, not parsed, to sign with the CA.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "graphpilot local CA");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "graphpilot");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(2045, 1, 1);
    params
}

/// Where the server's certificate and key come from.
pub enum ServerIdentity {
    /// Signed by the local CA for localhost, 127.0.0.1, ::1 and these extra names.
    Local { extra_names: Vec<String> },
    /// The user's own PEM files.
    Files { certificate: PathBuf, key: PathBuf },
}

/// The rustls configuration for `identity`, offering h2 and http/1.1.
pub fn server_config(
    data_dir: &Path,
    identity: &ServerIdentity,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let (chain, key) = match identity {
        ServerIdentity::Local { extra_names } => local_server_certificate(data_dir, extra_names)?,
        ServerIdentity::Files { certificate, key } => {
            let chain = CertificateDer::pem_file_iter(certificate)
                .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
                .with_context(|| {
                    format!("cannot read certificates from {}", certificate.display())
                })?;
            anyhow::ensure!(
                !chain.is_empty(),
                "{} holds no PEM certificate",
                certificate.display()
            );
            let key = PrivateKeyDer::from_pem_file(key)
                .with_context(|| format!("cannot read a PEM private key from {}", key.display()))?;
            (chain, key)
        }
    };
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the TLS certificate and key do not form a usable identity")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A fresh server certificate signed by the local CA, written beside it for inspection.
fn local_server_certificate(
    data_dir: &Path,
    extra_names: &[String],
) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let (ca_pem, ca_key_pem) = load_or_create_ca(data_dir)?;
    let ca_key = KeyPair::from_pem(&ca_key_pem).context("the local CA key is unreadable")?;
    let issuer = Issuer::new(ca_params(), ca_key);
    let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    for name in extra_names {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.subject_alt_names = names
        .iter()
        .map(|name| match name.parse::<std::net::IpAddr>() {
            Ok(address) => Ok(SanType::IpAddress(address)),
            Err(_) => Ok(SanType::DnsName(name.as_str().try_into().with_context(
                || format!("--tls-name '{name}' is not a valid DNS name or IP address"),
            )?)),
        })
        .collect::<anyhow::Result<_>>()?;
    params
        .distinguished_name
        .push(DnType::CommonName, "graphpilot");
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(397);
    let key = KeyPair::generate()?;
    let certificate = params.signed_by(&key, &issuer)?;
    let dir = tls_dir(data_dir);
    // For people to inspect; the server itself needs no file, so a full disk does not stop it.
    if let Err(error) = fs::write(dir.join("server.pem"), certificate.pem()) {
        tracing::warn!(error = %error, "cannot write the server certificate to {}", dir.display());
    }
    let ca_der = CertificateDer::from_pem_slice(ca_pem.as_bytes())
        .context("the local CA certificate is unreadable")?;
    let key_der = PrivateKeyDer::try_from(key.serialize_der())
        .map_err(|error| anyhow::anyhow!("the server key is unusable: {error}"))?;
    Ok((vec![certificate.der().clone(), ca_der], key_der))
}

/// A listener whose connections arrive already through their TLS handshake.
pub struct TlsListener {
    local_addr: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    accepting: tokio::task::JoinHandle<()>,
}

impl Drop for TlsListener {
    /// Stops accepting (the port closes) when the server stops listening.
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl TlsListener {
    /// A client gets `handshake_timeout` to complete its handshake (the same deadline as for a
    /// request head: both are what a slow client holds a connection with).
    pub fn new(
        listener: TcpListener,
        config: Arc<rustls::ServerConfig>,
        handshake_timeout: Duration,
    ) -> io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        let (sender, ready) = mpsc::channel(256);
        let accepting = tokio::spawn(async move {
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                if sender.is_closed() {
                    break;
                }
                let acceptor = acceptor.clone();
                let sender = sender.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = sender.send((tls, peer)).await;
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, error = %error, "TLS handshake failed");
                        }
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self {
            local_addr,
            ready,
            accepting,
        })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accept loop only ends once this listener is gone.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}
