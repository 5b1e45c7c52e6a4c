//! Microsoft Entra groups overage: a JWT carries at most 200 groups; for a person in more,
//! Entra leaves `groups` out and says so with `_claim_names: {"groups": "src1"}` (and
//! `_claim_sources`) or, from the implicit flow, `hasgroups: true`. The full list is then asked
//! of Microsoft Graph with an application credential (`POST /v1.0/users/{oid}/getMemberObjects`,
//! transitive, every group kind) when `[oauth.groups_overage]` is configured, and kept for
//! `cache_ttl` per person. Without it, or when Graph fails, the person gets no group identities
//! (fail closed: never a wrong group), and a warning says why.
//!
//! The URL in `_claim_sources` is never followed: it is Azure AD Graph's (retired), and a token
//! must not choose where Airlock sends its credential.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use http::header;
use serde_json::{Value, json};

use super::ttl_cache::TtlCache;
use crate::app::Airlock;
use crate::capabilities::oauth_exchange::send;
use crate::config::GroupsOverage;

/// Refetch the app token this long before it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(120);
/// At most this many people's groups are kept (the oldest go first).
const MAX_CACHED: usize = 10_000;

/// Whether the token's groups did not fit in it (an overage), rather than the person having none.
pub fn overage(claims: &Value, groups_claim: &str) -> bool {
    claims.get(groups_claim).is_none()
        && (claims["_claim_names"].get(groups_claim).is_some() || claims["hasgroups"] == true)
}

/// An Entra object id (a GUID): nothing else goes into the Graph URL.
fn object_id(claims: &Value) -> Option<&str> {
    claims["oid"]
        .as_str()
        .filter(|s| s.len() == 36 && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-'))
}

/// Resolved groups by (Graph URL, object id).
static GROUPS: LazyLock<TtlCache<(String, String), Vec<String>>> =
    LazyLock::new(|| TtlCache::new(MAX_CACHED));
/// The app token and until when it is used, by (token URL, client id).
static APP_TOKENS: LazyLock<tokio::sync::Mutex<AppTokens>> = LazyLock::new(Default::default);

/// The application token and until when it is used, by (token URL, client id).
type AppTokens = HashMap<(String, String), (String, Instant)>;

/// The groups of the person the claims name, for a token with an overage: from Graph when
/// configured, else none. `who` names the person in the warning.
pub async fn resolve(
    a: &Airlock,
    cfg: Option<&GroupsOverage>,
    claims: &Value,
    who: &str,
) -> Vec<String> {
    let Some(cfg) = cfg else {
        tracing::warn!(
            person = who,
            "the access token's groups did not fit in it (Microsoft Entra groups overage) and no [oauth.groups_overage] is configured: the person gets no group identities"
        );
        return Vec::new();
    };
    let Some(oid) = object_id(claims) else {
        tracing::warn!(
            person = who,
            "the access token has a groups overage but no object id (`oid`) to look the groups up by: the person gets no group identities"
        );
        return Vec::new();
    };
    let key = (cfg.graph_url.clone(), oid.to_string());
    // A failed lookup is not kept: the next request asks again.
    let lookup = || async {
        match member_objects(a, cfg, oid).await {
            Ok(groups) => (groups, cfg.cache_ttl),
            Err(e) => {
                tracing::warn!(
                    person = who,
                    "the access token's groups did not fit in it (Microsoft Entra groups overage) and Microsoft Graph could not list them ({e}): the person gets no group identities"
                );
                (Vec::new(), Duration::ZERO)
            }
        }
    };
    GROUPS.get_or_lookup(key, cfg.cache_ttl, lookup).await.0
}

/// `POST {graph}/v1.0/users/{oid}/getMemberObjects`: every group (and directory role) the
/// person is in, transitively.
async fn member_objects(
    a: &Airlock,
    cfg: &GroupsOverage,
    oid: &str,
) -> Result<Vec<String>, String> {
    let token = app_token(a, cfg).await?;
    let url = format!("{}/v1.0/users/{oid}/getMemberObjects", cfg.graph_url);
    let req = http::Request::post(&url)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json")
        .body(
            json!({"securityEnabledOnly": false})
                .to_string()
                .into_bytes(),
        )
        .map_err(|e| format!("cannot build the Graph request: {e}"))?;
    let resp = send(a.net().client(cfg.allow_private), req).await?;
    if !resp.status().is_success() {
        if resp.status() == http::StatusCode::UNAUTHORIZED {
            APP_TOKENS
                .lock()
                .await
                .remove(&(cfg.token_url.clone(), cfg.client_id.clone()));
        }
        return Err(format!("getMemberObjects answered {}", resp.status()));
    }
    let v: Value = serde_json::from_slice(resp.body())
        .map_err(|_| "getMemberObjects did not answer JSON".to_string())?;
    let ids = v["value"]
        .as_array()
        .ok_or("getMemberObjects answered no `value` list")?;
    Ok(ids
        .iter()
        .filter_map(|x| x.as_str().map(str::to_string))
        .collect())
}

/// The application's Graph token (client credentials), kept until shortly before it expires.
async fn app_token(a: &Airlock, cfg: &GroupsOverage) -> Result<String, String> {
    let key = (cfg.token_url.clone(), cfg.client_id.clone());
    let mut map = APP_TOKENS.lock().await;
    if let Some((t, until)) = map.get(&key)
        && Instant::now() < *until
    {
        return Ok(t.clone());
    }
    let secret = a
        .resolve_secret(&cfg.client_secret)
        .await
        .map_err(|e| format!("oauth.groups_overage.client_secret: {e}"))?;
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("client_id", &cfg.client_id)
        .append_pair("client_secret", &secret)
        .append_pair("scope", &cfg.scope)
        .finish();
    let req = http::Request::post(&cfg.token_url)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json")
        .body(body.into_bytes())
        .map_err(|e| format!("cannot build the token request: {e}"))?;
    let resp = send(a.net().client(cfg.allow_private), req).await?;
    let v: Value = serde_json::from_slice(resp.body()).unwrap_or(Value::Null);
    if !resp.status().is_success() {
        // The error code only: descriptions may echo what was sent.
        let code = v["error"].as_str().unwrap_or("no error code");
        return Err(format!(
            "the token endpoint refused the application credential ({} {code})",
            resp.status()
        ));
    }
    let token = v["access_token"]
        .as_str()
        .ok_or("the token endpoint answered no access_token")?
        .to_string();
    a.scrubber.add(&token);
    let life = Duration::from_secs(v["expires_in"].as_u64().unwrap_or(300));
    let until = Instant::now() + life.saturating_sub(TOKEN_MARGIN.min(life / 2));
    map.insert(key, (token.clone(), until));
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overage_is_told_apart_from_a_person_without_groups() {
        let over = json!({"_claim_names": {"groups": "src1"},
            "_claim_sources": {"src1": {"endpoint": "https://graph.windows.net/t/users/o/getMemberObjects"}}});
        assert!(overage(&over, "groups"));
        assert!(overage(&json!({"hasgroups": true}), "groups"));
        assert!(!overage(&json!({"groups": []}), "groups"));
        assert!(!overage(&json!({"sub": "x"}), "groups"));
        // Groups present win over a stray marker.
        assert!(!overage(
            &json!({"groups": ["g"], "hasgroups": true}),
            "groups"
        ));
        assert!(!overage(
            &json!({"_claim_names": {"roles": "src1"}}),
            "groups"
        ));
    }

    #[test]
    fn only_a_guid_object_id_goes_into_the_graph_url() {
        let good = json!({"oid": "6e1a2b3c-0000-4d5e-8f90-1a2b3c4d5e6f"});
        assert_eq!(
            object_id(&good),
            Some("6e1a2b3c-0000-4d5e-8f90-1a2b3c4d5e6f")
        );
        for bad in [
            "../../me/x",
            "6e1a2b3c-0000-4d5e-8f90-1a2b3c4d5e6f/../x",
            "",
        ] {
            assert_eq!(object_id(&json!({"oid": bad})), None, "{bad}");
        }
        assert_eq!(object_id(&json!({})), None);
    }
}
