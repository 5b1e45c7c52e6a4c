//! `[invocations]`: how many invocations (API, MCP, `ask`, routes, embedding calls) run at once,
//! on the node and per tenant, and how long one waits for a turn. Each running invocation holds
//! one instance of the shared pool: without a per-tenant cap one tenant's burst could take every
//! instance and make every other tenant's calls fail.

use std::time::Duration;

use serde::Deserialize;

/// The validated `[invocations]` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvocationsConfig {
    /// Invocations running at once on this daemon.
    pub max_running: usize,
    /// Invocations running at once of any one tenant.
    pub max_running_per_tenant: usize,
    /// How long an invocation waits for a turn before it is refused as `rate-limited` (429).
    pub queue_wait: Duration,
}

impl Default for InvocationsConfig {
    fn default() -> Self {
        InvocationsConfig {
            max_running: 128,
            max_running_per_tenant: 32,
            queue_wait: Duration::from_secs(30),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInvocations {
    max_running: Option<usize>,
    max_running_per_tenant: Option<usize>,
    queue_wait: Option<String>,
}

pub(super) fn build(raw: &RawInvocations) -> Result<InvocationsConfig, String> {
    let mut c = InvocationsConfig::default();
    for (name, value, slot) in [
        ("max_running", raw.max_running, &mut c.max_running),
        (
            "max_running_per_tenant",
            raw.max_running_per_tenant,
            &mut c.max_running_per_tenant,
        ),
    ] {
        if let Some(n) = value {
            if !(1..=10_000).contains(&n) {
                return Err(format!(
                    "invocations.{name}: {n} is out of range (1..=10000)"
                ));
            }
            *slot = n;
        }
    }
    if c.max_running_per_tenant > c.max_running {
        return Err(format!(
            "invocations.max_running_per_tenant ({}) is larger than invocations.max_running ({}): a tenant can never run more than the node",
            c.max_running_per_tenant, c.max_running
        ));
    }
    if let Some(w) = &raw.queue_wait {
        let d = humantime::parse_duration(w)
            .map_err(|e| format!("invocations.queue_wait: `{w}` is not a duration ({e})"))?;
        if d > Duration::from_secs(600) {
            return Err(format!(
                "invocations.queue_wait: `{w}` is longer than 10m (a caller would wait that long)"
            ));
        }
        c.queue_wait = d;
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<InvocationsConfig, String> {
        let raw: RawInvocations = toml::from_str(text).map_err(|e| e.to_string())?;
        build(&raw)
    }

    #[test]
    fn caps_default_and_bad_values_are_refused_by_name() {
        assert_eq!(parse(""), Ok(InvocationsConfig::default()));
        let c =
            parse("max_running = 8\nmax_running_per_tenant = 2\nqueue_wait = \"250ms\"").unwrap();
        assert_eq!(
            (c.max_running, c.max_running_per_tenant, c.queue_wait),
            (8, 2, Duration::from_millis(250))
        );
        assert!(
            parse("max_running = 0")
                .unwrap_err()
                .contains("invocations.max_running: 0")
        );
        let e = parse("max_running = 4\nmax_running_per_tenant = 8").unwrap_err();
        assert!(e.contains("larger than invocations.max_running"), "{e}");
        assert!(
            parse("queue_wait = \"soon\"")
                .unwrap_err()
                .contains("invocations.queue_wait")
        );
        assert!(parse("queue_wait = \"1h\"").is_err());
        assert!(parse("max_waiting = 3").is_err());
    }
}
