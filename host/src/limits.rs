//! Per-connector resource limits: what one invocation may spend in time and memory, and what the
//! gate lets through in bytes, time and denied requests. Set in `[limits]` and per connector.
//! Also the engine-wide address space a memory slot reserves (`[server] memory_reservation`).

use std::time::Duration;

/// Per-invocation and outbound limits. Every field can be overridden per connector.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Wall-clock deadline of one invocation (epoch interruption + tokio timeout).
    pub timeout: Duration,
    /// Linear-memory limit of one instance.
    pub memory_bytes: usize,
    /// Largest upstream response body handed to a connector.
    pub max_response_bytes: usize,
    /// Largest request body a connector may send.
    pub max_request_bytes: usize,
    /// TCP (+TLS) connect timeout for upstream connections.
    pub connect_timeout: Duration,
    /// Time allowed until the upstream's response headers arrive.
    pub first_byte_timeout: Duration,
    /// Denied outbound requests one invocation may make; past it the invocation is stopped.
    pub denial_budget: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(30),
            memory_bytes: 64 << 20,
            max_response_bytes: 16 << 20,
            max_request_bytes: 4 << 20,
            connect_timeout: Duration::from_secs(5),
            first_byte_timeout: Duration::from_secs(30),
            denial_budget: 100,
        }
    }
}

/// `[server] memory_reservation`: how much address space each slot of the instance pool
/// reserves for a guest's linear memory. Engine-wide (compiled code depends on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MemoryReservation {
    /// `"limit"` (default): the largest memory limit, rounded up to whole wasm pages. Virtual
    /// memory stays bounded (slots × limit); guest code checks its loads and stores' bounds.
    #[default]
    Limit,
    /// `"4GiB"`: the whole 32-bit address range, so the compiler elides the guest's bounds
    /// checks (guest code runs faster; `make bench` shows by how much). The price is 4 GiB of
    /// address space per slot (about 2 TiB for the default pool), which `ulimit -v`, container
    /// limits and some monitoring refuse or flag. The memory limit itself still holds.
    FourGiB,
}

impl MemoryReservation {
    /// Reads the config value: `"limit"` or `"4GiB"` (any case).
    pub fn parse(text: &str) -> Option<MemoryReservation> {
        match text.to_ascii_lowercase().as_str() {
            "limit" => Some(MemoryReservation::Limit),
            "4gib" => Some(MemoryReservation::FourGiB),
            _ => None,
        }
    }
}
