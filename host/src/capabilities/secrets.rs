//! Resolves `secret:`, `env:` and `file:` references to values, registering every value with the
//! scrubber. Errors name the reference, never the value.

use std::collections::HashMap;

use rusqlite::Connection;

use crate::config::SecretRef;
use crate::scrub::Scrubber;
use crate::store::vault::Vault;

/// Values of the references a set of grants needs.
#[derive(Default, Clone)]
pub struct SecretValues {
    values: HashMap<SecretRef, String>,
}

impl SecretValues {
    pub fn get(&self, r: &SecretRef) -> Option<&str> {
        self.values.get(r).map(String::as_str)
    }
}

/// Resolves one reference.
pub fn resolve(r: &SecretRef, vault: &Vault, conn: &Connection) -> Result<String, String> {
    match r {
        SecretRef::Vault(name) => match vault.get(conn, name) {
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
    vault: &Vault,
    conn: &Connection,
    scrubber: &Scrubber,
) -> (SecretValues, HashMap<SecretRef, String>) {
    let mut out = SecretValues::default();
    let mut errors = HashMap::new();
    for r in refs {
        if out.values.contains_key(r) || errors.contains_key(r) {
            continue;
        }
        match resolve(r, vault, conn) {
            Ok(v) => {
                if v.is_empty() {
                    errors.insert(r.clone(), format!("{r} is empty"));
                    continue;
                }
                scrubber.add(&v);
                out.values.insert(r.clone(), v);
            }
            Err(e) => {
                errors.insert(r.clone(), scrubber.scrub(&e));
            }
        }
    }
    (out, errors)
}
