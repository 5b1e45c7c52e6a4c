//! TLS to the PostgreSQL store, set in the store URL with libpq's own parameters so the URL that
//! works with `psql` works here: `sslmode` (disable, prefer, require, verify-ca, verify-full;
//! default prefer, as libpq) and `sslrootcert` (a PEM file of the CAs to trust, or `system`).
//! tokio-postgres knows only disable/prefer/require and no `sslrootcert`, so this module takes
//! both out of the URL, hands tokio-postgres the mode it understands (it then asks the server
//! for TLS, and insists on it from `require` on) and puts the checking of the server's
//! certificate into the rustls configuration:
//!
//! - `prefer`, `require`: encrypted, the certificate is not checked (libpq's meaning), unless
//!   `sslrootcert` names a file: then, as in libpq, it must chain to that CA (verify-ca).
//! - `verify-ca`: it must chain to a trusted CA; `verify-full`: and name the host of the URL.
//!   Trusted: the `sslrootcert` file alone, or with none given (or `system`) the roots outbound
//!   TLS starts from (the bundled webpki roots and the system's store; built here from the same
//!   crates, since the store sits below the capabilities layer that owns outbound trust).
//!
//! `sslcert` and `sslkey` name a client certificate (PEM, with its chain) and its private key,
//! shown to a server that asks for one (`hostssl … cert` in pg_hba.conf). As libpq, the key file
//! is refused when its owner is this user and group or others may read it (0600 or less), or
//! when it is root's and more than the group may read it (0640 or less). Unlike libpq there is no
//! default `~/.postgresql/postgresql.crt`: a client certificate is used only when named.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use tokio_postgres_rustls::MakeRustlsConnect;

/// `sslmode`, in libpq's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Option<SslMode> {
        Some(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    /// What tokio-postgres is told: whether to ask for TLS, and whether to insist.
    fn negotiated(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => "require",
        }
    }
}

/// Which CAs `sslrootcert` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    File(PathBuf),
    System,
}

/// The TLS parameters of a store URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: SslMode,
    pub root_cert: Option<RootCert>,
    /// `sslcert` and `sslkey`: the client certificate (chain) and its key, both PEM files.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

/// How the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Encryption only (`prefer`/`require` without a CA file).
    None,
    /// Chains to a trusted CA, any name.
    Ca,
    /// Chains to a trusted CA and names the host.
    Full,
}

impl TlsSettings {
    fn check(&self) -> Check {
        match (self.mode, &self.root_cert) {
            (SslMode::VerifyFull, _) => Check::Full,
            (SslMode::VerifyCa, _) => Check::Ca,
            // libpq: "if a root CA file exists, sslmode=require behaves like verify-ca".
            (_, Some(RootCert::File(_))) => Check::Ca,
            _ => Check::None,
        }
    }

    /// The connector for tokio-postgres; reads the `sslrootcert` file (its errors name the
    /// file, never the URL).
    pub fn connector(&self) -> Result<MakeRustlsConnect, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let check = self.check();
        let verifier: Arc<dyn ServerCertVerifier> = match check {
            Check::None => Arc::new(AnyCertificate(provider.signature_verification_algorithms)),
            Check::Ca | Check::Full => {
                let roots = match &self.root_cert {
                    Some(RootCert::File(path)) => {
                        ca_file(path).map_err(|e| format!("sslrootcert: {e}"))?
                    }
                    Some(RootCert::System) | None => system_roots(),
                };
                let webpki =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| format!("sslrootcert: no usable CA certificate: {e}"))?;
                Arc::new(Chained {
                    webpki,
                    check_name: check == Check::Full,
                })
            }
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match &self.client_cert {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = cert_file(cert).map_err(|e| format!("sslcert: {e}"))?;
                let key = key_file(key).map_err(|e| format!("sslkey: {e}"))?;
                builder.with_client_auth_cert(chain, key).map_err(|e| {
                    format!("sslcert and sslkey are not a certificate and its key: {e}")
                })?
            }
        };
        Ok(MakeRustlsConnect::new(config))
    }
}

/// Takes `sslmode` and `sslrootcert` out of a `postgres://` URL: the URL for tokio-postgres
/// (with the `sslmode` it understands) and the settings. Errors name the parameter, never the
/// URL (it may hold a password).
pub fn split_url(url: &str) -> Result<(String, TlsSettings), String> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, q),
        None => (url, ""),
    };
    let mut mode = SslMode::Prefer;
    let mut root_cert = None;
    let (mut ssl_cert, mut ssl_key) = (None, None);
    let mut kept: Vec<&str> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = || {
            percent_encoding::percent_decode_str(value)
                .decode_utf8()
                .map(|v| v.into_owned())
                .map_err(|_| format!("{key} in the store URL is not UTF-8"))
        };
        match key {
            "sslmode" => {
                let v = value()?;
                mode = SslMode::parse(&v).ok_or_else(|| {
                    format!(
                        "sslmode `{v}` in the store URL is not one of disable, prefer, require, verify-ca, verify-full"
                    )
                })?;
            }
            "sslrootcert" => {
                let v = value()?;
                root_cert = Some(match v.as_str() {
                    "" => return Err("sslrootcert in the store URL is empty".into()),
                    "system" => RootCert::System,
                    path => RootCert::File(PathBuf::from(path)),
                });
            }
            "sslcert" | "sslkey" => {
                let v = value()?;
                if v.is_empty() {
                    return Err(format!("{key} in the store URL is empty"));
                }
                let slot = if key == "sslcert" {
                    &mut ssl_cert
                } else {
                    &mut ssl_key
                };
                *slot = Some(PathBuf::from(v));
            }
            _ => kept.push(pair),
        }
    }
    let client_cert = match (ssl_cert, ssl_key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => {
            return Err(
                "sslcert and sslkey in the store URL go together: name the client certificate \
                 and its private key"
                    .into(),
            );
        }
    };
    if client_cert.is_some() && mode == SslMode::Disable {
        return Err("sslcert and sslkey need TLS, but the store URL says sslmode=disable".into());
    }
    let settings = TlsSettings {
        mode,
        root_cert,
        client_cert,
    };
    kept.push(match mode.negotiated() {
        "disable" => "sslmode=disable",
        "prefer" => "sslmode=prefer",
        _ => "sslmode=require",
    });
    Ok((format!("{base}?{}", kept.join("&")), settings))
}

/// The CAs of a PEM file, each usable as a trust anchor; the error names the file.
fn ca_file(path: &std::path::Path) -> Result<RootCertStore, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut roots = RootCertStore::empty();
    for (i, cert) in CertificateDer::pem_slice_iter(&bytes).enumerate() {
        let cert = cert.map_err(|e| {
            format!(
                "{}: PEM item {} is not readable: {e}",
                path.display(),
                i + 1
            )
        })?;
        roots.add(cert).map_err(|e| {
            format!(
                "{}: certificate {} is not a usable CA certificate: {e}",
                path.display(),
                i + 1
            )
        })?;
    }
    if roots.is_empty() {
        return Err(format!(
            "{} holds no certificate (expected PEM `-----BEGIN CERTIFICATE-----` blocks)",
            path.display()
        ));
    }
    Ok(roots)
}

/// A client certificate and the chain after it, from a PEM file; the error names the file.
fn cert_file(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not readable as PEM: {e}", path.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "{} holds no certificate (expected PEM `-----BEGIN CERTIFICATE-----` blocks)",
            path.display()
        ));
    }
    Ok(chain)
}

/// The client's private key (PKCS#8, PKCS#1 or SEC1 PEM), refused as libpq refuses it when
/// others may read it; the error names the file and the fix, never the key.
fn key_file(path: &std::path::Path) -> Result<PrivateKeyDer<'static>, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a file", path.display()));
    }
    key_mode_allowed(path, &meta)?;
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| {
        format!(
            "{} holds no private key (expected a PEM `PRIVATE KEY` block)",
            path.display()
        )
    })
}

/// libpq's rule for the key file's mode: owned by this user, 0600 or less; owned by root,
/// 0640 or less (a key shared with a group through root's ownership).
#[cfg(unix)]
fn key_mode_allowed(path: &std::path::Path, meta: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let mode = meta.mode() & 0o777;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let too_open =
        (meta.uid() == euid && mode & 0o077 != 0) || (meta.uid() == 0 && mode & 0o037 != 0);
    if too_open {
        return Err(format!(
            "{} has mode {mode:04o}: a private key must be readable by its owner only (chmod 600; \
             0640 when owned by root), as libpq requires",
            path.display()
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn key_mode_allowed(_path: &std::path::Path, _meta: &std::fs::Metadata) -> Result<(), String> {
    Ok(())
}

/// The bundled webpki roots and the system's store (outbound TLS's defaults).
fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let found = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(found.certs);
    roots
}

/// The certificate is whatever the server shows (`prefer`/`require`): the connection is
/// encrypted, and the handshake's signatures are still checked against that certificate.
#[derive(Debug)]
struct AnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// webpki's chain check; for verify-ca without the name check (the certificate need not name
/// the host, as in libpq).
#[derive(Debug)]
struct Chained {
    webpki: Arc<WebPkiServerVerifier>,
    check_name: bool,
}

impl ServerCertVerifier for Chained {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        match self
            .webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// A connection error said plainly: a refused server certificate names TLS verification and the
/// settings that decide it; a server without TLS names `sslmode`. None: not a TLS matter.
pub fn explain(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    if let Some(rustls::Error::AlertReceived(alert)) =
        crate::tls_errors::find_certificate_error(err)
    {
        return Some(format!(
            "the PostgreSQL server ended the TLS handshake ({alert:?}), as it does when it refuses \
             the client certificate; check sslcert and sslkey in the store URL (a certificate the \
             server's ssl_ca_file trusts)"
        ));
    }
    if let Some(e) = crate::tls_errors::find_certificate_error(err) {
        return Some(format!(
            "TLS verification of the PostgreSQL server's certificate failed ({e}); check sslrootcert (the CA that signed it) and sslmode in the store URL"
        ));
    }
    // tokio-postgres says "error performing TLS handshake" and keeps the reason as the source.
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    let mut refused = false;
    let mut wants_cert = false;
    while let Some(e) = cur {
        let said = e.to_string();
        refused |= said.contains("server does not support TLS");
        wants_cert |= said.contains("requires a valid client certificate");
        cur = e.source();
    }
    if wants_cert {
        return Some(
            "the PostgreSQL server requires a client certificate for this user and database; \
             name it with sslcert and sslkey in the store URL"
                .into(),
        );
    }
    if refused {
        return Some(
            "the PostgreSQL server does not support TLS, but the store URL's sslmode requires it (turn on ssl in the server, or set sslmode=prefer or disable)".into(),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_mode_is_prefer_and_unknown_parameters_stay_in_the_url() {
        let (url, s) = split_url("postgres://u:pw@db:5432/x?application_name=a").unwrap();
        assert_eq!(
            url,
            "postgres://u:pw@db:5432/x?application_name=a&sslmode=prefer"
        );
        assert_eq!(s.mode, SslMode::Prefer);
        assert_eq!(s.check(), Check::None);
        let (url, _) = split_url("postgres://u@db/x").unwrap();
        assert_eq!(url, "postgres://u@db/x?sslmode=prefer");
    }

    #[test]
    fn verify_modes_reach_tokio_postgres_as_require_and_sslrootcert_is_taken_out() {
        let (url, s) =
            split_url("postgres://u@db/x?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem").unwrap();
        assert_eq!(url, "postgres://u@db/x?sslmode=require");
        assert_eq!(s.mode, SslMode::VerifyFull);
        assert_eq!(s.root_cert, Some(RootCert::File("/etc/ca.pem".into())));
        assert_eq!(s.check(), Check::Full);
        let (_, s) = split_url("postgres://u@db/x?sslmode=verify-ca&sslrootcert=system").unwrap();
        assert_eq!(
            (s.check(), s.root_cert),
            (Check::Ca, Some(RootCert::System))
        );
        let (url, s) = split_url("postgres://u@db/x?sslmode=disable").unwrap();
        assert_eq!(url, "postgres://u@db/x?sslmode=disable");
        assert_eq!(s.check(), Check::None);
    }

    #[test]
    fn require_with_a_ca_file_checks_the_chain_as_libpq_does() {
        let (_, s) = split_url("postgres://u@db/x?sslmode=require&sslrootcert=/ca.pem").unwrap();
        assert_eq!(s.check(), Check::Ca);
        let (_, s) = split_url("postgres://u@db/x?sslmode=require").unwrap();
        assert_eq!(s.check(), Check::None);
    }

    #[test]
    fn a_bad_mode_or_an_empty_root_cert_is_refused_without_the_password() {
        let e = split_url("postgres://u:canary-pw@db/x?sslmode=verify-everything").unwrap_err();
        assert!(
            e.contains("verify-everything") && e.contains("verify-full"),
            "{e}"
        );
        assert!(!e.contains("canary-pw"), "{e}");
        let e = split_url("postgres://u:canary-pw@db/x?sslrootcert=").unwrap_err();
        assert!(e.contains("sslrootcert"), "{e}");
        assert!(!e.contains("canary-pw"), "{e}");
    }

    #[test]
    fn a_client_certificate_needs_both_files_and_tls() {
        let (url, s) =
            split_url("postgres://u:canary-pw@db/x?sslmode=require&sslcert=/c.pem&sslkey=/k.pem")
                .unwrap();
        assert_eq!(url, "postgres://u:canary-pw@db/x?sslmode=require");
        assert_eq!(s.client_cert, Some(("/c.pem".into(), "/k.pem".into())));
        let e = split_url("postgres://u:canary-pw@db/x?sslcert=/c.pem").unwrap_err();
        assert!(
            e.contains("sslcert and sslkey") && !e.contains("canary-pw"),
            "{e}"
        );
        let e = split_url("postgres://u@db/x?sslmode=disable&sslcert=/c.pem&sslkey=/k.pem")
            .unwrap_err();
        assert!(e.contains("sslmode=disable"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn a_client_key_others_may_read_is_refused_as_libpq_refuses_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("client.key");
        std::fs::write(&key, "not read before the mode is checked").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = key_file(&key).unwrap_err();
        assert!(
            e.contains("client.key") && e.contains("0644") && e.contains("chmod 600"),
            "{e}"
        );
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = key_file(&key).unwrap_err();
        assert!(e.contains("holds no private key"), "{e}");
        assert!(
            !e.contains("not read before"),
            "the key's text is never shown: {e}"
        );
    }

    #[test]
    fn a_missing_ca_file_is_named_when_the_connector_is_built() {
        let (_, s) =
            split_url("postgres://u@db/x?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem")
                .unwrap();
        let e = match s.connector() {
            Ok(_) => panic!("no such file"),
            Err(e) => e,
        };
        assert!(
            e.contains("sslrootcert") && e.contains("/nonexistent/ca.pem"),
            "{e}"
        );
        // Encryption-only modes need no CA.
        let (_, s) = split_url("postgres://u@db/x?sslmode=require").unwrap();
        assert!(s.connector().is_ok());
    }
}
