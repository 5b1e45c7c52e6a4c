//! What Airlock's own OAuth authorization server keeps: dynamically registered clients (RFC
//! 7591), grants, one-time authorization codes and refresh tokens. A grant is one sign-in of one
//! person (an API token) for one client; its refresh tokens form a family: each use rotates the
//! token, and presenting a rotated one again revokes the whole grant (it was copied). A grant
//! lives only while the API token it was signed in with does. Codes and refresh tokens are
//! stored as SHA-256 digests (32 random bytes each: nothing to brute-force), like API tokens.

use rand::RngCore as _;
use rusqlite::{Connection, OptionalExtension, params};

use super::tokens::{Principal, hash_token};

/// Refresh tokens start with this (and codes with [`CODE_PREFIX`]), so people and scanners
/// recognise them.
pub const REFRESH_PREFIX: &str = "alr_";
pub const CODE_PREFIX: &str = "alc_";

/// A new secret: the prefix and 32 random bytes, base64url.
pub fn new_secret(prefix: &str) -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A dynamically registered client.
#[derive(Debug, Clone, PartialEq)]
pub struct Client {
    pub id: String,
    pub name: Option<String>,
    pub redirect_uris: Vec<String>,
}

/// Registers a public client and returns it with its new id.
pub fn register_client(
    conn: &Connection,
    name: Option<&str>,
    redirect_uris: &[String],
) -> anyhow::Result<Client> {
    let c = Client {
        id: format!("dcr_{}", ulid::Ulid::new().to_string().to_lowercase()),
        name: name.map(str::to_string),
        redirect_uris: redirect_uris.to_vec(),
    };
    conn.execute(
        "INSERT INTO oauth_clients (id, name, redirect_uris, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![
            c.id,
            c.name,
            serde_json::to_string(&c.redirect_uris)?,
            super::now_rfc3339()
        ],
    )?;
    Ok(c)
}

/// How many clients are registered.
pub fn client_count(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT COUNT(*) FROM oauth_clients", [], |r| r.get(0))
}

/// A registered client by id.
pub fn client(conn: &Connection, id: &str) -> rusqlite::Result<Option<Client>> {
    conn.query_row(
        "SELECT id, name, redirect_uris FROM oauth_clients WHERE id = ?1",
        [id],
        |r| {
            let uris: String = r.get(2)?;
            Ok(Client {
                id: r.get(0)?,
                name: r.get(1)?,
                redirect_uris: serde_json::from_str(&uris).unwrap_or_default(),
            })
        },
    )
    .optional()
}

/// A person signed in through the company's OpenID Connect provider (no API token behind
/// them): who they are, as its id_token said at the sign-in.
#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    pub name: String,
    pub tenant: String,
    pub groups: Vec<String>,
}

/// What a person agreed to at the sign-in page.
#[derive(Debug, Clone)]
pub struct NewGrant<'a> {
    pub client_id: &'a str,
    /// The API token signed in with; empty for a person signed in upstream.
    pub api_token_id: &'a str,
    pub person: Option<&'a Person>,
    pub scopes: &'a [String],
    pub resource: &'a str,
    pub redirect_uri: &'a str,
    pub code_challenge: &'a str,
    pub code_ttl_ms: i64,
}

/// Records a grant and its one-time code; returns (grant id, code).
pub fn start_grant(conn: &mut Connection, g: &NewGrant) -> anyhow::Result<(String, String)> {
    let id = format!("grt_{}", ulid::Ulid::new().to_string().to_lowercase());
    let code = new_secret(CODE_PREFIX);
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute(
        "INSERT INTO oauth_grants (id, client_id, api_token_id, scopes, resource, created_at,
            person, person_tenant, person_groups)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            id,
            g.client_id,
            g.api_token_id,
            g.scopes.join(" "),
            g.resource,
            super::now_rfc3339(),
            g.person.map(|p| &p.name),
            g.person.map(|p| &p.tenant),
            g.person
                .map(|p| serde_json::to_string(&p.groups))
                .transpose()?,
        ],
    )?;
    tx.execute(
        "INSERT INTO oauth_codes (hash, grant_id, redirect_uri, code_challenge, expires_ms)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            hash_token(&code),
            id,
            g.redirect_uri,
            g.code_challenge,
            now_ms() + g.code_ttl_ms
        ],
    )?;
    tx.commit()?;
    Ok((id, code))
}

/// A live grant: the client, scopes and resource agreed to, and the person (from the API token,
/// which must still be live).
#[derive(Debug, Clone)]
pub struct Grant {
    pub id: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub resource: String,
    pub principal: Principal,
}

/// The query both backends read a live grant with: the grant unrevoked, and either its API
/// token live or (signed in upstream) the person it names. The principal's token id is the
/// grant's own id for a person signed in upstream.
pub const LIVE_GRANT: &str = "SELECT g.id, g.client_id, g.scopes, g.resource,
        COALESCE(t.id, g.id), COALESCE(t.principal, g.person),
        COALESCE(t.tenant, g.person_tenant), COALESCE(t.groups, g.person_groups)
     FROM oauth_grants g LEFT JOIN api_tokens t ON t.id = g.api_token_id
     WHERE g.id = $1 AND g.revoked_at IS NULL
       AND ((g.api_token_id = '' AND g.person IS NOT NULL)
            OR (t.id IS NOT NULL AND t.revoked_at IS NULL))";

/// The grant when neither it nor its API token is revoked.
pub fn live_grant(conn: &Connection, id: &str) -> rusqlite::Result<Option<Grant>> {
    conn.prepare_cached(LIVE_GRANT)?
        .query_row([id], |r| {
            let (scopes, groups): (String, String) = (r.get(2)?, r.get(7)?);
            Ok(Grant {
                id: r.get(0)?,
                client_id: r.get(1)?,
                scopes: scopes.split_whitespace().map(str::to_string).collect(),
                resource: r.get(3)?,
                principal: Principal {
                    token_id: r.get(4)?,
                    name: r.get(5)?,
                    tenant: r.get(6)?,
                    groups: serde_json::from_str(&groups).unwrap_or_default(),
                    admin: false,
                    proxy: Vec::new(),
                    scopes: Some(scopes.split_whitespace().map(str::to_string).collect()),
                },
            })
        })
        .optional()
}

/// A grant as `airlock oauth grants` lists it (never a token).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GrantInfo {
    pub id: String,
    pub client_id: String,
    /// The registered client's name (clients known by a metadata document are not stored).
    pub client_name: Option<String>,
    pub principal: Option<String>,
    pub tenant: Option<String>,
    pub api_token_id: String,
    pub scopes: Vec<String>,
    pub created_at: String,
    pub revoked_at: Option<String>,
    pub revoked_why: Option<String>,
    /// Whether the API token it was signed in with is revoked (which ends the grant too).
    pub api_token_revoked: bool,
}

/// The query both backends list grants with, newest first.
pub const LIST_GRANTS: &str = "SELECT g.id, g.client_id, c.name,
        COALESCE(t.principal, g.person), COALESCE(t.tenant, g.person_tenant),
        g.api_token_id, g.scopes, g.created_at, g.revoked_at, g.revoked_why,
        (g.person IS NULL AND (t.id IS NULL OR t.revoked_at IS NOT NULL))
     FROM oauth_grants g
     LEFT JOIN oauth_clients c ON c.id = g.client_id
     LEFT JOIN api_tokens t ON t.id = g.api_token_id
     ORDER BY g.created_at DESC, g.id DESC";

/// Every grant, newest first.
pub fn grants(conn: &Connection) -> rusqlite::Result<Vec<GrantInfo>> {
    let mut stmt = conn.prepare(LIST_GRANTS)?;
    let rows = stmt.query_map([], |r| {
        let scopes: String = r.get(6)?;
        Ok(GrantInfo {
            id: r.get(0)?,
            client_id: r.get(1)?,
            client_name: r.get(2)?,
            principal: r.get(3)?,
            tenant: r.get(4)?,
            api_token_id: r.get(5)?,
            scopes: scopes.split_whitespace().map(str::to_string).collect(),
            created_at: r.get(7)?,
            revoked_at: r.get(8)?,
            revoked_why: r.get(9)?,
            api_token_revoked: r.get::<_, Option<bool>>(10)?.unwrap_or(true),
        })
    })?;
    rows.collect()
}

/// Why a code or refresh token was not accepted (each is `invalid_grant` to the client).
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    Unknown,
    Expired,
    /// Used before: the grant is revoked now (a code or refresh token replayed is a stolen one).
    Replayed,
    /// Issued to another client.
    OtherClient,
    /// The grant or its API token was revoked.
    Revoked,
}

/// A redeemed code: its grant, and what the token request must match.
#[derive(Debug)]
pub struct Redeemed {
    pub grant: Grant,
    pub redirect_uri: String,
    pub code_challenge: String,
}

/// Uses a code once. A code presented a second time revokes its grant (RFC 6749 §4.1.2).
pub fn redeem_code(
    conn: &mut Connection,
    code: &str,
    client_id: &str,
) -> anyhow::Result<Result<Redeemed, Refused>> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let row: Option<(String, String, String, i64, Option<String>)> = tx
        .query_row(
            "SELECT grant_id, redirect_uri, code_challenge, expires_ms, used_at FROM oauth_codes
             WHERE hash = ?1",
            [hash_token(code)],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()?;
    let Some((grant_id, redirect_uri, code_challenge, expires_ms, used_at)) = row else {
        return Ok(Err(Refused::Unknown));
    };
    if used_at.is_some() {
        revoke_in(&tx, &grant_id, "authorization code replayed")?;
        tx.commit()?;
        return Ok(Err(Refused::Replayed));
    }
    tx.execute(
        "UPDATE oauth_codes SET used_at = ?2 WHERE hash = ?1",
        params![hash_token(code), super::now_rfc3339()],
    )?;
    let grant = live_grant(&tx, &grant_id)?;
    tx.commit()?;
    let outcome = match grant {
        _ if expires_ms < now_ms() => Err(Refused::Expired),
        None => Err(Refused::Revoked),
        Some(g) if g.client_id != client_id => Err(Refused::OtherClient),
        Some(grant) => Ok(Redeemed {
            grant,
            redirect_uri,
            code_challenge,
        }),
    };
    Ok(outcome)
}

/// Issues a refresh token in the grant's family.
pub fn issue_refresh(conn: &Connection, grant_id: &str, ttl_ms: i64) -> anyhow::Result<String> {
    let token = new_secret(REFRESH_PREFIX);
    conn.execute(
        "INSERT INTO oauth_refresh_tokens (hash, grant_id, expires_ms) VALUES (?1, ?2, ?3)",
        params![hash_token(&token), grant_id, now_ms() + ttl_ms],
    )?;
    Ok(token)
}

/// Rotates a refresh token: the old one is spent and a new one of the same family returned
/// with the grant. A spent one presented again revokes the grant.
pub fn rotate_refresh(
    conn: &mut Connection,
    token: &str,
    client_id: &str,
    ttl_ms: i64,
) -> anyhow::Result<Result<(Grant, String), Refused>> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let row: Option<(String, i64, Option<String>)> = tx
        .query_row(
            "SELECT grant_id, expires_ms, used_at FROM oauth_refresh_tokens WHERE hash = ?1",
            [hash_token(token)],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((grant_id, expires_ms, used_at)) = row else {
        return Ok(Err(Refused::Unknown));
    };
    let Some(grant) = live_grant(&tx, &grant_id)? else {
        return Ok(Err(Refused::Revoked));
    };
    if grant.client_id != client_id {
        return Ok(Err(Refused::OtherClient));
    }
    if used_at.is_some() {
        revoke_in(&tx, &grant_id, "rotated refresh token replayed")?;
        tx.commit()?;
        return Ok(Err(Refused::Replayed));
    }
    if expires_ms < now_ms() {
        return Ok(Err(Refused::Expired));
    }
    tx.execute(
        "UPDATE oauth_refresh_tokens SET used_at = ?2 WHERE hash = ?1",
        params![hash_token(token), super::now_rfc3339()],
    )?;
    let next = issue_refresh(&tx, &grant_id, ttl_ms)?;
    tx.commit()?;
    Ok(Ok((grant, next)))
}

/// The grant a refresh token belongs to, with its client (spent or not).
pub fn grant_of_refresh(
    conn: &Connection,
    token: &str,
) -> rusqlite::Result<Option<(String, String)>> {
    conn.query_row(
        "SELECT g.id, g.client_id FROM oauth_refresh_tokens r
         JOIN oauth_grants g ON g.id = r.grant_id WHERE r.hash = ?1",
        [hash_token(token)],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
}

/// The client a grant was made for (revoked or not).
pub fn client_of_grant(conn: &Connection, grant_id: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row(
        "SELECT client_id FROM oauth_grants WHERE id = ?1",
        [grant_id],
        |r| r.get(0),
    )
    .optional()
}

/// Revokes a grant: its refresh tokens and access tokens stop working. Returns whether a live
/// grant was revoked.
pub fn revoke_grant(conn: &Connection, grant_id: &str, why: &str) -> rusqlite::Result<bool> {
    revoke_in(conn, grant_id, why)
}

fn revoke_in(conn: &Connection, grant_id: &str, why: &str) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "UPDATE oauth_grants SET revoked_at = ?2, revoked_why = ?3
         WHERE id = ?1 AND revoked_at IS NULL",
        params![grant_id, super::now_rfc3339(), why],
    )?;
    if n > 0 {
        tracing::warn!(grant = grant_id, "OAuth grant revoked: {why}");
    }
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Connection, String) {
        let dir = tempfile::tempdir().unwrap();
        let mut c = crate::store::open(dir.path()).unwrap();
        let (info, _) =
            super::super::tokens::create(&mut c, "ada", "acme", &["eng".into()], false).unwrap();
        (dir, c, info.id)
    }

    fn grant(c: &mut Connection, token_id: &str) -> (String, String) {
        start_grant(
            c,
            &NewGrant {
                client_id: "dcr_1",
                api_token_id: token_id,
                person: None,
                scopes: &["search".into(), "read".into()],
                resource: "https://a.example/mcp",
                redirect_uri: "https://c.example/cb",
                code_challenge: "x",
                code_ttl_ms: 60_000,
            },
        )
        .unwrap()
    }

    #[test]
    fn a_code_is_used_once_and_replaying_it_revokes_the_grant() {
        let (_d, mut c, tok) = setup();
        let (id, code) = grant(&mut c, &tok);
        assert_eq!(
            redeem_code(&mut c, &code, "dcr_2").unwrap().unwrap_err(),
            Refused::OtherClient
        );
        // The other client's attempt spent it.
        assert_eq!(
            redeem_code(&mut c, &code, "dcr_1").unwrap().unwrap_err(),
            Refused::Replayed
        );
        assert!(live_grant(&c, &id).unwrap().is_none());
        let (_, code) = grant(&mut c, &tok);
        let r = redeem_code(&mut c, &code, "dcr_1").unwrap().unwrap();
        assert_eq!(r.grant.principal.name, "ada");
        assert_eq!(r.grant.scopes, ["search", "read"]);
    }

    #[test]
    fn a_person_signed_in_upstream_is_the_grants_own_principal_until_it_is_revoked() {
        let (_d, mut c, _) = setup();
        let person = Person {
            name: "bo@contoso.com".into(),
            tenant: "acme".into(),
            groups: vec!["ops".into()],
        };
        let (id, _) = start_grant(
            &mut c,
            &NewGrant {
                client_id: "dcr_1",
                api_token_id: "",
                person: Some(&person),
                scopes: &["search".into()],
                resource: "https://a.example/mcp",
                redirect_uri: "https://c.example/cb",
                code_challenge: "x",
                code_ttl_ms: 60_000,
            },
        )
        .unwrap();
        let g = live_grant(&c, &id).unwrap().expect("live");
        assert_eq!(g.principal.name, "bo@contoso.com");
        assert_eq!(g.principal.tenant, "acme");
        assert_eq!(g.principal.groups, ["ops"]);
        assert_eq!(g.principal.token_id, id);
        let listed = grants(&c).unwrap();
        assert_eq!(listed[0].principal.as_deref(), Some("bo@contoso.com"));
        assert!(!listed[0].api_token_revoked);
        assert!(revoke_grant(&c, &id, "test").unwrap());
        assert!(live_grant(&c, &id).unwrap().is_none());
    }

    #[test]
    fn refresh_tokens_rotate_and_a_replayed_one_revokes_the_family() {
        let (_d, mut c, tok) = setup();
        let (id, _) = grant(&mut c, &tok);
        let first = issue_refresh(&c, &id, 60_000).unwrap();
        let stored: String = c
            .query_row("SELECT hash FROM oauth_refresh_tokens", [], |r| r.get(0))
            .unwrap();
        assert_ne!(stored, first, "stored hashed");
        let (_, second) = rotate_refresh(&mut c, &first, "dcr_1", 60_000)
            .unwrap()
            .unwrap();
        assert_ne!(first, second);
        assert_eq!(
            rotate_refresh(&mut c, &first, "dcr_1", 60_000)
                .unwrap()
                .unwrap_err(),
            Refused::Replayed
        );
        assert_eq!(
            rotate_refresh(&mut c, &second, "dcr_1", 60_000)
                .unwrap()
                .unwrap_err(),
            Refused::Revoked,
            "the whole family"
        );
    }

    #[test]
    fn revoking_the_api_token_ends_its_grants() {
        let (_d, mut c, tok) = setup();
        let (id, _) = grant(&mut c, &tok);
        let refresh = issue_refresh(&c, &id, 60_000).unwrap();
        assert!(live_grant(&c, &id).unwrap().is_some());
        super::super::tokens::revoke(&mut c, &tok).unwrap();
        assert!(live_grant(&c, &id).unwrap().is_none());
        assert_eq!(
            rotate_refresh(&mut c, &refresh, "dcr_1", 60_000)
                .unwrap()
                .unwrap_err(),
            Refused::Revoked
        );
    }
}
