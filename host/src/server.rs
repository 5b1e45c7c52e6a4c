//! What the daemon serves on its one listener: the REST API ([`crate::api`]) with MCP over
//! streamable HTTP ([`crate::mcp`]) mounted at `/mcp`, and Airlock's own OAuth authorization
//! server ([`crate::api::authorization`], 404 unless configured), under the API's error shape
//! and body limit.

use std::sync::Arc;

use axum::Router;

use crate::app::Airlock;

/// REST, the dashboard and `/mcp`. MCP is a protocol endpoint, not a REST resource, so it
/// stays outside the route table and the OpenAPI description (docs/api.md describes it).
pub fn router(airlock: Arc<Airlock>) -> Router {
    // RFC 9728 metadata, at the root and at the path of `/mcp` (clients try both).
    let metadata = axum::routing::get(crate::api::oauth::resource_metadata);
    let r = crate::api::routes_router(&airlock)
        .route("/mcp", crate::mcp::route(airlock.clone()))
        .route("/.well-known/oauth-protected-resource", metadata.clone())
        .route("/.well-known/oauth-protected-resource/mcp", metadata)
        .merge(crate::api::authorization::routes());
    // Outermost, so a browser's preflight is answered before any access check.
    let cors = axum::middleware::from_fn_with_state(airlock.clone(), crate::api::cors::apply);
    crate::api::finish(r, airlock).layer(cors)
}

/// The daemon's listening socket with room for `backlog` connections not yet accepted.
/// `tokio::net::TcpListener::bind` asks `listen(2)` for 128, like the standard library: a burst
/// of a thousand clients overflowed that queue, the kernel dropped their SYNs, and each client
/// waited a one-second retransmit (`make bench`'s API burst, p99 1.3 s). The kernel caps the
/// value at `net.core.somaxconn`.
pub fn listen(
    addr: std::net::SocketAddr,
    backlog: u32,
) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As `TcpListener::bind` does: a restarted daemon rebinds without waiting out TIME_WAIT.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Connections the daemon has not accepted yet wait in the kernel's queue: with the
    /// backlog asked for, a burst of 400 all complete their handshake at once (with 128, the
    /// SYNs beyond the queue are dropped and those clients stall for a second-long retransmit).
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_burst_larger_than_the_usual_backlog_is_queued_without_retransmits() {
        const BURST: usize = 400;
        let somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(0);
        if somaxconn < BURST {
            eprintln!("skipped: net.core.somaxconn is {somaxconn}, below the burst of {BURST}");
            return;
        }
        let listener = listen("127.0.0.1:0".parse().unwrap(), 1024).unwrap();
        let addr = listener.local_addr().unwrap();
        let connects = (0..BURST).map(|_| {
            tokio::time::timeout(
                std::time::Duration::from_millis(700),
                tokio::net::TcpStream::connect(addr),
            )
        });
        let results = futures::future::join_all(connects).await;
        let connected = results.iter().filter(|r| matches!(r, Ok(Ok(_)))).count();
        assert_eq!(
            connected, BURST,
            "connections that stalled in the handshake"
        );
        drop(listener);
    }
}
