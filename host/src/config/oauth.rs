//! `[oauth]`: Airlock as an OAuth 2.0 protected resource (MCP authorization). Access tokens are
//! JWTs issued by the company's identity provider (Microsoft Entra ID or any OpenID Connect
//! provider) for this resource; Airlock checks them against the issuer's published keys (see
//! `crate::api::oauth`). Static API tokens keep working beside them.
//!
//! With `authorization_server = "self"` Airlock is also the authorization server, for small
//! installations without an identity provider (`crate::api::authorization`): people sign in with
//! their API token, and Airlock issues the access tokens it then checks the same way.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::capabilities::grant::SecretRef;

/// The scopes an access token may carry, and what each lets it do.
pub const SCOPES: &[(&str, &str)] = &[
    ("search", "search documents and follow the change feed"),
    (
        "read",
        "read documents, list connectors and their sync state",
    ),
    ("actions", "run connector actions that only read"),
    (
        "writes",
        "ask for write actions (each still waits for an approval)",
    ),
];

#[derive(Debug, Clone, PartialEq)]
pub struct OAuth {
    /// The issuer (`iss`) tokens must name, e.g. `https://login.microsoftonline.com/<tid>/v2.0`.
    pub issuer: String,
    /// This server's resource identifier: the audience (`aud`) tokens must carry (RFC 8707),
    /// e.g. `https://airlock.example.com/mcp`.
    pub resource: String,
    /// Where the issuer's keys are (default: `jwks_uri` of its OpenID configuration).
    pub jwks_url: Option<String>,
    /// The Airlock tenant the signed-in people belong to.
    pub tenant: String,
    /// Claims naming the person, first present wins.
    pub identity_claims: Vec<String>,
    /// The claim listing the person's groups (matched against document ACLs).
    pub groups_claim: String,
    /// The issuer may be reached on a private address / over plain http (tests, on-premises).
    pub allow_private: bool,
    pub allow_insecure: bool,
    /// Airlock's own authorization server (`authorization_server = "self"`); None: the
    /// company's identity provider issues the tokens.
    pub own: Option<OwnServer>,
    /// `[oauth.groups_overage]`: how a Microsoft Entra token whose groups did not fit is
    /// resolved; None: the person gets no group identities (fail closed).
    pub groups_overage: Option<GroupsOverage>,
}

/// Resolving a Microsoft Entra groups overage through Microsoft Graph with an application
/// credential (`POST /v1.0/users/{oid}/getMemberObjects`, application permission
/// `GroupMember.Read.All` or `Directory.Read.All`).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupsOverage {
    /// The client-credentials token endpoint, e.g.
    /// `https://login.microsoftonline.com/<tenant id>/oauth2/v2.0/token`.
    pub token_url: String,
    /// Graph's base URL (default `https://graph.microsoft.com`).
    pub graph_url: String,
    /// The scope asked for (default `https://graph.microsoft.com/.default`; a national cloud
    /// names its own Graph).
    pub scope: String,
    pub client_id: String,
    pub client_secret: SecretRef,
    /// How long a person's resolved groups are used before Graph is asked again.
    pub cache_ttl: Duration,
    pub allow_private: bool,
}

/// `[oauth.groups_overage]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGroupsOverage {
    token_url: String,
    graph_url: Option<String>,
    scope: Option<String>,
    client_id: String,
    client_secret: String,
    cache_ttl: Option<String>,
    #[serde(default)]
    allow_private: bool,
    #[serde(default)]
    allow_insecure: bool,
}

/// Airlock as its own authorization server.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnServer {
    /// Lifetime of the access tokens it issues (short: a revoked grant also stops them at once,
    /// but a stolen one is worth little for long).
    pub access_token_ttl: Duration,
    /// Lifetime of a refresh token (each use rotates it).
    pub refresh_token_ttl: Duration,
    /// Test and development only: a client ID metadata document may be an `http` URL on a
    /// loopback address (the spec asks for https).
    pub allow_loopback_client_ids: bool,
    /// `[oauth.upstream]`: people sign in through the company's OpenID Connect provider.
    pub upstream: Option<UpstreamSignIn>,
    /// Whether the sign-in page also takes an Airlock API token (default: yes without
    /// `[oauth.upstream]`, no with it).
    pub api_token_sign_in: bool,
}

/// Signing people in at the own authorization server through an OpenID Connect provider
/// (Microsoft Entra ID, Okta, Keycloak, …): Airlock is a confidential client of it.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamSignIn {
    /// The provider's issuer; its discovery document is at
    /// `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: SecretRef,
    /// Asked for at sign-in; always includes `openid`.
    pub scopes: Vec<String>,
    /// Claims of the id_token naming the person (first present wins).
    pub identity_claims: Vec<String>,
    /// The claim listing the person's groups.
    pub groups_claim: String,
    /// The Airlock tenant people signed in this way belong to.
    pub tenant: String,
    /// The provider's name on the sign-in button.
    pub display_name: String,
    pub allow_private: bool,
    pub allow_insecure: bool,
}

/// `[oauth.upstream]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpstream {
    issuer: String,
    client_id: String,
    client_secret: String,
    scopes: Option<Vec<String>>,
    identity_claims: Option<Vec<String>>,
    groups_claim: Option<String>,
    tenant: Option<String>,
    display_name: Option<String>,
    #[serde(default)]
    allow_private: bool,
    #[serde(default)]
    allow_insecure: bool,
}

impl OAuth {
    /// Whether Airlock issued the tokens it takes (its own authorization server).
    pub fn is_own(&self) -> bool {
        self.own.is_some()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOAuth {
    /// `"self"`: Airlock's own authorization server; absent or `"external"`: `issuer`'s.
    authorization_server: Option<String>,
    issuer: Option<String>,
    resource: String,
    jwks_url: Option<String>,
    tenant: Option<String>,
    identity_claims: Option<Vec<String>>,
    groups_claim: Option<String>,
    #[serde(default)]
    allow_private: bool,
    #[serde(default)]
    allow_insecure: bool,
    access_token_ttl: Option<String>,
    refresh_token_ttl: Option<String>,
    #[serde(default)]
    allow_loopback_client_ids: bool,
    upstream: Option<RawUpstream>,
    api_token_sign_in: Option<bool>,
    groups_overage: Option<RawGroupsOverage>,
}

pub(super) fn build(raw: RawOAuth, default_tenant: &str, base: &Path) -> Result<OAuth, String> {
    let https_or = |key: &str, v: &str| -> Result<(), String> {
        let u = url::Url::parse(v).map_err(|e| format!("oauth.{key}: not a URL ({e})"))?;
        match u.scheme() {
            "https" => Ok(()),
            "http" if raw.allow_insecure => Ok(()),
            "http" => Err(format!(
                "oauth.{key}: plain http needs allow_insecure = true (tokens and keys would travel unprotected)"
            )),
            s => Err(format!("oauth.{key}: `{s}` is not http(s)")),
        }
    };
    https_or("resource", &raw.resource)?;
    let own = match raw.authorization_server.as_deref() {
        None | Some("external")
            if raw.access_token_ttl.is_some()
                || raw.refresh_token_ttl.is_some()
                || raw.allow_loopback_client_ids
                || raw.upstream.is_some()
                || raw.api_token_sign_in.is_some() =>
        {
            return Err("oauth: access_token_ttl, refresh_token_ttl, allow_loopback_client_ids, api_token_sign_in and [oauth.upstream] need authorization_server = \"self\"".into());
        }
        None | Some("external") => None,
        Some("self") => Some(own_server(&raw, default_tenant, base)?),
        Some(other) => {
            return Err(format!(
                "oauth.authorization_server: `{other}` is neither \"self\" nor \"external\""
            ));
        }
    };
    let issuer = match (&own, raw.issuer.clone()) {
        (None, Some(i)) => i,
        (None, None) => {
            return Err("oauth.issuer: name the identity provider's issuer, or set authorization_server = \"self\"".into());
        }
        // Our own issuer is this server's origin: its metadata is at
        // `/.well-known/oauth-authorization-server` there (RFC 8414 §3).
        (Some(_), None) => match url::Url::parse(&raw.resource) {
            Ok(u) => u.origin().ascii_serialization(),
            Err(e) => return Err(format!("oauth.resource: not a URL ({e})")),
        },
        (Some(_), Some(_)) => {
            return Err(
                "oauth.issuer: not with authorization_server = \"self\" (the issuer is the resource's origin)".into(),
            );
        }
    };
    https_or("issuer", &issuer)?;
    if let Some(j) = &raw.jwks_url {
        https_or("jwks_url", j)?;
    }
    let identity_claims = raw.identity_claims.unwrap_or_else(|| {
        ["preferred_username", "upn", "email", "sub"]
            .map(String::from)
            .to_vec()
    });
    if identity_claims.is_empty() {
        return Err("oauth.identity_claims: name at least one claim".into());
    }
    let groups_overage = match (&own, &raw.groups_overage) {
        (Some(_), Some(_)) => {
            return Err("oauth.groups_overage: for an external identity provider (Microsoft Entra ID); with authorization_server = \"self\" the groups are the API token's".into());
        }
        (None, Some(g)) => Some(groups_overage(g, base)?),
        (_, None) => None,
    };
    Ok(OAuth {
        issuer,
        resource: raw.resource,
        jwks_url: raw.jwks_url,
        tenant: raw.tenant.unwrap_or_else(|| default_tenant.to_string()),
        identity_claims,
        groups_claim: raw.groups_claim.unwrap_or_else(|| "groups".into()),
        allow_private: raw.allow_private,
        allow_insecure: raw.allow_insecure,
        own,
        groups_overage,
    })
}

fn groups_overage(raw: &RawGroupsOverage, base: &Path) -> Result<GroupsOverage, String> {
    let graph_url = raw
        .graph_url
        .clone()
        .unwrap_or_else(|| "https://graph.microsoft.com".into());
    for (key, v) in [("token_url", &raw.token_url), ("graph_url", &graph_url)] {
        let u = url::Url::parse(v)
            .map_err(|e| format!("oauth.groups_overage.{key}: not a URL ({e})"))?;
        match u.scheme() {
            "https" => {}
            "http" if raw.allow_insecure => {}
            "http" => {
                return Err(format!(
                    "oauth.groups_overage.{key}: plain http needs allow_insecure = true (the client secret and people's groups would travel unprotected)"
                ));
            }
            s => return Err(format!("oauth.groups_overage.{key}: `{s}` is not http(s)")),
        }
    }
    if raw.client_id.trim().is_empty() {
        return Err("oauth.groups_overage.client_id: must not be empty".into());
    }
    let client_secret = SecretRef::parse(&raw.client_secret, base)
        .map_err(|m| format!("oauth.groups_overage.client_secret: {m}"))?;
    let cache_ttl = match &raw.cache_ttl {
        Some(s) => super::parse_duration(s, "oauth.groups_overage.cache_ttl")?,
        None => Duration::from_secs(600),
    };
    if cache_ttl > Duration::from_secs(86_400) {
        return Err("oauth.groups_overage.cache_ttl: at most 24h (a person removed from a group must lose it within a day)".into());
    }
    Ok(GroupsOverage {
        token_url: raw.token_url.clone(),
        graph_url: graph_url.trim_end_matches('/').to_string(),
        scope: raw
            .scope
            .clone()
            .unwrap_or_else(|| "https://graph.microsoft.com/.default".into()),
        client_id: raw.client_id.clone(),
        client_secret,
        cache_ttl,
        allow_private: raw.allow_private,
    })
}

fn own_server(raw: &RawOAuth, default_tenant: &str, base: &Path) -> Result<OwnServer, String> {
    if raw.jwks_url.is_some()
        || raw.identity_claims.is_some()
        || raw.groups_claim.is_some()
        || raw.tenant.is_some()
    {
        return Err("oauth: jwks_url, identity_claims, groups_claim and tenant are for an external identity provider; with authorization_server = \"self\" the person, tenant and groups are those of the API token they sign in with".into());
    }
    let ttl = |v: &Option<String>, key: &str, default: Duration| match v {
        Some(s) => super::parse_duration(s, &format!("oauth.{key}")),
        None => Ok(default),
    };
    let access_token_ttl = ttl(
        &raw.access_token_ttl,
        "access_token_ttl",
        Duration::from_secs(600),
    )?;
    if access_token_ttl > Duration::from_secs(3600) {
        return Err("oauth.access_token_ttl: at most 1h (refresh tokens are for longer)".into());
    }
    let upstream = raw
        .upstream
        .as_ref()
        .map(|u| upstream_sign_in(u, default_tenant, base))
        .transpose()?;
    if upstream.is_none() && raw.api_token_sign_in == Some(false) {
        return Err(
            "oauth.api_token_sign_in = false leaves no way to sign in: add [oauth.upstream]".into(),
        );
    }
    Ok(OwnServer {
        access_token_ttl,
        refresh_token_ttl: ttl(
            &raw.refresh_token_ttl,
            "refresh_token_ttl",
            Duration::from_secs(30 * 86400),
        )?,
        allow_loopback_client_ids: raw.allow_loopback_client_ids,
        api_token_sign_in: raw.api_token_sign_in.unwrap_or(upstream.is_none()),
        upstream,
    })
}

fn upstream_sign_in(
    raw: &RawUpstream,
    default_tenant: &str,
    base: &Path,
) -> Result<UpstreamSignIn, String> {
    let u = url::Url::parse(&raw.issuer)
        .map_err(|e| format!("oauth.upstream.issuer: not a URL ({e})"))?;
    match u.scheme() {
        "https" => {}
        "http" if raw.allow_insecure => {}
        "http" => {
            return Err("oauth.upstream.issuer: plain http needs allow_insecure = true (the client secret and people's tokens would travel unprotected)".into());
        }
        s => return Err(format!("oauth.upstream.issuer: `{s}` is not http(s)")),
    }
    if raw.client_id.trim().is_empty() {
        return Err("oauth.upstream.client_id: must not be empty".into());
    }
    let client_secret = SecretRef::parse(&raw.client_secret, base)
        .map_err(|m| format!("oauth.upstream.client_secret: {m}"))?;
    let mut scopes = raw
        .scopes
        .clone()
        .unwrap_or_else(|| ["openid", "profile", "email"].map(String::from).to_vec());
    if !scopes.iter().any(|s| s == "openid") {
        scopes.insert(0, "openid".into());
    }
    let identity_claims = raw.identity_claims.clone().unwrap_or_else(|| {
        ["preferred_username", "upn", "email"]
            .map(String::from)
            .to_vec()
    });
    if identity_claims.is_empty() {
        return Err("oauth.upstream.identity_claims: name at least one claim".into());
    }
    Ok(UpstreamSignIn {
        issuer: raw.issuer.clone(),
        client_id: raw.client_id.clone(),
        client_secret,
        scopes,
        identity_claims,
        groups_claim: raw.groups_claim.clone().unwrap_or_else(|| "groups".into()),
        tenant: raw
            .tenant
            .clone()
            .unwrap_or_else(|| default_tenant.to_string()),
        display_name: raw
            .display_name
            .clone()
            .unwrap_or_else(|| "your organisation's account".into()),
        allow_private: raw.allow_private,
        allow_insecure: raw.allow_insecure,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<OAuth, String> {
        let raw: RawOAuth = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        build(raw, "default", Path::new("/etc/airlock"))
    }

    const OWN: &str =
        "authorization_server = \"self\"\nresource = \"https://airlock.example.com/mcp\"\n";

    #[test]
    fn an_upstream_sign_in_asks_for_openid_and_replaces_the_api_token_form_unless_kept() {
        let o = parse(&format!(
            "{OWN}[upstream]\nissuer = \"https://login.example.com/t/v2.0\"\nclient_id = \"app\"\nclient_secret = \"secret:signin\"\nscopes = [\"email\"]\n"
        ))
        .unwrap();
        let own = o.own.expect("own");
        let up = own.upstream.expect("upstream");
        assert_eq!(up.scopes, ["openid", "email"]);
        assert_eq!(up.tenant, "default");
        assert_eq!(up.client_secret.vault_name(), Some("signin"));
        assert!(!own.api_token_sign_in);
        let kept = parse(&format!(
            "{OWN}api_token_sign_in = true\n[upstream]\nissuer = \"https://login.example.com/t/v2.0\"\nclient_id = \"app\"\nclient_secret = \"secret:signin\"\n"
        ))
        .unwrap();
        assert!(kept.own.expect("own").api_token_sign_in);
        for (bad, names) in [
            (format!("{OWN}api_token_sign_in = false\n"), "api_token_sign_in"),
            (
                format!("{OWN}[upstream]\nissuer = \"http://login.example.com\"\nclient_id = \"app\"\nclient_secret = \"secret:x\"\n"),
                "oauth.upstream.issuer",
            ),
            (
                format!("{OWN}[upstream]\nissuer = \"https://login.example.com\"\nclient_id = \"app\"\nclient_secret = \"plain\"\n"),
                "oauth.upstream.client_secret",
            ),
            (
                "issuer = \"https://login.example.com\"\nresource = \"https://a.example.com/mcp\"\n[upstream]\nissuer = \"https://login.example.com\"\nclient_id = \"app\"\nclient_secret = \"secret:x\"\n".to_string(),
                "need authorization_server",
            ),
        ] {
            let e = parse(&bad).expect_err(names);
            assert!(e.contains(names), "{names}: {e}");
        }
    }

    #[test]
    fn a_groups_overage_is_resolved_only_with_an_app_credential_and_only_for_an_external_provider()
    {
        let ext =
            "issuer = \"https://idp.example.com\"\nresource = \"https://a.example.com/mcp\"\n";
        assert_eq!(parse(ext).unwrap().groups_overage, None);
        let o = parse(&format!(
            "{ext}[groups_overage]\ntoken_url = \"https://login.example.com/t/oauth2/v2.0/token\"\nclient_id = \"app\"\nclient_secret = \"secret:graph\"\n"
        ))
        .unwrap();
        let g = o.groups_overage.expect("overage");
        assert_eq!(g.graph_url, "https://graph.microsoft.com");
        assert_eq!(g.cache_ttl, Duration::from_secs(600));
        assert_eq!(g.client_secret.vault_name(), Some("graph"));
        for (bad, names) in [
            (
                format!(
                    "{OWN}[groups_overage]\ntoken_url = \"https://l.example.com/t\"\nclient_id = \"a\"\nclient_secret = \"secret:x\"\n"
                ),
                "oauth.groups_overage",
            ),
            (
                format!(
                    "{ext}[groups_overage]\ntoken_url = \"http://l.example.com/t\"\nclient_id = \"a\"\nclient_secret = \"secret:x\"\n"
                ),
                "oauth.groups_overage.token_url",
            ),
            (
                format!(
                    "{ext}[groups_overage]\ntoken_url = \"https://l.example.com/t\"\nclient_id = \"a\"\nclient_secret = \"plain\"\n"
                ),
                "oauth.groups_overage.client_secret",
            ),
            (
                format!(
                    "{ext}[groups_overage]\ntoken_url = \"https://l.example.com/t\"\nclient_id = \"a\"\nclient_secret = \"secret:x\"\ncache_ttl = \"2d\"\n"
                ),
                "cache_ttl",
            ),
        ] {
            let e = parse(&bad).expect_err(names);
            assert!(e.contains(names), "{names}: {e}");
        }
    }

    #[test]
    fn airlock_as_its_own_server_takes_the_resource_origin_as_issuer() {
        let o = parse(
            "authorization_server = \"self\"\nresource = \"https://airlock.example.com/mcp\"\naccess_token_ttl = \"5m\"\n",
        )
        .unwrap();
        assert_eq!(o.issuer, "https://airlock.example.com");
        let own = o.own.expect("own server");
        assert_eq!(own.access_token_ttl, Duration::from_secs(300));
        assert_eq!(own.refresh_token_ttl, Duration::from_secs(30 * 86400));
        assert!(!own.allow_loopback_client_ids);
    }

    #[test]
    fn settings_of_the_other_mode_are_errors() {
        let own = "authorization_server = \"self\"\nresource = \"https://a.example.com/mcp\"\n";
        for extra in [
            "issuer = \"https://idp.example.com\"",
            "tenant = \"acme\"",
            "groups_claim = \"g\"",
            "access_token_ttl = \"2h\"",
        ] {
            assert!(parse(&format!("{own}{extra}\n")).is_err(), "{extra}");
        }
        let ext =
            "issuer = \"https://idp.example.com\"\nresource = \"https://a.example.com/mcp\"\n";
        assert!(parse(ext).unwrap().own.is_none());
        assert!(parse(&format!("{ext}allow_loopback_client_ids = true\n")).is_err());
        assert!(
            parse("resource = \"https://a.example.com/mcp\"\n").is_err(),
            "no issuer"
        );
        assert!(
            parse("authorization_server = \"google\"\nresource = \"https://a.example.com/mcp\"\n")
                .is_err()
        );
    }
}
