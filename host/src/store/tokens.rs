//! API tokens: a bearer token names a principal (with its tenant, groups and whether it is an
//! admin). Only the SHA-256 of a token is stored: tokens are 32 random bytes from the OS CSPRNG,
//! so a fast hash is enough (there is nothing to brute-force), and a lookup by hash needs no
//! constant-time comparison of secrets (the token itself is never compared).

use rand::RngCore as _;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Every token starts with this, so scanners and people recognise one.
pub const TOKEN_PREFIX: &str = "alk_";

/// The principal a valid token stands for.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Principal {
    /// The token's id (not secret; `tokens list` and `tokens revoke` use it).
    pub token_id: String,
    pub name: String,
    pub tenant: String,
    pub groups: Vec<String>,
    pub admin: bool,
    /// Connectors whose grants the token may send its own requests through (the `proxy` scope).
    pub proxy: Vec<String>,
    /// What an OAuth access token may do (`search`, `read`, `actions`, `writes`); None for API
    /// tokens, which are bounded by `admin` and `proxy` alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
}

/// The email a principal name is, when it is one (an OAuth principal's email or UPN, or a token
/// named after a person); lower-cased. A namespaced name (`user:…`) is none.
pub fn name_email(name: &str) -> Option<String> {
    let n = name.trim();
    (n.contains('@') && !n.contains(':')).then(|| n.to_lowercase())
}

impl Principal {
    /// How audit rows and approvals name who asked: `token:NAME` for an API token,
    /// `oauth:NAME` (the person's email or UPN) for an OAuth access token.
    pub fn label(&self) -> String {
        match self.scopes {
            Some(_) => format!("oauth:{}", self.name),
            None => format!("token:{}", self.name),
        }
    }

    /// Whether an OAuth access token carries `scope` (API tokens carry them all).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes
            .as_ref()
            .is_none_or(|s| s.iter().any(|x| x == scope))
    }

    /// Whether the token has the `proxy` scope for `connector`.
    pub fn may_proxy(&self, connector: &str) -> bool {
        self.proxy.iter().any(|c| c == connector)
    }
}

/// A token as `tokens list` shows it: never the token itself.
#[derive(Debug, Clone, Serialize)]
pub struct TokenInfo {
    pub id: String,
    pub principal: String,
    pub tenant: String,
    pub groups: Vec<String>,
    pub admin: bool,
    /// The `proxy` scope: connectors the token may send its own requests through.
    pub proxy: Vec<String>,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

/// Validates a principal, tenant or group name: 1..=128 characters of letters, digits and
/// `-_.@:`, so names are unambiguous in lists and ACLs.
pub fn validate_name(what: &str, s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | ':'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} `{s}` is not valid (1 to 128 letters, digits, '-', '_', '.', '@' or ':')"
        ))
    }
}

/// The stored form of a token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn new_token() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// Creates a token and returns (its info, the token). The token is not stored: show it once.
pub fn create(
    conn: &mut Connection,
    principal: &str,
    tenant: &str,
    groups: &[String],
    admin: bool,
) -> anyhow::Result<(TokenInfo, String)> {
    create_scoped(conn, principal, tenant, groups, admin, &[])
}

/// [`create`], with the `proxy` scope for the connectors in `proxy`.
pub fn create_scoped(
    conn: &mut Connection,
    principal: &str,
    tenant: &str,
    groups: &[String],
    admin: bool,
    proxy: &[String],
) -> anyhow::Result<(TokenInfo, String)> {
    let (info, token) = prepare(principal, tenant, groups, admin, proxy)?;
    insert(conn, &info, &hash_token(&token))?;
    Ok((info, token))
}

/// Checks the names and makes a new token with its info; nothing is stored yet.
pub fn prepare(
    principal: &str,
    tenant: &str,
    groups: &[String],
    admin: bool,
    proxy: &[String],
) -> anyhow::Result<(TokenInfo, String)> {
    validate_name("principal", principal).map_err(anyhow::Error::msg)?;
    validate_name("tenant", tenant).map_err(anyhow::Error::msg)?;
    for g in groups {
        validate_name("group", g).map_err(anyhow::Error::msg)?;
    }
    for c in proxy {
        validate_name("proxy connector", c).map_err(anyhow::Error::msg)?;
    }
    let token = new_token();
    let info = TokenInfo {
        id: format!("tok_{}", ulid::Ulid::new().to_string().to_lowercase()),
        principal: principal.to_string(),
        tenant: tenant.to_string(),
        groups: groups.to_vec(),
        admin,
        proxy: proxy.to_vec(),
        created_at: super::now_rfc3339(),
        revoked_at: None,
    };
    Ok((info, token))
}

/// Stores a prepared token's info under the token's hash.
pub fn insert(conn: &mut Connection, info: &TokenInfo, hash: &str) -> anyhow::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute(
        "INSERT INTO api_tokens (id, hash, principal, tenant, groups, admin, created_at, proxy)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            info.id,
            hash,
            info.principal,
            info.tenant,
            serde_json::to_string(&info.groups)?,
            info.admin,
            info.created_at,
            serde_json::to_string(&info.proxy)?
        ],
    )?;
    tx.commit()?;
    Ok(())
}

/// The principal of a token that exists and is not revoked.
pub fn authenticate(conn: &Connection, token: &str) -> rusqlite::Result<Option<Principal>> {
    if !token.starts_with(TOKEN_PREFIX) {
        return Ok(None);
    }
    conn.prepare_cached(
        "SELECT id, principal, tenant, groups, admin, proxy FROM api_tokens
         WHERE hash = ?1 AND revoked_at IS NULL",
    )?
    .query_row([hash_token(token)], |r| {
        let (groups, proxy): (String, String) = (r.get(3)?, r.get(5)?);
        Ok(Principal {
            token_id: r.get(0)?,
            name: r.get(1)?,
            tenant: r.get(2)?,
            groups: serde_json::from_str(&groups).unwrap_or_default(),
            admin: r.get(4)?,
            // Unreadable scope: none (fail closed).
            proxy: serde_json::from_str(&proxy).unwrap_or_default(),
            scopes: None,
        })
    })
    .optional()
}

/// Every token, oldest first (revoked ones included, marked).
pub fn list(conn: &Connection) -> rusqlite::Result<Vec<TokenInfo>> {
    let mut stmt = conn.prepare(
        "SELECT id, principal, tenant, groups, admin, created_at, revoked_at, proxy
         FROM api_tokens ORDER BY created_at, id",
    )?;
    let rows = stmt.query_map([], |r| {
        let (groups, proxy): (String, String) = (r.get(3)?, r.get(7)?);
        Ok(TokenInfo {
            id: r.get(0)?,
            principal: r.get(1)?,
            tenant: r.get(2)?,
            groups: serde_json::from_str(&groups).unwrap_or_default(),
            admin: r.get(4)?,
            proxy: serde_json::from_str(&proxy).unwrap_or_default(),
            created_at: r.get(5)?,
            revoked_at: r.get(6)?,
        })
    })?;
    rows.collect()
}

/// Revokes the token with this id, or else every live token of the principal with this name.
/// Returns the ids revoked (empty: nothing matched).
pub fn revoke(conn: &mut Connection, id_or_principal: &str) -> rusqlite::Result<Vec<String>> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let ids: Vec<String> = {
        let mut stmt = tx.prepare(
            "SELECT id FROM api_tokens WHERE revoked_at IS NULL AND
             (id = ?1 OR (principal = ?1 AND NOT EXISTS (SELECT 1 FROM api_tokens WHERE id = ?1)))",
        )?;
        stmt.query_map([id_or_principal], |r| r.get(0))?
            .collect::<Result<_, _>>()?
    };
    let now = super::now_rfc3339();
    for id in &ids {
        tx.execute(
            "UPDATE api_tokens SET revoked_at = ?2 WHERE id = ?1",
            params![id, now],
        )?;
    }
    tx.commit()?;
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_token_authenticates_until_revoked_and_is_stored_only_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = crate::store::open(dir.path()).unwrap();
        let (info, token) = create(&mut c, "alice", "acme", &["ops".into()], false).unwrap();
        assert!(token.starts_with(TOKEN_PREFIX) && token.len() > 40);
        let p = authenticate(&c, &token).unwrap().unwrap();
        assert_eq!(
            (p.name.as_str(), p.tenant.as_str(), p.admin),
            ("alice", "acme", false)
        );
        assert_eq!(p.groups, vec!["ops".to_string()]);
        assert!(
            p.proxy.is_empty() && !p.may_proxy("atera"),
            "no proxy scope by default"
        );
        let (_, scoped) =
            create_scoped(&mut c, "svc", "acme", &[], false, &["atera".into()]).unwrap();
        let s = authenticate(&c, &scoped).unwrap().unwrap();
        assert!(s.may_proxy("atera") && !s.may_proxy("zendesk"));
        assert!(create_scoped(&mut c, "svc", "acme", &[], false, &["a/b".into()]).is_err());
        let stored: String = c
            .query_row("SELECT hash FROM api_tokens", [], |r| r.get(0))
            .unwrap();
        assert_ne!(stored, token);
        assert!(authenticate(&c, "alk_wrong").unwrap().is_none());
        assert_eq!(revoke(&mut c, &info.id).unwrap(), vec![info.id.clone()]);
        assert!(authenticate(&c, &token).unwrap().is_none());
        let all = list(&c).unwrap();
        let by = |name: &str| all.iter().find(|t| t.principal == name).unwrap();
        assert!(by("alice").revoked_at.is_some());
        assert_eq!(by("svc").proxy, vec!["atera".to_string()]);
    }

    #[test]
    fn revoking_by_principal_revokes_all_of_its_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = crate::store::open(dir.path()).unwrap();
        let (_, t1) = create(&mut c, "bob", "default", &[], true).unwrap();
        let (_, t2) = create(&mut c, "bob", "default", &[], false).unwrap();
        let (_, t3) = create(&mut c, "carol", "default", &[], false).unwrap();
        assert_eq!(revoke(&mut c, "bob").unwrap().len(), 2);
        assert!(authenticate(&c, &t1).unwrap().is_none());
        assert!(authenticate(&c, &t2).unwrap().is_none());
        assert!(authenticate(&c, &t3).unwrap().is_some());
        assert!(revoke(&mut c, "nobody").unwrap().is_empty());
    }

    #[test]
    fn names_with_spaces_or_commas_are_rejected() {
        assert!(validate_name("group", "a,b").is_err());
        assert!(validate_name("principal", "").is_err());
        assert!(validate_name("principal", "alice@example.com").is_ok());
    }
}
