//! `[[webhook]]`: where the change feed is pushed (see `crate::webhooks`). A webhook belongs to a
//! tenant and receives that tenant's changes, narrowed by connector and kind; its signing secret
//! is a reference (`secret:NAME`, `env:VAR`), never a literal.

use std::time::Duration;

use serde::Deserialize;

use crate::capabilities::grant::SecretRef;

/// One configured receiver.
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    /// Unique among webhooks; names its deliveries in the API.
    pub name: String,
    pub url: http::Uri,
    pub tenant: String,
    /// Only changes of these connectors (empty: every connector of the tenant).
    pub connectors: Vec<String>,
    /// Only changes of these document kinds (empty: every kind).
    pub kinds: Vec<String>,
    /// The Standard Webhooks signing secret (`whsec_` + base64), resolved at delivery.
    pub secret: SecretRef,
    /// Loopback and private addresses are refused unless this is set (as for grants).
    pub allow_private: bool,
    /// `http://` is refused unless this is set.
    pub allow_insecure: bool,
    /// Attempts before a delivery is dead-lettered.
    pub max_attempts: u32,
    /// First retry delay; each later one doubles (with jitter), up to an hour.
    pub backoff: Duration,
    /// How long one attempt may take.
    pub timeout: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWebhook {
    name: String,
    url: String,
    tenant: Option<String>,
    #[serde(default)]
    connectors: Vec<String>,
    #[serde(default)]
    kinds: Vec<String>,
    secret: String,
    #[serde(default)]
    allow_private: bool,
    #[serde(default)]
    allow_insecure: bool,
    max_attempts: Option<u32>,
    backoff: Option<String>,
    timeout: Option<String>,
}

/// Checks one `[[webhook]]` (`key` names it in errors).
pub(super) fn build(
    raw: RawWebhook,
    key: &str,
    base: &std::path::Path,
    tenant_of: impl Fn(&str) -> Option<String>,
) -> Result<Webhook, String> {
    crate::store::tokens::validate_name(&format!("{key}.name"), &raw.name)?;
    let url: http::Uri = raw
        .url
        .parse()
        .map_err(|e| format!("{key}.url: `{}` is not a URL: {e}", raw.url))?;
    match url.scheme_str() {
        Some("https") => {}
        Some("http") if raw.allow_insecure => {}
        Some("http") => {
            return Err(format!(
                "{key}.url: http:// sends events in clear text; use https:// or set allow_insecure = true"
            ));
        }
        _ => return Err(format!("{key}.url: must be an http(s):// URL")),
    }
    if url.host().is_none_or(str::is_empty) {
        return Err(format!("{key}.url: has no host"));
    }
    let secret = SecretRef::parse(&raw.secret, base).map_err(|m| format!("{key}.secret: {m}"))?;
    let tenant = raw
        .tenant
        .unwrap_or_else(|| super::DEFAULT_TENANT.to_string());
    for c in &raw.connectors {
        match tenant_of(c) {
            None => return Err(format!("{key}.connectors: no connector `{c}`")),
            Some(t) if t != tenant => {
                return Err(format!(
                    "{key}.connectors: `{c}` belongs to tenant `{t}`, the webhook to `{tenant}`"
                ));
            }
            Some(_) => {}
        }
    }
    let duration = |v: Option<&String>, field: &str, default: Duration| {
        v.map_or(Ok(default), |s| {
            super::parse_duration(s, &format!("{key}.{field}"))
        })
    };
    let max_attempts = raw.max_attempts.unwrap_or(10);
    if !(1..=100).contains(&max_attempts) {
        return Err(format!("{key}.max_attempts: must be between 1 and 100"));
    }
    Ok(Webhook {
        name: raw.name,
        url,
        tenant,
        connectors: raw.connectors,
        kinds: raw.kinds,
        secret,
        allow_private: raw.allow_private,
        allow_insecure: raw.allow_insecure,
        max_attempts,
        backoff: duration(raw.backoff.as_ref(), "backoff", Duration::from_secs(5))?,
        timeout: duration(raw.timeout.as_ref(), "timeout", Duration::from_secs(10))?,
    })
}
