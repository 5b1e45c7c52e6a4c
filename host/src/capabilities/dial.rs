//! Opening one upstream connection: straight to the target through the gate's resolver, or
//! through the egress proxy. The grant's address rules always judge the *target*: a named
//! target is resolved and checked here before the proxy is asked to reach it, exactly as a
//! direct connection would be, so a proxy never becomes a way around `allow_private`. The proxy's
//! own address is exempt: the operator configured it.
//!
//! HTTPS targets go through a CONNECT tunnel (hyper-util's `Tunnel`), so TLS stays end to end and
//! the certificate is checked against the target's name. Plain `http://` targets are sent to the
//! proxy as absolute-form requests (`GET http://host/path`), as HTTP proxies expect.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower_service::Service;

use super::resolver::GateResolver;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The proxy and the plain connector that reaches it.
pub struct ProxyRoute {
    pub matcher: Matcher,
    /// Resolves the proxy's name (with `[resolve]` overrides) without the address rules.
    pub to_proxy: HttpConnector<GateResolver>,
}

/// The connector under the TLS layer of every upstream pool.
#[derive(Clone)]
pub struct Dialer {
    /// Direct connections, through the resolver that applies the grant's address rules.
    pub direct: HttpConnector<GateResolver>,
    /// That resolver, to check a proxied target's addresses before the proxy reaches them.
    pub resolver: GateResolver,
    pub proxy: Option<Arc<ProxyRoute>>,
}

/// A connection, and whether it is to a proxy that expects absolute-form requests.
pub struct GateStream {
    io: TokioIo<TcpStream>,
    absolute_form: bool,
}

impl Service<Uri> for Dialer {
    type Response = GateStream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<GateStream, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let via = self.proxy.as_ref().and_then(|p| {
            p.matcher
                .intercept(&dst)
                .map(|i| (p.clone(), i.uri().clone()))
        });
        let Some((route, proxy_uri)) = via else {
            let mut direct = self.direct.clone();
            return Box::pin(async move {
                let io = direct.call(dst).await.map_err(BoxError::from)?;
                Ok(GateStream {
                    io,
                    absolute_form: false,
                })
            });
        };
        let mut resolver = self.resolver.clone();
        Box::pin(async move {
            check_target(&mut resolver, &dst).await?;
            let mut to_proxy = route.to_proxy.clone();
            if dst.scheme_str() == Some("https") {
                let io = Tunnel::new(proxy_uri, to_proxy)
                    .call(dst)
                    .await
                    .map_err(|e| BoxError::from(format!("through the egress proxy: {e}")))?;
                Ok(GateStream {
                    io,
                    absolute_form: false,
                })
            } else {
                let io = to_proxy
                    .call(proxy_uri)
                    .await
                    .map_err(|e| BoxError::from(format!("connecting to the egress proxy: {e}")))?;
                Ok(GateStream {
                    io,
                    absolute_form: true,
                })
            }
        })
    }
}

/// The target's addresses must pass the grant's rules even though the proxy, not we, connects.
/// An IP literal was judged when the request was admitted (as for a direct connection).
async fn check_target(resolver: &mut GateResolver, dst: &Uri) -> Result<(), BoxError> {
    let host = dst.host().unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let name = Name::from_str(bare)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "not a host name"))?;
    resolver.call(name).await?;
    Ok(())
}

impl Connection for GateStream {
    fn connected(&self) -> Connected {
        self.io.connected().proxy(self.absolute_form)
    }
}

impl hyper::rt::Read for GateStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for GateStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
}
