//! `[store]`: which database holds the store. Unset, it is the SQLite file in the data directory
//! (no setup); `url = "postgres://…"` (or the `AIRLOCK_STORE_URL` environment variable) names a
//! PostgreSQL database that several daemons share.

use serde::Deserialize;

/// The validated `[store]` section.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct StoreConfig {
    /// A PostgreSQL URL; None: the SQLite file in the data directory.
    pub url: Option<String>,
}

// The URL may carry a password: never print it.
impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field(
                "url",
                &self.url.as_deref().map(crate::store::pg::redact_url),
            )
            .finish()
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    url: Option<String>,
}

pub(super) fn build(raw: &RawStore) -> Result<StoreConfig, String> {
    match raw.url.as_deref() {
        None => Ok(StoreConfig::default()),
        Some(url) => parse_url("store.url", url).map(|url| StoreConfig { url }),
    }
}

/// Checks a store URL: `postgres://` or `postgresql://` (a PostgreSQL database), or
/// `sqlite:` / empty (the data directory's file). Messages never show a password.
pub fn parse_url(what: &str, url: &str) -> Result<Option<String>, String> {
    let url = url.trim();
    if url.is_empty() || url == "sqlite:" || url == "sqlite://" {
        return Ok(None);
    }
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("postgres" | "postgresql") => {
            // A wrong sslmode is a config error now, not a failed connection later.
            crate::store::pg::tls::split_url(url).map_err(|e| format!("{what}: {e}"))?;
            Ok(Some(url.to_string()))
        }
        _ => Err(format!(
            "{what}: `{}` is not a store URL; use postgres://USER@HOST:PORT/DATABASE for PostgreSQL, or leave it out for the SQLite file in the data directory",
            crate::store::pg::redact_url(url)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_postgres_url_is_kept_and_anything_else_is_refused_without_its_password() {
        let ok = build(&RawStore {
            url: Some("postgres://a:pw@db:5432/airlock".into()),
        })
        .unwrap();
        assert_eq!(ok.url.as_deref(), Some("postgres://a:pw@db:5432/airlock"));
        assert!(!format!("{ok:?}").contains("pw@"), "{ok:?}");
        assert_eq!(build(&RawStore::default()).unwrap(), StoreConfig::default());
        let err = build(&RawStore {
            url: Some("mysql://a:hunter2@db/x".into()),
        })
        .unwrap_err();
        assert!(err.contains("store.url"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn an_unknown_sslmode_is_a_config_error_without_the_password() {
        let err = build(&RawStore {
            url: Some("postgres://a:hunter2@db/airlock?sslmode=verify_full".into()),
        })
        .unwrap_err();
        assert!(
            err.contains("store.url") && err.contains("sslmode"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
        let ok = build(&RawStore {
            url: Some("postgres://a@db/airlock?sslmode=verify-full&sslrootcert=/ca.pem".into()),
        });
        assert!(ok.is_ok());
    }
}
