//! Azure fake (API-NOTES.md): the Azure AD v2 client-credentials token endpoint and ARM's
//! subscription-wide virtual machine listing (`api-version` required, Bearer token issued by the
//! token endpoint, pages of 20 with `nextLink`, instance view with `statusOnly=true` or
//! `$expand=instanceView`), ARM error bodies and the shared 429 knob.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::aad::{ARM_SCOPE, aad_error, check_scope};
use crate::common::{QueryParams, Rng, json_reply, rfc3339_secs, set_header, utc_ms};
use crate::control::{self, Control, RateLimitBody};
use crate::server::{self, Core, FakeState, RunningFake};

/// VMs per page of the listing.
pub const PAGE: usize = 20;
const API_VERSIONS: [&str; 6] = [
    "2023-03-01",
    "2023-07-01",
    "2023-09-01",
    "2024-03-01",
    "2024-07-01",
    "2024-11-01",
];

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

const LOCATIONS: [&str; 4] = ["westeurope", "northeurope", "eastus", "uksouth"];
const SIZES: [&str; 5] = [
    "Standard_B2s",
    "Standard_D2s_v5",
    "Standard_D4s_v5",
    "Standard_E8s_v5",
    "Standard_F4s_v2",
];
const ROLES: [&str; 5] = ["web", "api", "db", "batch", "jump"];
const GROUPS: [&str; 3] = ["rg-prod", "rg-staging", "rg-shared"];
const POWER: [&str; 3] = ["running", "deallocated", "stopped"];

fn generate(opts: &AzureOptions) -> Vec<AzureTruthVm> {
    let mut rng = Rng::new(opts.seed);
    let mut vms: Vec<AzureTruthVm> = (0..opts.vms)
        .map(|k| {
            let (role, group) = (rng.pick(&ROLES), rng.pick(&GROUPS));
            let name = format!("vm-{role}-{k:03}");
            let failed = rng.chance(1, 7);
            let power = if failed { "stopped" } else { rng.pick(&POWER) };
            let env = group.trim_start_matches("rg-");
            let mut tags = BTreeMap::from([("env".to_owned(), env.to_owned())]);
            if rng.chance(1, 2) {
                tags.insert("owner".into(), format!("team-{role}"));
            }
            let created = utc_ms(2024, 3, 1, 9, 0) / 1000 + k as i64 * 86_400;
            AzureTruthVm {
                id: format!(
                    "/subscriptions/{}/resourceGroups/{group}/providers/Microsoft.Compute/virtualMachines/{name}",
                    opts.subscription
                ),
                name,
                resource_group: group.into(),
                location: rng.pick(&LOCATIONS).into(),
                vm_size: rng.pick(&SIZES).into(),
                vm_id: format!(
                    "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
                    rng.next_u64() as u32,
                    rng.below(0x10000),
                    rng.below(0x1000),
                    rng.below(0x1000),
                    rng.next_u64() & 0xffff_ffff_ffff
                ),
                provisioning_state: if failed { "Failed" } else { "Succeeded" }.into(),
                power_state: power.into(),
                tags,
                time_created: rfc3339_secs(created),
            }
        })
        .collect();
    if !vms.is_empty() && vms.iter().all(|v| v.provisioning_state != "Failed") {
        let last = vms.len() - 1;
        vms[last].provisioning_state = "Failed".into();
    }
    vms
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

fn arm_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let message = message.into();
    json_reply(status, json!({"error": {"code": code, "message": message}}))
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

    fn vm_json(&self, vm: &AzureTruthVm, instance_view: bool) -> Value {
        let mut props = json!({
            "vmId": vm.vm_id, "hardwareProfile": {"vmSize": vm.vm_size},
            "provisioningState": vm.provisioning_state, "timeCreated": vm.time_created,
            "storageProfile": {"osDisk": {"osType": "Linux", "name": format!("{}_OsDisk", vm.name)}},
        });
        if instance_view {
            let prov = vm.provisioning_state.to_lowercase();
            props["instanceView"] = json!({"statuses": [
                {"code": format!("ProvisioningState/{prov}"), "level": if prov == "failed" { "Error" } else { "Info" },
                 "displayStatus": format!("Provisioning {prov}"), "time": vm.time_created},
                {"code": format!("PowerState/{}", vm.power_state), "level": "Info",
                 "displayStatus": format!("VM {}", vm.power_state)},
            ]});
        }
        json!({"name": vm.name, "id": vm.id, "type": "Microsoft.Compute/virtualMachines",
            "location": vm.location, "tags": vm.tags, "properties": props})
    }
}

/// `POST /{tenant}/oauth2/v2.0/token` (form-encoded client credentials).
async fn token(State(a): State<Arc<Azure>>, Path(tenant): Path<String>, body: Bytes) -> Response {
    a.token_requests.fetch_add(1, Ordering::Relaxed);
    let form: BTreeMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let bad = StatusCode::BAD_REQUEST;
    if tenant != a.opts.tenant {
        return aad_error(
            bad,
            "invalid_request",
            90002,
            &format!("Tenant '{tenant}' not found."),
        );
    }
    if field("grant_type") != "client_credentials" {
        return aad_error(
            bad,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    if field("client_id") != a.opts.client_id {
        return aad_error(
            bad,
            "unauthorized_client",
            700016,
            "Application was not found in the directory.",
        );
    }
    if field("client_secret") != a.opts.client_secret {
        return aad_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            "Invalid client secret provided.",
        );
    }
    if let Some(refused) = check_scope(field("scope"), ARM_SCOPE) {
        return refused;
    }
    let n = a.token_requests.load(Ordering::Relaxed);
    let lifetime = a.token_lifetime_secs.load(Ordering::Relaxed);
    let access_token = format!("eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.fake-arm-{n}.sig");
    a.tokens().insert(
        access_token.clone(),
        Instant::now() + Duration::from_secs(lifetime),
    );
    Json(
        json!({"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime,
        "access_token": access_token}),
    )
    .into_response()
}

/// `GET /subscriptions/{sub}/providers/Microsoft.Compute/virtualMachines`.
async fn list_vms(
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

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// ARM routes: count, 429 knob, Bearer token issued here. The token endpoint and `/_fake/` skip
/// the checks (the token endpoint is still counted).
async fn gate(State(a): State<Arc<Azure>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if crate::control::is_control(&path) {
        return next.run(req).await;
    }
    let limited = a.core.record(&path);
    if !path.starts_with("/subscriptions/") {
        return next.run(req).await;
    }
    if limited {
        let mut resp = arm_error(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "The request is being throttled as the limit has been reached for operation type - Read.",
        );
        set_header(&mut resp, "retry-after", "1");
        set_header(
            &mut resp,
            "x-ms-ratelimit-remaining-subscription-reads",
            "0",
        );
        return resp;
    }
    let (code, message) = match bearer(req.headers()) {
        None => (
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
        ),
        Some(t) if !a.tokens().contains_key(t) => {
            ("InvalidAuthenticationToken", "The access token is invalid.")
        }
        Some(t) if a.tokens().get(t).is_some_and(|exp| Instant::now() >= *exp) => (
            "ExpiredAuthenticationToken",
            "The access token expiry UTC time is earlier than current UTC time.",
        ),
        Some(_) => {
            let mut resp = next.run(req).await;
            set_header(
                &mut resp,
                "x-ms-ratelimit-remaining-subscription-reads",
                "11999",
            );
            return resp;
        }
    };
    let mut resp = arm_error(StatusCode::UNAUTHORIZED, code, message);
    let challenge = format!(
        "Bearer authorization_uri=\"https://login.microsoftonline.com/{}\", error=\"invalid_token\"",
        a.opts.tenant
    );
    set_header(&mut resp, "www-authenticate", &challenge);
    resp
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
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .route(
            "/subscriptions/{sub}/providers/Microsoft.Compute/virtualMachines",
            get(list_vms),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::http_with;

    #[tokio::test]
    async fn token_listing_paging_and_errors() {
        let f = spawn_azure(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            AzureOptions::default(),
        )
        .await
        .expect("fake");
        let o = AzureOptions::default();
        let list = format!(
            "/subscriptions/{}/providers/Microsoft.Compute/virtualMachines",
            o.subscription
        );
        let r = http_with(
            f.addr,
            "GET",
            &format!("{list}?api-version=2024-07-01"),
            &[],
            None,
        )
        .await
        .unwrap();
        assert_eq!(
            (r.status, r.json()["error"]["code"].as_str()),
            (401, Some("AuthenticationFailed"))
        );

        let token_path = format!("/{}/oauth2/v2.0/token", o.tenant);
        let form = |scope: &str| {
            format!(
                "grant_type=client_credentials&client_id={}&client_secret={}&scope={scope}",
                o.client_id, o.client_secret
            )
        };
        let ct = [("Content-Type", "application/x-www-form-urlencoded")];
        let r = http_with(
            f.addr,
            "POST",
            &token_path,
            &ct,
            Some(&form("https%3A%2F%2Fmanagement.azure.com%2F")),
        )
        .await
        .unwrap();
        assert_eq!(r.status, 400);
        assert!(
            r.json()["error_description"]
                .as_str()
                .unwrap()
                .starts_with("AADSTS1002012")
        );
        let r = http_with(
            f.addr,
            "POST",
            &token_path,
            &ct,
            Some(&form("https%3A%2F%2Fmanagement.azure.com%2F.default")),
        )
        .await
        .unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        assert_eq!(
            (v["token_type"].as_str(), v["expires_in"].as_u64()),
            (Some("Bearer"), Some(3599))
        );
        let auth = format!("Bearer {}", v["access_token"].as_str().unwrap());
        let h = [("Authorization", auth.as_str())];

        let r = http_with(f.addr, "GET", &list, &h, None).await.unwrap();
        assert_eq!(
            (r.status, r.json()["error"]["code"].as_str()),
            (400, Some("MissingApiVersionParameter"))
        );
        let (mut path, mut vms) = (
            format!("{list}?api-version=2024-07-01&statusOnly=true"),
            Vec::new(),
        );
        loop {
            let r = http_with(f.addr, "GET", &path, &h, None).await.unwrap();
            assert_eq!(r.status, 200, "{}", r.body);
            let v = r.json();
            let page = v["value"].as_array().unwrap();
            assert!(page.len() <= PAGE);
            vms.extend(page.iter().cloned());
            match v["nextLink"].as_str() {
                Some(next) => path = next.strip_prefix(&f.base_url).unwrap().to_owned(),
                None => break,
            }
        }
        let truth = f.truth();
        assert_eq!(vms.len(), truth.vms.len());
        assert_eq!(truth.token_requests, 2);
        assert!(truth.vms.iter().any(|v| v.provisioning_state == "Failed"));
        let code = vms[0]
            .pointer("/properties/instanceView/statuses/1/code")
            .and_then(Value::as_str);
        assert_eq!(
            code,
            Some(format!("PowerState/{}", truth.vms[0].power_state).as_str())
        );
        assert_eq!(
            vms[0]["properties"]["hardwareProfile"]["vmSize"].as_str(),
            Some(truth.vms[0].vm_size.as_str())
        );
        let r = http_with(
            f.addr,
            "GET",
            &format!("{list}?api-version=2024-07-01"),
            &h,
            None,
        )
        .await
        .unwrap();
        assert!(
            r.json()["value"][0]["properties"]
                .get("instanceView")
                .is_none()
        );
        let bad = [("Authorization", "Bearer forged")];
        let r = http_with(
            f.addr,
            "GET",
            &format!("{list}?api-version=2024-07-01"),
            &bad,
            None,
        )
        .await
        .unwrap();
        assert_eq!(r.status, 401);
    }

    #[tokio::test]
    async fn token_endpoint_refuses_other_resources_and_tokens_expire() {
        let o = AzureOptions::default();
        let f = spawn_azure(SocketAddr::from(([127, 0, 0, 1], 0)), o.clone())
            .await
            .expect("fake");
        let token_path = format!("/{}/oauth2/v2.0/token", o.tenant);
        let ct = [("Content-Type", "application/x-www-form-urlencoded")];
        let ask = |scope: &str| {
            let body = format!(
                "grant_type=client_credentials&client_id={}&client_secret={}&scope={}",
                o.client_id,
                o.client_secret,
                form_urlencoded::byte_serialize(scope.as_bytes()).collect::<String>()
            );
            let (addr, path) = (f.addr, token_path.clone());
            async move {
                http_with(addr, "POST", &path, &ct, Some(&body))
                    .await
                    .unwrap()
            }
        };
        let r = ask("https://graph.microsoft.com/.default").await;
        assert_eq!(
            (r.status, r.json()["error"].as_str()),
            (400, Some("invalid_scope")),
            "{}",
            r.body
        );
        assert!(
            r.json()["error_description"]
                .as_str()
                .unwrap_or("")
                .starts_with("AADSTS70011: ")
        );

        f.set_token_lifetime_secs(0);
        let r = ask(ARM_SCOPE).await;
        assert_eq!(r.json()["expires_in"].as_u64(), Some(0));
        let auth = format!("Bearer {}", r.json()["access_token"].as_str().unwrap());
        let list = format!(
            "/subscriptions/{}/providers/Microsoft.Compute/virtualMachines?api-version=2024-07-01",
            o.subscription
        );
        let r = http_with(f.addr, "GET", &list, &[("Authorization", &auth)], None)
            .await
            .unwrap();
        assert_eq!(
            (r.status, r.json()["error"]["code"].as_str()),
            (401, Some("ExpiredAuthenticationToken"))
        );
    }
}
