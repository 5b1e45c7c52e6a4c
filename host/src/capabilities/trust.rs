//! Which certificate authorities outbound TLS trusts: the bundled webpki roots, the system's
//! trust store (so an enterprise CA installed on the machine works), and CA files the operator
//! names (`[outbound] ca_file`, a grant's `tls = { ca_file }`). Files are read and checked when
//! the config loads, so a missing or empty bundle is a config error, never a failed call later.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// The CA certificates of one PEM file, read and checked at config load.
#[derive(Clone)]
pub struct CaBundle {
    pub path: PathBuf,
    certs: Arc<Vec<CertificateDer<'static>>>,
    /// SHA-256 over the certificates: the bundle's identity (a changed file is a changed
    /// config at a reload, and grants with the same bundle share one connection pool).
    digest: String,
}

impl std::fmt::Debug for CaBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CaBundle({}, sha256 {})",
            self.path.display(),
            self.digest
        )
    }
}

impl PartialEq for CaBundle {
    fn eq(&self, other: &Self) -> bool {
        self.digest == other.digest
    }
}

impl CaBundle {
    /// Reads a PEM bundle; the error says what is wrong with the file (not found, no
    /// certificate in it, a certificate that cannot be a trust anchor).
    pub fn load(path: &Path) -> Result<CaBundle, String> {
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut certs = Vec::new();
        for (i, item) in CertificateDer::pem_slice_iter(&bytes).enumerate() {
            let cert = item.map_err(|e| {
                format!(
                    "{}: PEM item {} is not readable: {e}",
                    path.display(),
                    i + 1
                )
            })?;
            certs.push(cert.into_owned());
        }
        if certs.is_empty() {
            return Err(format!(
                "{} holds no certificate (expected PEM `-----BEGIN CERTIFICATE-----` blocks)",
                path.display()
            ));
        }
        // Each must be usable as a trust anchor; finding out at the first call would be late.
        let mut probe = RootCertStore::empty();
        for (i, c) in certs.iter().enumerate() {
            probe.add(c.clone()).map_err(|e| {
                format!(
                    "{}: certificate {} is not a usable CA certificate: {e}",
                    path.display(),
                    i + 1
                )
            })?;
        }
        let digest = {
            use sha2::{Digest, Sha256};
            let mut h = Sha256::new();
            for c in &certs {
                h.update(c.as_ref());
            }
            hex::encode(h.finalize())
        };
        Ok(CaBundle {
            path: path.to_path_buf(),
            certs: Arc::new(certs),
            digest,
        })
    }

    pub fn digest(&self) -> &str {
        &self.digest
    }

    pub fn len(&self) -> usize {
        self.certs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }
}

/// `[outbound]`'s trust settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TrustSettings {
    /// Also trust the system's store (default on).
    pub system_roots: bool,
    /// `ca_file`: trusted for every destination.
    pub ca: Option<CaBundle>,
}

impl Default for TrustSettings {
    fn default() -> Self {
        TrustSettings {
            system_roots: true,
            ca: None,
        }
    }
}

/// The roots every client starts from: webpki's bundle, the system store when wanted, the
/// global CA file. Built once per daemon (reading the system store is not free).
pub fn base_roots(settings: &TrustSettings) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if settings.system_roots {
        let found = rustls_native_certs::load_native_certs();
        let (added, ignored) = roots.add_parsable_certificates(found.certs);
        // A machine without a system store is normal (containers); say so at debug level only.
        tracing::debug!(
            added,
            ignored,
            errors = found.errors.len(),
            "system trust store loaded for outbound TLS"
        );
    }
    if let Some(ca) = &settings.ca {
        add_bundle(&mut roots, ca);
    }
    roots
}

/// `roots` plus a bundle's certificates (already checked when the bundle loaded).
pub fn add_bundle(roots: &mut RootCertStore, ca: &CaBundle) {
    roots.add_parsable_certificates(ca.certs.iter().cloned());
}

/// A TLS client configuration over `roots` (ring, TLS 1.2 and 1.3).
pub fn client_config(roots: RootCertStore) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // The ring provider supports the default protocol versions; this cannot fail.
    let builder = match rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
    {
        Ok(b) => b,
        Err(e) => unreachable!("ring supports the default TLS versions: {e}"),
    };
    builder.with_root_certificates(roots).with_no_client_auth()
}

/// Whether a connection error is a refused server certificate (named as such to the connector
/// and in the audit row, with the settings that fix it).
pub use crate::tls_errors::find_certificate_error;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_or_one_without_certificates_is_refused_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let e = CaBundle::load(&missing).unwrap_err();
        assert!(e.contains("cannot read") && e.contains("nope.pem"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "just text\n").unwrap();
        let e = CaBundle::load(&empty).unwrap_err();
        assert!(e.contains("holds no certificate"), "{e}");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = CaBundle::load(&garbage).unwrap_err();
        assert!(e.contains("not a usable CA certificate"), "{e}");
    }
}
