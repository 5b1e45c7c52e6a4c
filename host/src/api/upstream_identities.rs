//! Who a principal is at each connector, asked of the connector itself: a connector that
//! declares the conventional action `resolve-identity` (input `{"email": ...}`, answer
//! `{"id": ..., "groups": [...]}`, `not-found` for no such person) is asked about the
//! principal's email, through `Airlock::invoke` like any call (the gate, the audit under the
//! principal, the tenant's invocation slots). The answer becomes `user:ID` and `group:ID` for
//! that connector's ACLs, and is kept per (connector, email) for the connector's
//! `identity_ttl`. Fail closed: a failed lookup (kept briefly, so a broken upstream is not
//! asked on every request) or an unusable answer adds nothing; the principal keeps its static
//! identities only.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use serde_json::{Value, json};

use super::ttl_cache::TtlCache;
use crate::app::Airlock;
use crate::runtime::connector::{InvokeError, Op};
use crate::runtime::context::{self, CallContext};
use crate::store::tokens::{Principal, name_email};

/// The action a connector declares to resolve identities.
pub const ACTION: &str = "resolve-identity";
/// How long a failed lookup stands before the next request asks again (at most the TTL).
const FAILED_LIFE: Duration = Duration::from_secs(30);
/// At most this many (connector, person) answers are kept.
const MAX_CACHED: usize = 20_000;
/// More groups than this is taken for a broken answer (fail closed).
const MAX_GROUPS: usize = 20_000;

/// What the connector said about the person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Their user id upstream and every group they are in there.
    Resolved { user: String, groups: Vec<String> },
    /// The upstream has no such person.
    Unknown,
    /// The lookup failed (why, without secrets: connector errors are scrubbed).
    Failed(String),
}

/// One connector's answer and how old it is.
#[derive(Clone, Debug)]
pub struct Resolution {
    pub outcome: Outcome,
    pub age: Duration,
    pub ttl: Duration,
}

/// The principal's resolutions by connector.
#[derive(Clone, Debug, Default)]
pub struct Upstream(pub BTreeMap<String, Resolution>);

impl Upstream {
    /// The user id resolved at `connector`.
    pub fn user(&self, connector: &str) -> Option<&str> {
        match &self.0.get(connector)?.outcome {
            Outcome::Resolved { user, .. } => Some(user),
            _ => None,
        }
    }

    /// The ACL identities resolved at `connector`: `user:ID` and each `group:ID`.
    pub fn identities(&self, connector: &str) -> Vec<String> {
        match self.0.get(connector).map(|r| &r.outcome) {
            Some(Outcome::Resolved { user, groups }) => std::iter::once(format!("user:{user}"))
                .chain(groups.iter().map(|g| format!("group:{g}")))
                .collect(),
            _ => Vec::new(),
        }
    }
}

static CACHE: LazyLock<TtlCache<(String, String), Outcome>> =
    LazyLock::new(|| TtlCache::new(MAX_CACHED));

/// Whether connector `id` resolves identities: it declares the action and its `identity_ttl`
/// is not zero.
pub fn resolves(a: &Airlock, id: &str) -> bool {
    let on = a
        .config()
        .connector(id)
        .is_some_and(|c| !c.identity_ttl.is_zero());
    on && a
        .connector(id)
        .is_ok_and(|c| c.info.actions.iter().any(|x| x.name == ACTION))
}

/// The principal's identities at each connector of its tenant that resolves them (only
/// `connector` when given); nothing for a principal without an email.
pub async fn of(a: &Airlock, p: &Principal, connector: Option<&str>) -> Upstream {
    // The principal's email, as `auth::email` reads it (imported here without a circle).
    let Some(email) = name_email(&p.name) else {
        return Upstream::default();
    };
    let config = a.config();
    let targets: Vec<(String, Duration)> = config
        .connectors
        .iter()
        .filter(|c| c.tenant == p.tenant && connector.is_none_or(|x| x == c.id))
        .filter(|c| resolves(a, &c.id))
        .map(|c| (c.id.clone(), c.identity_ttl))
        .collect();
    let lookups = targets.into_iter().map(|(id, ttl)| {
        let email = email.clone();
        async move {
            let lookup = || async {
                let outcome = lookup(a, p, &id, &email).await;
                let life = match outcome {
                    Outcome::Failed(_) => FAILED_LIFE,
                    _ => ttl,
                };
                (outcome, life)
            };
            let key = (id.clone(), email.clone());
            let (outcome, age) = CACHE.get_or_lookup(key, ttl, lookup).await;
            (id, Resolution { outcome, age, ttl })
        }
    });
    Upstream(
        futures::future::join_all(lookups)
            .await
            .into_iter()
            .collect(),
    )
}

/// Asks connector `id` about `email` on the principal's behalf.
async fn lookup(a: &Airlock, p: &Principal, id: &str, email: &str) -> Outcome {
    let op = Op::Action {
        name: ACTION.into(),
        input: json!({ "email": email }),
    };
    let ctx = CallContext::requested().by(&p.label());
    let outcome = match context::with(ctx, a.invoke(id, op)).await {
        Ok(v) => answer(&v).unwrap_or_else(Outcome::Failed),
        Err(InvokeError::Connector(e)) if e.code == "not-found" => Outcome::Unknown,
        Err(e) => Outcome::Failed(e.to_string()),
    };
    if let Outcome::Failed(why) = &outcome {
        tracing::warn!(
            connector = id,
            principal = %p.label(),
            "{ACTION} failed ({why}): the principal keeps its static identities only"
        );
    }
    outcome
}

/// A usable id: not blank, no whitespace or control characters.
fn plain(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// The action's answer checked; an error says what is wrong with it.
fn answer(v: &Value) -> Result<Outcome, String> {
    let user = v["id"].as_str().filter(|s| plain(s));
    let user = user.ok_or("the answer has no usable `id`")?;
    let groups = v["groups"]
        .as_array()
        .ok_or("the answer has no `groups` list")?;
    if groups.len() > MAX_GROUPS {
        return Err(format!("the answer lists more than {MAX_GROUPS} groups"));
    }
    let groups: Option<Vec<String>> = groups
        .iter()
        .map(|g| g.as_str().filter(|s| plain(s)).map(str::to_owned))
        .collect();
    let mut groups = groups.ok_or("the answer's `groups` holds something other than ids")?;
    groups.sort();
    groups.dedup();
    Ok(Outcome::Resolved {
        user: user.to_owned(),
        groups,
    })
}

/// The resolution as `whoami` shows it (for debugging permissions).
pub fn shown(r: &Resolution) -> Value {
    let (status, user, groups, error) = match &r.outcome {
        Outcome::Resolved { user, groups } => {
            ("resolved", Some(user.as_str()), groups.clone(), None)
        }
        Outcome::Unknown => ("unknown", None, Vec::new(), None),
        Outcome::Failed(why) => ("failed", None, Vec::new(), Some(why.as_str())),
    };
    json!({
        "status": status,
        "user": user,
        "groups": groups,
        "error": error,
        "age_secs": r.age.as_secs(),
        "ttl_secs": r.ttl.as_secs(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_used_only_when_every_id_is_plain() {
        let ok = answer(&json!({"id": "u1", "groups": ["g2", "g1", "g2"]}));
        let want = Outcome::Resolved {
            user: "u1".into(),
            groups: vec!["g1".into(), "g2".into()],
        };
        assert_eq!(ok, Ok(want));
        for bad in [
            json!({"groups": []}),
            json!({"id": "", "groups": []}),
            json!({"id": "u 1", "groups": []}),
            json!({"id": "u1"}),
            json!({"id": "u1", "groups": ["g1", 7]}),
            json!({"id": "u1", "groups": ["g\n1"]}),
            json!("u1"),
        ] {
            assert!(answer(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_a_resolved_person_has_identities_at_the_connector() {
        let r = |outcome| Resolution {
            outcome,
            age: Duration::ZERO,
            ttl: Duration::from_secs(300),
        };
        let mut up = Upstream::default();
        let resolved = Outcome::Resolved {
            user: "u1".into(),
            groups: vec!["g1".into()],
        };
        up.0.insert("graph".into(), r(resolved));
        up.0.insert("down".into(), r(Outcome::Failed("502".into())));
        up.0.insert("none".into(), r(Outcome::Unknown));
        assert_eq!(up.identities("graph"), ["user:u1", "group:g1"]);
        assert_eq!(up.user("graph"), Some("u1"));
        for c in ["down", "none", "other"] {
            assert!(up.identities(c).is_empty(), "{c}");
            assert_eq!(up.user(c), None, "{c}");
        }
        assert_eq!(shown(&up.0["down"])["status"], "failed");
    }
}
