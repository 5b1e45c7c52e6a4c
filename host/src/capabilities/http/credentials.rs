//! Credentials at the gate: whatever credential headers the connector set are dropped (the
//! wasi:http header filter already refuses them; this is the second line), and the grant's own
//! credential goes in, on a request readied against reflection of it. An OAuth token fetch is
//! audited as its own `oauth-token` row. An `oauth2-user` grant injects the caller's own token
//! (see `delegated`), an `oauth2-obo` grant one traded for the caller's own sign-in (see
//! `on_behalf_of`), and neither for a sync.

use std::sync::Arc;
use std::time::Instant;

use http::header;

use super::super::auth::{GrantAuth, TokenLimits};
use super::super::budget::Class;
use super::super::net::UpstreamClient;
use super::{Caller, ConnectorGate, ms};

impl ConnectorGate {
    /// Drops every credential header the connector set.
    pub(super) fn strip_guest_credentials(&self, headers: &mut http::HeaderMap) {
        for name in self.credential_headers.iter() {
            headers.remove(name);
        }
    }

    /// Puts grant `idx`'s credential on the request. Returns whether one went in (the answer is
    /// then decoded and checked for reflection), or why the credential is unavailable.
    pub(super) async fn inject(
        self: &Arc<Self>,
        caller: &Caller,
        idx: usize,
        headers: &mut http::HeaderMap,
        client: &UpstreamClient,
        deadline: Instant,
    ) -> Result<bool, String> {
        let grant = &self.grants[idx];
        // A credentialed request is one whose answer may echo the credential: the gate decides
        // how that answer is encoded, so the scrubber sees it whole and decoded.
        let credentialed = self.auths[idx].injects();
        if credentialed {
            prepare_credentialed(headers);
        }
        // The token row is built only when a token is fetched (static credentials never are).
        let gate = self.clone();
        let (invocation, principal) = (caller.invocation.clone(), caller.principal.clone());
        // The token fetch runs under the host's own timeout: a guest's tiny first-byte timeout
        // must not make every request re-post the client secret.
        let token_limits = TokenLimits {
            timeout: self.limits.first_byte_timeout,
            budget: &self.states[idx].budget,
            deadline,
        };
        let on_fetch = move |f: super::super::auth::TokenFetch| {
            let mut t = gate.event(&invocation, principal.as_deref());
            t.event = "oauth-token".into();
            t.method = Some("POST".into());
            t.scheme = f.url.scheme_str().map(str::to_string);
            t.host = f.url.host().map(str::to_string);
            t.port = f.url.port_u16();
            t.path = Some(f.url.path().to_string());
            t.status = f.status;
            t.latency_ms = Some(ms(f.latency));
            t.decision = if f.error.is_some() { "error" } else { "ok" }.into();
            t.reason = f.error.unwrap_or_else(|| "token fetched".into());
            gate.audit.record(t);
        };
        if let GrantAuth::OnBehalfOf(obo) = &self.auths[idx] {
            // A sync's records are everybody's: never fetched with one person's token.
            let principal = match caller.class {
                Class::Background => None,
                Class::Interactive => caller.principal.as_deref(),
            };
            let v = obo
                .header_for(principal, |x| {
                    on_fetch(super::super::auth::TokenFetch {
                        url: x.url,
                        status: x.status,
                        latency: x.latency,
                        error: x.error,
                    })
                })
                .await
                .map_err(|e| format!("credentials for grant[{}] unavailable: {e}", grant.index))?;
            headers.insert(header::AUTHORIZATION, v);
            return Ok(credentialed);
        }
        if let GrantAuth::User(user) = &self.auths[idx] {
            // A sync's records are everybody's: never fetched with one person's token.
            let principal = match caller.class {
                Class::Background => None,
                Class::Interactive => caller.principal.as_deref(),
            };
            let v = user
                .header_for(principal, |r| {
                    on_fetch(super::super::auth::TokenFetch {
                        url: r.url,
                        status: r.status,
                        latency: r.latency,
                        error: r.error,
                    })
                })
                .await
                .map_err(|e| format!("credentials for grant[{}] unavailable: {e}", grant.index))?;
            headers.insert(header::AUTHORIZATION, v);
            return Ok(credentialed);
        }
        self.auths[idx]
            .apply(headers, client, grant.allow_private, token_limits, on_fetch)
            .await
            .map_err(|e| format!("credentials for grant[{}] unavailable: {e}", grant.index))?;
        Ok(credentialed)
    }
}

/// Readies a request that will carry an injected credential against reflection: the gate, not
/// the connector, picks the answer's encoding (`identity`: nothing the scrubber cannot read),
/// and a `Range` slice, which could cut an echoed credential into pieces too short to
/// recognise, is never asked for. `TE` would let the upstream add transfer codings.
fn prepare_credentialed(headers: &mut http::HeaderMap) {
    headers.remove(header::RANGE);
    headers.remove(header::IF_RANGE);
    headers.remove(header::TE);
    headers.insert(
        header::ACCEPT_ENCODING,
        http::HeaderValue::from_static("identity"),
    );
}

impl ConnectorGate {
    /// The connector's `oauth2-user` grant (at most one), through which people connect.
    pub fn user_grant(&self) -> Option<std::sync::Arc<super::super::delegated::UserGrant>> {
        self.auths.iter().find_map(|a| match a {
            GrantAuth::User(u) => Some(u.clone()),
            _ => None,
        })
    }
}
