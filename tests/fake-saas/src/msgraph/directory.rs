//! Directory memberships: `POST /v1.0/users/{id}/getMemberObjects` (every group and directory
//! role the user is in, transitively; `securityEnabledOnly` required), as an application asks
//! when an Entra token's groups did not fit in it (a groups overage), and `GET
//! /v1.0/users/{id|upn}/transitiveMemberOf` (the same groups as `#microsoft.graph.group`
//! directory objects, `$top` up to 999, `@odata.nextLink`), as a connector resolving a person's
//! identity asks. Application tokens only here (the application permission
//! `GroupMember.Read.All`); memberships are set by tests, at any time
//! (`RunningFake::set_member_objects`), and both endpoints answer from the same map.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::MsGraph;
use super::errors::graph_error;

/// `POST /v1.0/users/{id}/getMemberObjects`.
pub(super) async fn member_objects(
    State(g): State<Arc<MsGraph>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let app = super::auth::bearer(&headers).is_some_and(|t| g.tokens().contains_key(t));
    if !app {
        return graph_error(
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        );
    }
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if !v["securityEnabledOnly"].is_boolean() {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            "Invalid request body: securityEnabledOnly is required.",
        );
    }
    let known = g.data().users.live().any(|u| u.json["id"] == id.as_str());
    if !known {
        return graph_error(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            format!(
                "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
            ),
        );
    }
    let groups = g.member_objects().get(&id).cloned().unwrap_or_default();
    Json(json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(Edm.String)",
        "value": groups,
    }))
    .into_response()
}

/// `GET /v1.0/users/{id|upn}/transitiveMemberOf`.
pub(super) async fn transitive_member_of(
    State(g): State<Arc<MsGraph>>,
    Path(key): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let app = super::auth::bearer(&headers).is_some_and(|t| g.tokens().contains_key(t));
    if !app {
        return graph_error(
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        );
    }
    let id = {
        let d = g.data();
        super::users::user_index(&d, &key).map(|i| d.users.items[i].id().to_owned())
    };
    let Some(id) = id else {
        return super::errors::not_found(&key);
    };
    let groups: Vec<Value> = g
        .member_objects()
        .get(&id)
        .into_iter()
        .flatten()
        .map(|gid| json!({"@odata.type": "#microsoft.graph.group", "id": gid}))
        .collect();
    let q = crate::common::QueryParams::parse(raw.as_deref());
    let path = format!("/v1.0/users/{key}/transitiveMemberOf");
    g.listing(&path, &q, groups, (100, 999), "directoryObjects")
}

impl crate::server::RunningFake<MsGraph> {
    /// The groups (object ids) `getMemberObjects` and `transitiveMemberOf` list for user
    /// `user_id` from now on (the whole transitive set).
    pub fn set_member_objects(&self, user_id: &str, groups: &[&str]) {
        let groups = groups.iter().map(|s| (*s).to_owned()).collect();
        self.state
            .member_objects()
            .insert(user_id.to_owned(), groups);
    }
}
