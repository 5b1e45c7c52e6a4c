//! `[scheduler]`: how many scheduled sync runs go at once, on the node and per tenant.

use serde::Deserialize;

/// The validated `[scheduler]` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// Scheduled sync runs at once on this daemon.
    pub max_running: usize,
    /// Scheduled sync runs at once of any one tenant (so one tenant cannot take every slot).
    pub max_running_per_tenant: usize,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            max_running: 16,
            max_running_per_tenant: 2,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScheduler {
    max_running: Option<usize>,
    max_running_per_tenant: Option<usize>,
}

pub(super) fn build(raw: &RawScheduler) -> Result<SchedulerConfig, String> {
    let mut c = SchedulerConfig::default();
    if let Some(n) = raw.max_running {
        if !(1..=10_000).contains(&n) {
            return Err(format!(
                "scheduler.max_running: {n} is out of range (1..=10000)"
            ));
        }
        c.max_running = n;
    }
    if let Some(n) = raw.max_running_per_tenant {
        if !(1..=10_000).contains(&n) {
            return Err(format!(
                "scheduler.max_running_per_tenant: {n} is out of range (1..=10000)"
            ));
        }
        c.max_running_per_tenant = n;
    }
    if c.max_running_per_tenant > c.max_running {
        return Err(format!(
            "scheduler.max_running_per_tenant ({}) is larger than scheduler.max_running ({}): a tenant can never run more than the node",
            c.max_running_per_tenant, c.max_running
        ));
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_default_and_out_of_range_values_are_refused_by_name() {
        let raw = |a, b| RawScheduler {
            max_running: a,
            max_running_per_tenant: b,
        };
        assert_eq!(build(&raw(None, None)), Ok(SchedulerConfig::default()));
        assert!(
            build(&raw(Some(0), None))
                .unwrap_err()
                .contains("scheduler.max_running: 0")
        );
        let e = build(&raw(Some(4), Some(8))).unwrap_err();
        assert!(e.contains("larger than scheduler.max_running"), "{e}");
        assert_eq!(
            build(&raw(Some(4), Some(4))).map(|c| c.max_running_per_tenant),
            Ok(4)
        );
    }
}
