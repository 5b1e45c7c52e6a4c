//! ARM's subscription-wide virtual machine listing: the `api-version` check, the subscription,
//! pages of [`PAGE`](super::PAGE) with `$skiptoken` and an absolute `nextLink`, and the instance
//! view (`statusOnly=true` or `$expand=instanceView`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::shapes::arm_error;
use super::{Azure, PAGE};
use crate::common::QueryParams;

const API_VERSIONS: [&str; 6] = [
    "2023-03-01",
    "2023-07-01",
    "2023-09-01",
    "2024-03-01",
    "2024-07-01",
    "2024-11-01",
];

/// `GET /subscriptions/{sub}/providers/Microsoft.Compute/virtualMachines`.
pub(super) async fn list_vms(
    State(a): State<Arc<Azure>>,
    Path(sub): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    match q.one("api-version") {
        None => {
            return arm_error(
                StatusCode::BAD_REQUEST,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            );
        }
        Some(v) if !API_VERSIONS.contains(&v) => {
            return arm_error(
                StatusCode::BAD_REQUEST,
                "NoRegisteredProviderFound",
                format!("No registered resource provider found for API version '{v}'."),
            );
        }
        Some(_) => {}
    }
    if !sub.eq_ignore_ascii_case(&a.opts.subscription) {
        return arm_error(
            StatusCode::NOT_FOUND,
            "SubscriptionNotFound",
            format!("The subscription '{sub}' could not be found."),
        );
    }
    let skip = match q.one("$skiptoken").map(str::parse::<usize>) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            return arm_error(
                StatusCode::BAD_REQUEST,
                "InvalidSkipToken",
                "The skip token is invalid.",
            );
        }
    };
    let view = q
        .one("statusOnly")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || q.one("$expand")
            .is_some_and(|v| v.eq_ignore_ascii_case("instanceView"));
    let value: Vec<Value> = a
        .vms
        .iter()
        .skip(skip)
        .take(PAGE)
        .map(|v| a.vm_json(v, view))
        .collect();
    let mut body = json!({"value": value});
    if skip + PAGE < a.vms.len() {
        let query = q.encode_with(
            &["$skiptoken"],
            &[("$skiptoken", &(skip + PAGE).to_string())],
        );
        body["nextLink"] = json!(format!(
            "{}/subscriptions/{sub}/providers/Microsoft.Compute/virtualMachines?{query}",
            a.base_url
        ));
    }
    Json(body).into_response()
}
