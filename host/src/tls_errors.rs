//! Finding the TLS (rustls) error inside a connection error, wherever a client library wrapped
//! it: the outbound gate and the PostgreSQL store both name a refused certificate as such.

/// The rustls error inside `err`, if any. hyper-rustls and tokio-postgres wrap tokio-rustls's
/// `io::Error` in layers of their own, and an `io::Error`'s `source` skips the error it carries,
/// so each layer is looked inside as well as followed.
pub fn find_certificate_error<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        cur = match e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rustls_error_is_found_inside_io_errors() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let wrapped = std::io::Error::other(std::io::Error::other(tls));
        assert!(matches!(
            find_certificate_error(&wrapped),
            Some(rustls::Error::InvalidCertificate(_))
        ));
        let plain = std::io::Error::other("refused");
        assert!(find_certificate_error(&plain).is_none());
    }
}
