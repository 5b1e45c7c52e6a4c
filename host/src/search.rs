//! Cross-connector search: bm25-ranked local results from the store, optionally merged with a
//! live fan-out to every connector's `search` export (in parallel, each with a timeout), with
//! partial results naming the connectors that failed.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

pub mod ann;
pub mod ask;
pub mod chunking;
pub mod fusion;
mod permission_cache;
pub mod relevance;
pub mod semantic;
pub use permission_cache::PermissionCache;
pub use semantic::{Embedder, Mode, QueryVector};

use crate::runtime::connector::LoadedConnector;
use crate::store::backend::{SearchQuery, Store};
use crate::store::documents::{Hit, Readers};

/// A connector the live fan-out may ask: loaded, or why it is not.
pub type LiveTarget = (String, Result<Arc<LoadedConnector>, String>);

/// The connectors a live fan-out may ask, and the invocation slots their calls take a turn
/// from (`[invocations]`), so a tenant's live searches count against its cap like its other
/// invocations and cannot take the node's instances from other tenants.
pub struct Live {
    pub targets: Vec<LiveTarget>,
    /// Each connector's tenant ("" for none).
    pub tenants: std::collections::HashMap<String, String>,
    pub slots: Option<Arc<crate::fair_slots::FairSlots>>,
}

/// A search request (CLI and API share it).
#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub query: String,
    pub connector: Option<String>,
    pub kind: Option<String>,
    pub limit: usize,
    /// Also ask every connector live.
    pub live: bool,
    /// Per-connector timeout of the live fan-out.
    pub live_timeout: Duration,
    /// Who asks (the API's principal); None: everything (the operator's CLI).
    pub scope: Option<Scope>,
    /// Keyword (default), semantic or hybrid local search.
    pub mode: Mode,
    /// The query's embedding (semantic and hybrid modes; see `Airlock::search`).
    pub vector: Option<QueryVector>,
    /// Keyword hits with any of the words rather than all (questions in plain language).
    pub any_word: bool,
}

/// What a principal may reach: its tenant's connectors, the identities a document's ACL must
/// list, and per connector its user id upstream (to check live hits that carry no ACL).
#[derive(Debug, Clone)]
pub struct Scope {
    pub connectors: Vec<String>,
    pub readers: Readers,
    pub upstream_users: std::collections::BTreeMap<String, String>,
    /// The daemon's remembered `check-permission` answers, and how long each connector's are
    /// trusted (`permission_check_ttl`; absent or zero: never remembered).
    pub checks: Arc<PermissionCache>,
    pub check_ttls: std::collections::BTreeMap<String, Duration>,
}

/// Most live hits without an ACL checked upstream at once per connector.
const CHECKS_AT_ONCE: usize = 8;

/// Keeps the live `hits` of connector `id` the scope may read: by their ACL, or, for one
/// without an ACL, when the connector is tenant-wide or its `check-permission` says yes for the
/// principal's upstream user. Unknown (no upstream user, an error, a timeout) drops the hit.
/// Definite answers are remembered for the connector's `permission_check_ttl`.
pub async fn permitted_live(
    c: &LoadedConnector,
    id: &str,
    scope: &Scope,
    hits: Vec<crate::model::Document>,
) -> Vec<crate::model::Document> {
    use futures::StreamExt as _;
    let user = scope.upstream_users.get(id);
    let checks = hits.into_iter().map(|d| async move {
        if !d.acl.is_empty() || scope.readers.open.iter().any(|o| o == id) {
            return scope.readers.allows(id, &d.acl).then_some(d);
        }
        let user = user?;
        let ttl = scope.check_ttls.get(id).copied().unwrap_or_default();
        if let Some(allowed) = scope.checks.get(id, user, &d.id, ttl) {
            return allowed.then_some(d);
        }
        let allowed = c.check_permission(user.clone(), d.id.clone()).await;
        match allowed {
            Ok(yes) => {
                if !ttl.is_zero() {
                    scope.checks.put(id, user, &d.id, yes);
                }
                yes.then_some(d)
            }
            Err(e) => {
                tracing::warn!("{id}: check-permission of a live hit failed, dropped: {e}");
                None
            }
        }
    });
    futures::stream::iter(checks)
        .buffered(CHECKS_AT_ONCE)
        .filter_map(|d| async move { d })
        .collect()
        .await
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub connector: String,
    pub error: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SearchResponse {
    pub hits: Vec<Hit>,
    /// Connectors whose live search failed or timed out (results are partial).
    pub failed: Vec<Failure>,
    pub partial: bool,
}

/// Searches the store and, with `req.live`, asks each of `live` (filtered by the request's
/// connector and scope) at once.
pub async fn search(
    store: &Store,
    ann: Option<&ann::AnnIndex>,
    live: Live,
    req: &SearchRequest,
) -> anyhow::Result<SearchResponse> {
    let q = req.clone();
    let query = SearchQuery {
        text: q.query,
        connector: q.connector,
        kind: q.kind,
        limit: q.limit,
        connectors: q.scope.as_ref().map(|s| s.connectors.clone()),
        readers: q.scope.map(|s| s.readers),
        any_word: q.any_word,
    };
    let mut hits = semantic::local_hits(store, ann, query, req.mode, req.vector.as_ref()).await?;
    let mut failed = Vec::new();
    if req.live {
        let Live {
            targets,
            tenants,
            slots,
        } = live;
        let (tenants, slots) = (&tenants, slots.as_ref());
        let targets: Vec<_> = targets
            .into_iter()
            .filter(|(id, _)| req.connector.as_deref().is_none_or(|c| c == id.as_str()))
            .filter(|(id, _)| {
                req.scope
                    .as_ref()
                    .is_none_or(|s| s.connectors.iter().any(|c| c == id))
            })
            .collect();
        // Live hits already among the local ones (or of another kind) are dropped below anyway:
        // no permission check is spent on them.
        let local: HashSet<(String, String, String)> = hits
            .iter()
            .map(|h| (h.connector.clone(), h.kind.clone(), h.id.clone()))
            .collect();
        let local = &local;
        let calls = targets.into_iter().map(|(id, slot)| {
            let query = req.query.clone();
            let limit = req.limit.clamp(1, 1000) as u32;
            let timeout = req.live_timeout;
            async move {
                let c = match slot {
                    Ok(c) => c,
                    Err(error) => return (id, Err(format!("not loaded: {error}"))),
                };
                let tenant = tenants.get(&id).map(String::as_str).unwrap_or("");
                let started = std::sync::atomic::AtomicBool::new(false);
                // The wait for a turn and the permission checks of the hits share the search's
                // time budget.
                let searched = tokio::time::timeout(timeout, async {
                    let _turn = match slots {
                        Some(s) => Some(s.acquire(tenant).await),
                        None => None,
                    };
                    started.store(true, std::sync::atomic::Ordering::Relaxed);
                    let mut r = c.search(query, limit, None).await?;
                    if let Some(s) = &req.scope {
                        let kind = req.kind.as_deref();
                        r.hits.retain(|d| {
                            kind.is_none_or(|k| k == d.kind)
                                && !local.contains(&(id.clone(), d.kind.clone(), d.id.clone()))
                        });
                        r.hits = permitted_live(&c, &id, s, std::mem::take(&mut r.hits)).await;
                    }
                    Ok::<_, crate::runtime::connector::InvokeError>(r)
                });
                match searched.await {
                    Err(_) if !started.load(std::sync::atomic::Ordering::Relaxed) => (
                        id,
                        Err(format!(
                            "not started within {timeout:?}: tenant `{tenant}` already runs as \
                             many invocations as it may at once ([invocations] \
                             max_running_per_tenant, or the node's max_running)"
                        )),
                    ),
                    Err(_) => (id, Err(format!("no answer within {timeout:?}"))),
                    Ok(Err(e)) => (id, Err(e.to_string())),
                    Ok(Ok(r)) => (id, Ok(r)),
                }
            }
        });
        let results = futures::future::join_all(calls).await;
        let mut seen = local.clone();
        for (id, r) in results {
            match r {
                Err(error) => failed.push(Failure {
                    connector: id,
                    error,
                }),
                Ok(result) => {
                    for d in result.hits {
                        if req.kind.as_deref().is_some_and(|k| k != d.kind) {
                            continue;
                        }
                        if !seen.insert((id.clone(), d.kind.clone(), d.id.clone())) {
                            continue;
                        }
                        hits.push(Hit {
                            connector: id.clone(),
                            snippet: crate::store::embeddings::snippet(&d.body),
                            kind: d.kind,
                            id: d.id,
                            title: d.title,
                            url: d.url,
                            updated_at: d.updated_at,
                            score: None,
                            source: "live",
                            acl: d.acl,
                        });
                    }
                }
            }
        }
        hits.truncate(req.limit.max(1));
    }
    Ok(SearchResponse {
        partial: !failed.is_empty(),
        hits,
        failed,
    })
}
