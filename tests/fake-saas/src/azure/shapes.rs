//! JSON shapes as ARM sends them: a virtual machine (with its instance view on request) and the
//! `{"error":{"code","message"}}` error body.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::{Azure, AzureTruthVm};
use crate::common::json_reply;

pub(super) fn arm_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let message = message.into();
    json_reply(status, json!({"error": {"code": code, "message": message}}))
}

impl Azure {
    pub(super) fn vm_json(&self, vm: &AzureTruthVm, instance_view: bool) -> Value {
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
