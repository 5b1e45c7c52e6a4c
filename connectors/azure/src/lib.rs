//! Azure Resource Manager connector: the virtual machines of one subscription (with power state)
//! as a sync stream, and a read-only `failed-provisions` action. Holds no credentials: the host's
//! OAuth2 client-credentials grant fetches, caches and injects the Bearer token.
//!
//! Settings: `base_url` (`https://management.azure.com`), `subscription_id`.

use airlock_sdk::paging::ODataPage;
use airlock_sdk::serde_json::{self, Value, json};
use airlock_sdk::{
    ActionInfo, BaseUrl, Connector, ConnectorInfo, Document, Error, HealthStatus, NoInput, Request,
    Result, SyncPage,
};
use serde::{Deserialize, Serialize};

struct Azure;

airlock_sdk::export_connector!(Azure);

const API_VERSION: &str = "2024-07-01";
/// The virtual machines of the subscription, under its scope.
const VMS: &str = "/providers/Microsoft.Compute/virtualMachines";
/// Upper bound on pages one `failed-provisions` call walks.
const MAX_PAGES: usize = 500;

impl Connector for Azure {
    fn info() -> ConnectorInfo {
        let about = "Azure Resource Manager: virtual machines of a subscription";
        let vms = "Virtual machines with size, location, provisioning and power state \
                   (full listing each run, one page per call).";
        let failed = "Virtual machines whose provisioningState is Failed.";
        ConnectorInfo::new("azure", env!("CARGO_PKG_VERSION"), about)
            .stream("virtual-machines", vms)
            .action(ActionInfo::new::<NoInput>("failed-provisions", failed))
    }

    fn health() -> Result<HealthStatus> {
        let cfg = Config::load()?;
        Request::get(cfg.list_url()).send()?;
        let message = format!(
            "ARM accepted the token for subscription {}",
            cfg.subscription
        );
        Ok(HealthStatus::ok(message))
    }

    fn sync(stream: String, cursor: Option<String>) -> Result<SyncPage> {
        if stream != "virtual-machines" {
            return Err(Error::unknown_stream(&stream, ["virtual-machines"]));
        }
        let cfg = Config::load()?;
        let cursor: Cursor = airlock_sdk::cursor::position(cursor.as_deref())?;
        let url = match cursor.next {
            Some(next) => cfg.checked(&next)?,
            None => cfg.list_url(),
        };
        let page: ODataPage<Vm> = Request::get(url).send()?.json()?;
        let next = cfg.next(page.next_link.as_deref())?;
        let done = next.is_none() || page.value.is_empty();
        let upserts = page.value.iter().map(Vm::document).collect();
        let next = next.filter(|_| !done);
        Ok(SyncPage::next(upserts, &Cursor { next }).done(done))
    }

    fn invoke(action: String, input: String) -> Result<String> {
        if action != "failed-provisions" {
            return Err(Error::unknown_action(&action));
        }
        // Blank input and `null` count as no input, like `{}`.
        let input: Value = serde_json::from_str(if input.trim().is_empty() {
            "{}"
        } else {
            &input
        })
        .map_err(|e| Error::invalid_input(format!("input is not JSON: {e}")))?;
        if !input.is_null() && input.as_object().is_none_or(|o| !o.is_empty()) {
            return Err(Error::invalid_input("`failed-provisions` takes no input"));
        }
        let cfg = Config::load()?;
        let (mut url, mut failed) = (cfg.list_url(), Vec::new());
        for _ in 0..MAX_PAGES {
            let page: ODataPage<Vm> = Request::get(&url).send()?.json()?;
            failed.extend(page.value.iter().filter(|v| v.failed()).map(Vm::summary));
            match cfg.next(page.next_link.as_deref())? {
                Some(next) if !page.value.is_empty() => url = next,
                _ => return Ok(json!({"count": failed.len(), "vms": failed}).to_string()),
            }
        }
        Err(Error::upstream(format!(
            "more than {MAX_PAGES} pages of virtual machines"
        )))
    }
}

#[derive(Deserialize)]
struct Settings {
    base_url: BaseUrl,
    subscription_id: String,
}

struct Config {
    subscription: String,
    /// `{base_url}/subscriptions/{subscription}`: next links must stay under it.
    scope: BaseUrl,
}

impl Config {
    fn load() -> Result<Config> {
        let s: Settings = airlock_sdk::settings::load()?;
        let subscription = s.subscription_id;
        if !subscription
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(Error::invalid_input(format!(
                "setting `subscription_id` is not a subscription id: {subscription:?}"
            )));
        }
        let scope = s.base_url.under(&format!("/subscriptions/{subscription}"));
        Ok(Config {
            subscription,
            scope,
        })
    }

    /// First page of the VM listing, with the instance view's statuses (power state).
    fn list_url(&self) -> String {
        let query = format!("?api-version={API_VERSION}&statusOnly=true");
        self.scope.join(&format!("{VMS}{query}"))
    }

    /// A `nextLink` (absolute, or relative to the listing), accepted only under this
    /// subscription on the configured host.
    fn checked(&self, link: &str) -> Result<String> {
        self.scope.follow(VMS, link)
    }

    /// [`Config::checked`] for a link the upstream may leave out (the last page).
    fn next(&self, link: Option<&str>) -> Result<Option<String>> {
        self.scope.follow_opt(VMS, link)
    }
}

#[derive(Default, Serialize, Deserialize)]
struct Cursor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

// ---- Upstream shapes (tolerant: every field but the id may be missing or null) -----------------

#[derive(Deserialize)]
struct Vm {
    id: String,
    name: Option<String>,
    location: Option<String>,
    #[serde(default)]
    tags: Option<Value>,
    #[serde(default)]
    properties: Properties,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Properties {
    vm_id: Option<String>,
    #[serde(default)]
    hardware_profile: HardwareProfile,
    provisioning_state: Option<String>,
    time_created: Option<String>,
    instance_view: Option<InstanceView>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct HardwareProfile {
    vm_size: Option<String>,
}

#[derive(Deserialize, Default)]
struct InstanceView {
    #[serde(default)]
    statuses: Vec<Status>,
}

#[derive(Deserialize)]
struct Status {
    code: Option<String>,
    time: Option<String>,
}

impl Vm {
    fn failed(&self) -> bool {
        let state = self.properties.provisioning_state.as_deref();
        state.is_some_and(|s| s.eq_ignore_ascii_case("failed"))
    }

    fn statuses(&self) -> impl Iterator<Item = &Status> {
        let view = self.properties.instance_view.as_ref();
        view.into_iter().flat_map(|v| v.statuses.iter())
    }

    /// `running` from `PowerState/running`; `None` without an instance view.
    fn power_state(&self) -> Option<&str> {
        self.statuses()
            .find_map(|s| s.code.as_deref()?.strip_prefix("PowerState/"))
    }

    fn summary(&self) -> Value {
        let p = &self.properties;
        json!({"id": self.id, "name": self.name, "location": self.location,
            "vmSize": p.hardware_profile.vm_size, "provisioningState": p.provisioning_state,
            "powerState": self.power_state()})
    }

    fn document(&self) -> Document {
        let p = &self.properties;
        let or = |v: Option<&str>| v.unwrap_or("unknown").to_owned();
        let name = self.name.clone().unwrap_or_else(|| self.id.clone());
        let body = format!(
            "Virtual machine {name} ({}) in {}. Provisioning state: {}. Power state: {}.",
            or(p.hardware_profile.vm_size.as_deref()),
            or(self.location.as_deref()),
            or(p.provisioning_state.as_deref()),
            or(self.power_state()),
        );
        let meta = json!({"location": self.location, "vmSize": p.hardware_profile.vm_size,
            "provisioningState": p.provisioning_state, "powerState": self.power_state(),
            "tags": self.tags.clone().unwrap_or_else(|| json!({})), "vmId": p.vm_id});
        // ARM has no modification time for a VM: the newest status time, else its creation.
        let updated_at = self
            .statuses()
            .filter_map(|s| s.time.as_deref())
            .chain(p.time_created.as_deref())
            .max_by_key(|t| airlock_sdk::text::parse_rfc3339(t).unwrap_or(i64::MIN))
            .unwrap_or_default()
            .to_owned();
        Document::new("vm", &self.id, name)
            .body(body)
            .url(format!("https://portal.azure.com/#resource{}", self.id))
            .updated_at(updated_at)
            .metadata(meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_maps() {
        let page: ODataPage<Vm> = serde_json::from_value(json!({"value": [{
            "id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/web1",
            "name": "web1", "location": "westeurope", "tags": {"env": "prod"},
            "properties": {"vmId": "u", "hardwareProfile": {"vmSize": "Standard_B2s"},
                "provisioningState": "Failed", "timeCreated": "2025-01-01T00:00:00Z",
                "instanceView": {"statuses": [
                    {"code": "ProvisioningState/failed", "time": "2025-02-01T00:00:00Z"},
                    {"code": "PowerState/deallocated"}]}}}]}))
        .unwrap();
        let vm = &page.value[0];
        assert!(vm.failed() && page.next_link.is_none());
        let d = vm.document();
        assert_eq!((d.kind.as_str(), d.title.as_str()), ("vm", "web1"));
        assert_eq!(d.updated_at, "2025-02-01T00:00:00Z");
        assert!(d.body.contains("Standard_B2s") && d.body.contains("deallocated"));
        let meta: Value = serde_json::from_str(&d.metadata).unwrap();
        assert_eq!(meta["powerState"], "deallocated");
        assert_eq!(meta["tags"], json!({"env": "prod"}));
        assert_eq!(vm.summary()["provisioningState"], "Failed");
    }

    #[test]
    fn next_links_stay_in_the_subscription() {
        let cfg = Config {
            subscription: "sub-1".into(),
            scope: BaseUrl::parse("http://127.0.0.1:8785/subscriptions/sub-1").unwrap(),
        };
        assert!(cfg.list_url().contains("api-version=2024-07-01"));
        assert!(cfg.list_url().ends_with("&statusOnly=true"));
        let ok = "http://127.0.0.1:8785/subscriptions/sub-1/providers/x?$skiptoken=20";
        assert_eq!(cfg.checked(ok).unwrap(), ok);
        assert!(cfg.checked("https://evil/subscriptions/sub-1/").is_err());
        assert!(
            cfg.checked("http://127.0.0.1:8785/subscriptions/sub-2/x")
                .is_err()
        );
        assert!(
            cfg.checked("http://127.0.0.1:8785/subscriptions/sub-10/x")
                .is_err()
        );
    }
}
