//! Azure fake (API-NOTES.md): the Azure AD v2 client-credentials token endpoint and ARM's
//! subscription-wide virtual machine listing (`api-version` required, Bearer token issued by the
//! token endpoint, pages of 20 with `nextLink`, instance view with `statusOnly=true` or
//! `$expand=instanceView`), ARM error bodies and the shared 429 knob.
//!
//! This module holds the public face (options, ground truth, the state, the router,
//! `spawn_azure` and the [`RunningFake`] helpers); each concern lives in its own module below.

mod gate;
mod generate;
mod shapes;
#[cfg(test)]
mod tests;
mod token;
mod vms;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Router, middleware};
use serde::{Deserialize, Serialize};

use self::gate::gate;
use self::generate::generate;
use self::shapes::arm_error;
use crate::control::{self, Control, RateLimitBody};
use crate::server::{self, Core, FakeState, RunningFake};

/// VMs per page of the listing.
pub const PAGE: usize = 20;

#[derive(Clone, Debug)]
pub struct AzureOptions {
    pub tenant: String,
    pub client_id: String,
    pub client_secret: String,
    pub subscription: String,
    pub vms: usize,
    pub seed: u64,
    /// Answer every N-th ARM request with 429 + Retry-After.
    pub rate_limit_every: Option<u64>,
    /// `expires_in` of issued tokens; ARM refuses a token after it (`ExpiredAuthenticationToken`).
    pub token_lifetime_secs: u64,
}

impl Default for AzureOptions {
    fn default() -> Self {
        AzureOptions {
            tenant: "demo-tenant".into(),
            client_id: "demo-azure-client".into(),
            client_secret: "demo-azure-secret".into(),
            subscription: "2f0e1d2c-3b4a-4958-8776-a5b4c3d2e1f0".into(),
            vms: 57,
            seed: 23,
            rate_limit_every: None,
            token_lifetime_secs: 3599,
        }
    }
}

/// One virtual machine as ARM shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AzureTruthVm {
    /// Full resource id.
    pub id: String,
    pub name: String,
    pub resource_group: String,
    pub location: String,
    pub vm_size: String,
    pub vm_id: String,
    /// `Succeeded` or `Failed`.
    pub provisioning_state: String,
    /// `running`, `deallocated` or `stopped`.
    pub power_state: String,
    pub tags: BTreeMap<String, String>,
    pub time_created: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AzureTruth {
    /// In listing order.
    pub vms: Vec<AzureTruthVm>,
    /// Requests to the token endpoint (accepted or not).
    pub token_requests: u64,
}

/// Shared state of a running Azure fake.
pub struct Azure {
    core: Core,
    opts: AzureOptions,
    base_url: String,
    vms: Vec<AzureTruthVm>,
    tokens: Mutex<HashMap<String, Instant>>,
    token_lifetime_secs: AtomicU64,
    token_requests: AtomicU64,
}

impl FakeState for Azure {
    fn core(&self) -> &Core {
        &self.core
    }
}

impl Azure {
    fn tokens(&self) -> MutexGuard<'_, HashMap<String, Instant>> {
        self.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn truth(&self) -> AzureTruth {
        AzureTruth {
            vms: self.vms.clone(),
            token_requests: self.token_requests.load(Ordering::Relaxed),
        }
    }
}

impl Control for Azure {
    type Truth = AzureTruth;
    fn ground_truth(&self) -> AzureTruth {
        self.truth()
    }
    /// The token requests are reset with the request counts.
    fn reset_own_counters(&self) {
        self.token_requests.store(0, Ordering::Relaxed);
    }
    fn configure(&self, body: &[u8]) -> Response {
        control::configure_rate_limit(&self.core, body, RateLimitBody::Required)
    }
}

fn router(state: Arc<Azure>) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token::token))
        .route(
            "/subscriptions/{sub}/providers/Microsoft.Compute/virtualMachines",
            get(vms::list_vms),
        )
        .merge(control::routes::<Azure>())
        .fallback(|| async {
            arm_error(
                StatusCode::NOT_FOUND,
                "InvalidResourceType",
                "The resource type could not be found.",
            )
        })
        .layer(middleware::from_fn_with_state(state.clone(), gate))
        .with_state(state)
}

/// Starts the Azure fake on `listen` (port 0 picks a free port).
pub async fn spawn_azure(
    listen: SocketAddr,
    opts: AzureOptions,
) -> std::io::Result<RunningFake<Azure>> {
    let (listener, _, base_url) = server::bind(listen).await?;
    let state = Arc::new(Azure {
        core: Core::new(opts.rate_limit_every),
        vms: generate(&opts),
        token_lifetime_secs: AtomicU64::new(opts.token_lifetime_secs),
        opts,
        base_url: base_url.clone(),
        tokens: Mutex::default(),
        token_requests: AtomicU64::new(0),
    });
    Ok(server::start(
        listener,
        base_url,
        state.clone(),
        router(state),
    ))
}

impl RunningFake<Azure> {
    /// The VMs and the number of token requests so far.
    pub fn truth(&self) -> AzureTruth {
        self.state.truth()
    }
    /// Requests to the token endpoint so far.
    pub fn token_requests(&self) -> u64 {
        self.state.token_requests.load(Ordering::Relaxed)
    }
    /// `expires_in` of tokens issued from now on.
    pub fn set_token_lifetime_secs(&self, secs: u64) {
        self.state
            .token_lifetime_secs
            .store(secs, Ordering::Relaxed);
    }
    /// `{base_url}/{tenant}/oauth2/v2.0/token`.
    pub fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.base_url, self.state.opts.tenant
        )
    }
}
