//! `graphpilot cert`: prints the local CA certificate that clients of `serve --tls` trust.

use crate::cli::CertArgs;

pub fn run(args: CertArgs) -> anyhow::Result<()> {
    let pem = crate::tls::ca_certificate_pem(&args.data_dir)?;
    print!("{pem}");
    Ok(())
}
