//! TLS for IMAP connections: the rustls client configuration (the
//! system's trust store plus an endpoint's `ca_file`, certificates always
//! verified) and the wording of a failed handshake. Built once per side
//! and shared by every connection [`connect`](super::endpoint::connect)
//! opens.

use std::path::PathBuf;
use std::sync::Arc;

use tokio_rustls::rustls;

use crate::error::{Error, Result};

/// Builds the TLS client configuration: the system's trust store plus the
/// endpoint's `ca_file`. Certificates are always verified.
pub fn tls_config(ca_file: Option<&PathBuf>) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        let pem =
            std::fs::read(path).map_err(|e| Error::fatal(format!("cannot read ca_file {}: {e}", path.display())))?;
        let mut added = 0;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|e| Error::fatal(format!("ca_file {} is not valid PEM: {e}", path.display())))?;
            roots
                .add(cert)
                .map_err(|e| Error::fatal(format!("ca_file {} holds an unusable certificate: {e}", path.display())))?;
            added += 1;
        }
        if added == 0 {
            return Err(Error::fatal(format!(
                "ca_file {} holds no PEM certificate",
                path.display()
            )));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::fatal(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

pub(super) fn tls_error(where_: &str, e: std::io::Error) -> Error {
    // A certificate problem will not fix itself by retrying.
    Error::fatal(format!(
        "TLS with {where_} failed: {e} (if the server uses a private CA, set ca_file)"
    ))
}
