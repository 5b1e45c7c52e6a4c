//! Confluence Cloud fake (API-NOTES.md): REST v2 pages and spaces with keyset cursors, v1 CQL
//! search, space permissions, page restrictions, groups and the v1 permission check, behind Basic
//! auth with Atlassian's rate-limit answers.
//!
//! This module holds the public face (options, ground truth, mutations, the state, the router,
//! `spawn_confluence` and the [`RunningFake`] helpers); each API area and each concern lives in
//! its own module below.

mod check;
mod cql;
mod data;
mod errors;
mod gate;
mod generate;
mod pages;
mod paging;
mod permissions;
mod search;
mod shapes;
mod spaces;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Router, middleware};
use serde::{Deserialize, Serialize};

use self::data::Data;
use self::errors::v2_error;
use self::gate::gate;
use self::generate::generate;
use crate::control::{self, Control, Mutate, RateLimitBody};
use crate::server::{self, Core, FakeState, RunningFake};

pub use self::generate::{ACCOUNT_IDS, storage_to_text};
pub use self::permissions::{Group, ReadAccess, Restrict, SpaceRead, USER_EMAILS};

/// Phrase planted in exactly three seeded pages (never deleted by mutations).
pub const PLANTED_PHRASE: &str = "quarterly airlock review";

#[derive(Clone, Debug)]
pub struct ConfluenceOptions {
    pub email: String,
    pub api_token: String,
    pub pages: usize,
    pub spaces: usize,
    pub seed: u64,
    /// Every n-th upstream request answers 429 (off when `None`).
    pub rate_limit_every: Option<u64>,
}

impl Default for ConfluenceOptions {
    fn default() -> Self {
        ConfluenceOptions {
            email: "demo@example.com".into(),
            api_token: "demo-confluence-token".into(),
            pages: 120,
            spaces: 3,
            seed: 7,
            rate_limit_every: None,
        }
    }
}

/// Ground truth of one page, as a test should expect to see it through the API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TruthPage {
    pub id: String,
    pub status: String,
    pub title: String,
    pub space_id: String,
    pub space_key: String,
    pub parent_id: Option<String>,
    pub author_id: String,
    pub created_at: String,
    pub version_number: u32,
    pub version_created_at: String,
    pub body_storage: String,
    /// Tags stripped, entities decoded, whitespace collapsed to single spaces.
    pub body_text: String,
    /// Account ids the page's own read restriction names (with `read_restricted_groups`;
    /// both empty: the page itself is unrestricted).
    pub read_restricted_to: Vec<String>,
    /// Group names the page's own read restriction names.
    #[serde(default)]
    pub read_restricted_groups: Vec<String>,
    /// The seeded users who may read the page: they read its space and pass the read
    /// restrictions of the page and of every ancestor.
    #[serde(default)]
    pub readers: Vec<String>,
    /// Account ids allowed to update (and delete); empty means everyone who can read.
    pub update_restricted_to: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TruthSpace {
    pub id: String,
    pub key: String,
    pub name: String,
    pub homepage_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfluenceTruth {
    pub spaces: Vec<TruthSpace>,
    /// Groups and their members.
    #[serde(default)]
    pub groups: Vec<Group>,
    /// Pages with status "current", by ascending id.
    pub pages: Vec<TruthPage>,
    /// Pages with status "trashed", by ascending id.
    pub trashed: Vec<TruthPage>,
}

/// Body of `POST /_fake/mutate`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Mutation {
    pub update: usize,
    pub delete: usize,
    pub create: usize,
    /// Page read restrictions to replace (no version bump, as in Confluence).
    pub restrict: Vec<Restrict>,
    /// Spaces whose read permissions to replace.
    pub space_read: Vec<SpaceRead>,
}

/// Page ids touched by a mutation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MutationReport {
    pub updated: Vec<String>,
    pub deleted: Vec<String>,
    pub created: Vec<String>,
    /// Pages whose read restriction was replaced, spaces (keys) whose read permissions were.
    #[serde(default)]
    pub restricted: Vec<String>,
    #[serde(default)]
    pub space_read: Vec<String>,
}

/// Shared state of a running Confluence fake.
pub struct Confluence {
    core: Core,
    email: String,
    api_token: String,
    base_url: String,
    data: Mutex<Data>,
}

impl FakeState for Confluence {
    fn core(&self) -> &Core {
        &self.core
    }
}

impl Confluence {
    fn data(&self) -> MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wiki(&self) -> String {
        format!("{}/wiki", self.base_url)
    }
}

impl Control for Confluence {
    type Truth = ConfluenceTruth;
    fn ground_truth(&self) -> ConfluenceTruth {
        self.data().truth()
    }
    /// Confluence's `/_fake/config` is `POST` only.
    const SERVES_CONFIG_GET: bool = false;
    fn configure(&self, body: &[u8]) -> Response {
        control::configure_rate_limit(&self.core, body, RateLimitBody::Lenient)
    }
}

impl Mutate for Confluence {
    type Mutation = Mutation;
    type Report = MutationReport;
    const EXPECTED: &'static str = "{\"update\":N,\"delete\":M,\"create\":K}";
    fn apply_mutation(&self, m: Mutation) -> MutationReport {
        self.data().mutate(m)
    }
}

fn router(state: Arc<Confluence>) -> Router {
    Router::new()
        .route("/wiki/api/v2/pages", get(pages::list_pages))
        .route("/wiki/api/v2/pages/{id}", get(pages::get_page))
        .route("/wiki/api/v2/spaces", get(spaces::list_spaces))
        .route(
            "/wiki/api/v2/spaces/{id}/permissions",
            get(permissions::space_permissions),
        )
        .route(
            "/wiki/api/v2/pages/{id}/ancestors",
            get(permissions::page_ancestors),
        )
        .route(
            "/wiki/rest/api/content/{id}/restriction/byOperation/read",
            get(permissions::read_restriction),
        )
        .route("/wiki/rest/api/group", get(permissions::list_groups))
        .route(
            "/wiki/rest/api/group/{id}/membersByGroupId",
            get(permissions::group_members),
        )
        .route("/wiki/rest/api/search", get(search::search))
        .route(
            "/wiki/rest/api/content/{id}/permission/check",
            post(check::permission_check),
        )
        .merge(control::routes_with_mutate::<Confluence>())
        .fallback(|| async {
            v2_error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "No endpoint at this path",
            )
        })
        .layer(middleware::from_fn_with_state(state.clone(), gate))
        .with_state(state)
}

/// Starts the Confluence fake on `listen` (port 0 picks a free port).
pub async fn spawn_confluence(
    listen: SocketAddr,
    opts: ConfluenceOptions,
) -> std::io::Result<RunningFake<Confluence>> {
    let (listener, _, base_url) = server::bind(listen).await?;
    let state = Arc::new(Confluence {
        core: Core::new(opts.rate_limit_every),
        data: Mutex::new(generate(&opts)),
        email: opts.email,
        api_token: opts.api_token,
        base_url: base_url.clone(),
    });
    Ok(server::start(
        listener,
        base_url,
        state.clone(),
        router(state),
    ))
}

impl RunningFake<Confluence> {
    /// All spaces, current pages and trashed pages as they are now.
    pub fn truth(&self) -> ConfluenceTruth {
        self.state.data().truth()
    }
    /// Updates, trashes (never a homepage or a planted page) and creates pages; returns the ids touched.
    pub fn mutate(&self, m: Mutation) -> MutationReport {
        self.state.data().mutate(m)
    }
    pub fn update_pages(&self, n: usize) -> Vec<String> {
        self.mutate(Mutation {
            update: n,
            ..Mutation::default()
        })
        .updated
    }
    pub fn delete_pages(&self, n: usize) -> Vec<String> {
        self.mutate(Mutation {
            delete: n,
            ..Mutation::default()
        })
        .deleted
    }
    /// Replaces page `id`'s read restriction (no version bump, as in Confluence).
    pub fn restrict_page(&self, id: &str, users: &[&str], groups: &[&str]) {
        let access = ReadAccess {
            users: users.iter().map(|s| s.to_string()).collect(),
            groups: groups.iter().map(|s| s.to_string()).collect(),
        };
        let page = id.to_string();
        let report = self.mutate(Mutation {
            restrict: vec![Restrict { page, access }],
            ..Mutation::default()
        });
        assert_eq!(report.restricted, vec![id.to_string()], "no page {id}");
    }
    /// Replaces who may read space `key` (users by accountId, groups by name).
    pub fn set_space_read(&self, key: &str, users: &[&str], groups: &[&str]) {
        let access = ReadAccess {
            users: users.iter().map(|s| s.to_string()).collect(),
            groups: groups.iter().map(|s| s.to_string()).collect(),
        };
        let report = self.mutate(Mutation {
            space_read: vec![SpaceRead {
                space: key.into(),
                access,
            }],
            ..Mutation::default()
        });
        assert_eq!(report.space_read, vec![key.to_string()], "no space {key}");
    }
    pub fn create_pages(&self, n: usize) -> Vec<String> {
        self.mutate(Mutation {
            create: n,
            ..Mutation::default()
        })
        .created
    }
}
