//! Who may update and delete a page (edit restrictions), and the v1 permission check
//! (`POST /wiki/rest/api/content/{id}/permission/check`) that answers read, update and delete.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Confluence;
use super::data::Page;
use super::errors::v1_error;

/// Who may update (and delete) a page: a read-restricted page only its readers; about one open
/// page in four only its author (an edit restriction); other pages everyone who can read them.
/// Derived from the page, so the seeded data set stays as it was.
pub(super) fn update_restricted(p: &Page) -> Vec<String> {
    if !p.restricted.is_empty() {
        p.restricted.clone()
    } else if (p.id / 4).is_multiple_of(4) {
        vec![p.author.to_owned()]
    } else {
        Vec::new()
    }
}

/// `POST /wiki/rest/api/content/{id}/permission/check`: `operation` is `read`, `update` or
/// `delete` (anything else is a 400, as Confluence answers); update and delete need read access
/// and passing the page's edit restriction.
pub(super) async fn permission_check(
    State(c): State<Arc<Confluence>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return v1_error(StatusCode::BAD_REQUEST, "Content id must be numeric");
    };
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (kind, who, op) = (
        req["subject"]["type"].as_str(),
        req["subject"]["identifier"].as_str(),
        req["operation"].as_str(),
    );
    let (Some(kind @ ("user" | "group")), Some(who), Some(op)) = (kind, who, op) else {
        return v1_error(
            StatusCode::BAD_REQUEST,
            "Expected {\"subject\":{\"type\":\"user\"|\"group\",\"identifier\":...},\"operation\":...}",
        );
    };
    let d = c.data();
    let Some(p) = d.pages.iter().find(|p| p.id == id && !p.trashed) else {
        return v1_error(
            StatusCode::NOT_FOUND,
            format!("No content found with id : ContentId{{id={id}}}"),
        );
    };
    let passes = |list: &[String]| {
        list.is_empty() || (kind == "user" && list.iter().any(|r| r.as_str() == who))
    };
    // Reading needs the space and every read restriction up the tree (permissions.rs).
    let can_read = d.can_read(kind, who, p);
    let allowed = match op {
        "read" => can_read,
        "update" | "delete" => can_read && passes(&update_restricted(p)),
        other => {
            return v1_error(
                StatusCode::BAD_REQUEST,
                format!("Invalid operation '{other}': expected read, update or delete"),
            );
        }
    };
    Json(json!({"hasPermission": allowed})).into_response()
}
