//! `auth = { type = "oauth2-user", … }`: delegated OAuth, where the gate injects the calling
//! person's own upstream token (see `capabilities::delegated`). Parsed and checked here: every
//! URL is http(s), the client secret is a reference like every credential, values sent as
//! written are not written like references, and the redirect URI is this connector's callback.

use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use crate::capabilities::grant::{AuthConfig, SecretRef, UserOAuth, looks_like_reference};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUserAuth {
    authorize_url: String,
    token_url: String,
    client_id: String,
    client_secret: String,
    #[serde(default)]
    scopes: Vec<String>,
    revoke_url: Option<String>,
    redirect_uri: String,
    /// Where the connected account is read with its new access token (Graph's `/v1.0/me`, an
    /// OpenID userinfo endpoint); without it, the token response's `id_token` (scope `openid`).
    userinfo_url: Option<String>,
    /// Whether the connected account must be the principal's own (default true).
    verify_account: Option<bool>,
}

/// The path of a connector's callback, which `redirect_uri` must end at.
pub fn callback_path(connector: &str) -> String {
    format!("/v1/connections/{connector}/callback")
}

fn http_url(field: &str, v: &str) -> Result<url::Url, String> {
    let u = url::Url::parse(v).map_err(|e| format!("auth.{field}: `{v}` is not a URL ({e})"))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(format!("auth.{field}: `{v}` must be an http or https URL"));
    }
    Ok(u)
}

pub(super) fn build(raw: RawUserAuth, connector: &str, base: &Path) -> Result<AuthConfig, String> {
    let authorize_url = http_url("authorize_url", &raw.authorize_url)?;
    let token_url = http_url("token_url", &raw.token_url)?;
    let revoke_url = match &raw.revoke_url {
        Some(r) => Some(http_url("revoke_url", r)?),
        None => None,
    };
    let userinfo_url = match &raw.userinfo_url {
        Some(r) => Some(http_url("userinfo_url", r)?),
        None => None,
    };
    let verify_account = raw.verify_account.unwrap_or(true);
    if verify_account && userinfo_url.is_none() && !raw.scopes.iter().any(|s| s == "openid") {
        return Err(
            "auth: an `oauth2-user` grant checks that the account a person connects is their own, so it needs `userinfo_url` (e.g. https://graph.microsoft.com/v1.0/me) or the `openid` scope (the id_token names the account); `verify_account = false` turns the check off (anyone holding a connect link could then attach their account to whoever started it)"
                .into(),
        );
    }
    let redirect_uri = http_url("redirect_uri", &raw.redirect_uri)?;
    let want = callback_path(connector);
    if redirect_uri.path() != want || redirect_uri.query().is_some() {
        return Err(format!(
            "auth.redirect_uri: must be this daemon's callback for the connector, `https://<airlock host>{want}` (register the same URI with the upstream application)"
        ));
    }
    if raw.client_id.trim().is_empty() {
        return Err("auth.client_id: must not be empty".into());
    }
    let sent_as_written = std::iter::once(("client_id", &raw.client_id))
        .chain(raw.scopes.iter().map(|s| ("scopes", s)));
    for (field, v) in sent_as_written {
        if looks_like_reference(v) {
            return Err(format!(
                "auth.{field}: `{v}` looks like a secret reference, but {field} is sent as written; only client_secret takes a reference"
            ));
        }
    }
    if let Some(s) = raw.scopes.iter().find(|s| s.is_empty() || s.contains(' ')) {
        return Err(format!(
            "auth.scopes: `{s}` is not one scope (list each scope as its own string)"
        ));
    }
    let client_secret = SecretRef::parse(&raw.client_secret, base)
        .map_err(|m| format!("auth.client_secret: {m}"))?;
    Ok(AuthConfig::OAuth2User(Arc::new(UserOAuth {
        authorize_url,
        token_url,
        client_id: raw.client_id,
        client_secret,
        scopes: raw.scopes,
        revoke_url,
        redirect_uri,
        userinfo_url,
        verify_account,
    })))
}

/// The URLs of an `oauth2-user` grant that carry a secret (the client secret, codes, tokens).
pub(super) fn secret_urls(u: &UserOAuth) -> impl Iterator<Item = (&'static str, &url::Url)> {
    [
        ("token_url", Some(&u.token_url)),
        ("revoke_url", u.revoke_url.as_ref()),
        ("userinfo_url", u.userinfo_url.as_ref()),
    ]
    .into_iter()
    .filter_map(|(f, u)| u.map(|u| (f, u)))
}

/// A person connects once per connector, so a connector has at most one `oauth2-user` grant
/// (two would leave it open which application a connection belongs to).
pub(super) fn one_per_connector(
    grants: &[crate::capabilities::grant::Grant],
) -> Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    for g in grants {
        if matches!(g.auth, AuthConfig::OAuth2User(_)) && !seen.insert(g.connector.as_str()) {
            return Err(format!(
                "grant[{}].auth: connector `{}` already has an `oauth2-user` grant; a connector takes one (people connect once per connector)",
                g.index, g.connector
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{AuthConfig, Config};

    const GRANT: &str = r#"
[[connector]]
id = "msgraph"
component = "m.wasm"

[[grant]]
connector = "msgraph"
url = "https://graph.microsoft.com/v1.0/"
"#;

    fn with(auth: &str) -> Result<Config, String> {
        let text = format!("{GRANT}auth = {{ type = \"oauth2-user\", {auth} }}\n");
        Config::parse(&text, Path::new("/etc/airlock/airlock.toml")).map_err(|e| e.to_string())
    }

    const GOOD: &str = r#"authorize_url = "https://login.example.com/authorize", token_url = "https://login.example.com/token", client_id = "app", client_secret = "secret:app", scopes = ["openid", "Files.Read.All", "offline_access"], redirect_uri = "https://airlock.example.com/v1/connections/msgraph/callback""#;

    #[test]
    fn an_oauth2_user_grant_names_its_application_and_this_connectors_callback() {
        let c = with(GOOD).expect("valid");
        let AuthConfig::OAuth2User(u) = &c.grants[0].auth else {
            panic!("not oauth2-user");
        };
        assert_eq!(u.scopes, ["openid", "Files.Read.All", "offline_access"]);
        assert!(u.verify_account);
        assert_eq!(u.client_secret.vault_name(), Some("app"));
        assert!(u.revoke_url.is_none());
    }

    #[test]
    fn an_oauth2_user_grant_with_a_wrong_field_is_refused_naming_it() {
        let cases = [
            (
                GOOD.replace("secret:app\"", "plain-secret\""),
                "auth.client_secret",
            ),
            (
                GOOD.replace("client_id = \"app\"", "client_id = \"env:APP\""),
                "auth.client_id",
            ),
            (
                GOOD.replace("/msgraph/callback", "/other/callback"),
                "auth.redirect_uri",
            ),
            (
                GOOD.replace("https://login.example.com/token", "ftp://x/token"),
                "auth.token_url",
            ),
            (GOOD.replace("\"Files.Read.All\"", "\"a b\""), "auth.scopes"),
            (
                GOOD.replace(
                    "https://login.example.com/token",
                    "http://login.example.com/token",
                ),
                "auth.token_url",
            ),
            (format!("{GOOD}, extra = 1"), "extra"),
            (GOOD.replace("\"openid\", ", ""), "userinfo_url"),
            (
                format!("{GOOD}, userinfo_url = \"http://graph.example.com/v1.0/me\""),
                "auth.userinfo_url",
            ),
        ];
        for (auth, field) in cases {
            let e = with(&auth).expect_err(field);
            assert!(e.contains(field), "{field}: {e}");
        }
    }

    #[test]
    fn an_oauth2_user_grant_reads_the_account_from_userinfo_or_skips_the_check_only_when_told() {
        let no_openid = GOOD.replace("\"openid\", ", "");
        let me = format!("{no_openid}, userinfo_url = \"https://graph.microsoft.com/v1.0/me\"");
        let AuthConfig::OAuth2User(u) = &with(&me).expect("userinfo").grants[0].auth else {
            panic!("not oauth2-user");
        };
        assert_eq!(
            u.userinfo_url.as_ref().map(|u| u.as_str()),
            Some("https://graph.microsoft.com/v1.0/me")
        );
        let off = format!("{no_openid}, verify_account = false");
        let AuthConfig::OAuth2User(u) = &with(&off).expect("unchecked").grants[0].auth else {
            panic!("not oauth2-user");
        };
        assert!(!u.verify_account && u.userinfo_url.is_none());
    }
}
