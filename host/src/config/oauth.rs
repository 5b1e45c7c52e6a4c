//! `[oauth]`: Airlock as an OAuth 2.0 protected resource (MCP authorization). Access tokens are
//! JWTs issued by the company's identity provider (Microsoft Entra ID or any OpenID Connect
//! provider) for this resource; Airlock checks them against the issuer's published keys (see
//! `crate::api::oauth`). Static API tokens keep working beside them.

use serde::Deserialize;

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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOAuth {
    issuer: String,
    resource: String,
    jwks_url: Option<String>,
    tenant: Option<String>,
    identity_claims: Option<Vec<String>>,
    groups_claim: Option<String>,
    #[serde(default)]
    allow_private: bool,
    #[serde(default)]
    allow_insecure: bool,
}

pub(super) fn build(raw: RawOAuth, default_tenant: &str) -> Result<OAuth, String> {
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
    https_or("issuer", &raw.issuer)?;
    https_or("resource", &raw.resource)?;
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
    Ok(OAuth {
        issuer: raw.issuer,
        resource: raw.resource,
        jwks_url: raw.jwks_url,
        tenant: raw.tenant.unwrap_or_else(|| default_tenant.to_string()),
        identity_claims,
        groups_claim: raw.groups_claim.unwrap_or_else(|| "groups".into()),
        allow_private: raw.allow_private,
        allow_insecure: raw.allow_insecure,
    })
}
