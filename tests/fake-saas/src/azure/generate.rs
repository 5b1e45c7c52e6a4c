//! The seeded data set: virtual machines across resource groups, locations and sizes, with power
//! and provisioning states (at least one failed), built deterministically from the seed.

use std::collections::BTreeMap;

use super::{AzureOptions, AzureTruthVm};
use crate::common::{Rng, rfc3339_secs, utc_ms};

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

pub(super) fn generate(opts: &AzureOptions) -> Vec<AzureTruthVm> {
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
