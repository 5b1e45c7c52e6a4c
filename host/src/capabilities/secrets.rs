//! Resolves `secret:`, `env:` and `file:` references to values, registering every value with the
//! scrubber. Errors name the reference, never the value.

use std::collections::HashMap;

use rusqlite::Connection;

use super::grant::{Grant, SecretRef};
use crate::scrub::Scrubber;
use crate::store::backend::Store;
use crate::store::vault::Vault;

/// Finds a vault secret's value by name (None when there is no such secret). Resolution takes
/// the vault as a lookup so it works alike on either store backend.
pub type VaultLookup<'a> = &'a dyn Fn(&str) -> anyhow::Result<Option<String>>;

/// A lookup into the SQLite vault through one connection.
pub fn sqlite_vault<'a>(
    vault: &'a Vault,
    conn: &'a Connection,
) -> impl Fn(&str) -> anyhow::Result<Option<String>> + 'a {
    move |name| vault.get(conn, name)
}

/// The vault values `refs` name, read from the store ahead of resolution (the store may be
/// remote and async; resolution itself is not). Failed reads keep their error for the lookup.
pub async fn prefetch_vault<'a>(
    store: &Store,
    vault: &Vault,
    refs: impl IntoIterator<Item = &'a SecretRef>,
) -> HashMap<String, Result<Option<String>, String>> {
    // Names first: nothing borrowed from `refs` is held across an await.
    let mut names: Vec<String> = refs
        .into_iter()
        .filter_map(|r| r.vault_name().map(str::to_string))
        .collect();
    names.sort();
    names.dedup();
    let mut out = HashMap::new();
    for name in names {
        let got = store
            .secret(vault, &name)
            .await
            .map_err(|e| format!("{e:#}"));
        out.insert(name, got);
    }
    out
}

/// A lookup into values fetched by [`prefetch_vault`].
pub fn prefetched(
    values: &HashMap<String, Result<Option<String>, String>>,
) -> impl Fn(&str) -> anyhow::Result<Option<String>> + '_ {
    |name| match values.get(name) {
        Some(Ok(v)) => Ok(v.clone()),
        Some(Err(e)) => Err(anyhow::anyhow!("{e}")),
        None => Ok(None),
    }
}

/// Resolves one reference now, reading a vault secret from the store (either backend).
pub async fn resolve_in(store: &Store, vault: &Vault, r: &SecretRef) -> Result<String, String> {
    let values = prefetch_vault(store, vault, [r]).await;
    resolve(r, &prefetched(&values))
}

/// Values of the references a set of grants needs.
#[derive(Default, Clone)]
pub struct SecretValues {
    values: HashMap<SecretRef, String>,
}

impl SecretValues {
    pub fn get(&self, r: &SecretRef) -> Option<&str> {
        self.values.get(r).map(String::as_str)
    }

    /// Every value.
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.values.values().map(String::as_str)
    }

    /// Only the values `grants` reference: what one connector keeps (a connector must never
    /// hold, or cost memory for, another tenant's secrets).
    pub fn for_grants(&self, grants: &[Grant]) -> SecretValues {
        let values = grants
            .iter()
            .flat_map(|g| g.auth.secret_refs())
            .filter_map(|r| Some((r.clone(), self.values.get(r)?.clone())))
            .collect();
        SecretValues { values }
    }
}

/// Resolves one reference.
pub fn resolve(r: &SecretRef, vault: VaultLookup<'_>) -> Result<String, String> {
    match r {
        SecretRef::Vault(name) => match vault(name) {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err(format!(
                "secret `{name}` is not in the vault (add it with `airlock secrets set {name}`)"
            )),
            Err(e) => Err(e.to_string()),
        },
        SecretRef::Env(var) => std::env::var(var)
            .map_err(|_| format!("environment variable `{var}` (from `env:{var}`) is not set")),
        SecretRef::File(path) => std::fs::read_to_string(path)
            .map(|s| s.trim_end_matches(['\r', '\n']).to_string())
            .map_err(|e| format!("cannot read secret file {}: {}", path.display(), e.kind())),
    }
}

/// Resolves every reference in `refs`, registering values with `scrubber`. Returns the values
/// found and, per reference, the error for those that could not be resolved.
pub fn resolve_all<'a>(
    refs: impl IntoIterator<Item = &'a SecretRef>,
    vault: VaultLookup<'_>,
    scrubber: &Scrubber,
) -> (SecretValues, HashMap<SecretRef, String>) {
    let mut out = SecretValues::default();
    let mut errors = HashMap::new();
    for r in refs {
        if out.values.contains_key(r) || errors.contains_key(r) {
            continue;
        }
        match resolve(r, vault) {
            Ok(v) => {
                if v.is_empty() {
                    errors.insert(r.clone(), format!("{r} is empty"));
                    continue;
                }
                // The scrubber cannot tell a value this short from ordinary text, so it could
                // never keep it out of logs: refuse it rather than use it unprotected.
                if v.chars().count() < crate::scrub::MIN_SECRET_LEN {
                    errors.insert(
                        r.clone(),
                        format!(
                            "{r} is shorter than {} characters, the minimum for any secret (too short to keep out of logs)",
                            crate::scrub::MIN_SECRET_LEN
                        ),
                    );
                    continue;
                }
                out.values.insert(r.clone(), v);
            }
            Err(e) => {
                errors.insert(r.clone(), e);
            }
        }
    }
    // One registration for all values (a start with thousands of tenants rebuilds the matcher
    // once), before any error text is let out.
    scrubber.add_all(out.values.values().map(String::as_str));
    for e in errors.values_mut() {
        *e = scrubber.scrub(e);
    }
    (out, errors)
}

/// The value for the `secret(name)` import: only a vault secret that one of the connector's
/// grants references with `reveal = true`; every other name is refused with the reason.
pub fn revealable(
    connector: &str,
    grants: &[Grant],
    secrets: &SecretValues,
    name: &str,
) -> Result<String, String> {
    let mut referenced = false;
    for g in grants {
        for r in g.auth.secret_refs() {
            if r.vault_name() == Some(name) {
                referenced = true;
                if g.reveal {
                    return secrets
                        .get(r)
                        .map(str::to_string)
                        .ok_or_else(|| format!("secret `{name}` could not be resolved"));
                }
            }
        }
    }
    Err(if referenced {
        format!("secret `{name}` is not revealable: its grant does not set reveal = true")
    } else {
        format!("secret `{name}` is not referenced by any grant of connector `{connector}`")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_and_file_secrets_shorter_than_the_minimum_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = crate::store::open(dir.path()).expect("store");
        let vault = Vault::open(dir.path()).expect("vault");
        let short = dir.path().join("short");
        std::fs::write(&short, "abc12\n").expect("write");
        let long = dir.path().join("long");
        std::fs::write(&long, "abcdef-long-enough\n").expect("write");
        let refs = [
            SecretRef::File(short.clone()),
            SecretRef::File(long.clone()),
        ];
        let scrubber = Scrubber::new();
        let (values, errors) = resolve_all(refs.iter(), &sqlite_vault(&vault, &conn), &scrubber);
        let e = &errors[&SecretRef::File(short)];
        assert!(e.contains("shorter than 6 characters"), "{e}");
        assert!(!e.contains("abc12"), "the error never names the value: {e}");
        assert_eq!(
            values.get(&SecretRef::File(long)),
            Some("abcdef-long-enough")
        );
        assert_eq!(scrubber.scrub("x abcdef-long-enough y"), "x [REDACTED] y");
    }
}
