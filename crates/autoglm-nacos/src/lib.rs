//! The console's Nacos-compatible config API, so that applications using a
//! Nacos client today read their configuration from autoglm unchanged.
//!
//! Mapping: a Nacos namespace is an environment of the caller's tenant (the
//! empty or `public` namespace its default environment), a group is a group,
//! a `dataId` a key. Clients log in with an autoglm user's name and password,
//! or any name and an API key as the password; every read and write is
//! checked, versioned and audited as through the console's own API, and
//! reaches watchers through the same hub.

pub mod grpc;
pub mod http;
pub mod listen;
pub mod ops;

use std::net::SocketAddr;

use autoglm_console::AppState;
use tokio::net::TcpListener;

/// The offset of the gRPC port from the HTTP port, as Nacos clients assume.
pub const GRPC_OFFSET: u16 = 1000;

/// The Nacos port (HTTP) and the one beside it (gRPC, HTTP + 1000).
#[derive(Debug)]
pub struct Listeners {
    /// The HTTP API.
    pub http: TcpListener,
    /// The gRPC API.
    pub grpc: TcpListener,
}

impl Listeners {
    /// Binds `addr` and `addr + 1000`; with port 0, a free pair.
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Listeners> {
        if addr.port() != 0 {
            let grpc_port = addr.port().checked_add(GRPC_OFFSET).ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("port {} + {GRPC_OFFSET} is past 65535", addr.port()),
                )
            })?;
            let http = TcpListener::bind(addr).await?;
            let grpc = TcpListener::bind(SocketAddr::new(addr.ip(), grpc_port)).await?;
            return Ok(Listeners { http, grpc });
        }
        // An ephemeral port whose neighbour + 1000 is free too.
        for _ in 0..100 {
            let http = TcpListener::bind(addr).await?;
            let port = http.local_addr()?.port();
            let Some(grpc_port) = port.checked_add(GRPC_OFFSET) else {
                continue;
            };
            if let Ok(grpc) = TcpListener::bind(SocketAddr::new(addr.ip(), grpc_port)).await {
                return Ok(Listeners { http, grpc });
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            "no free pair of ports P and P+1000 found",
        ))
    }

    /// The HTTP address.
    pub fn http_addr(&self) -> std::io::Result<SocketAddr> {
        self.http.local_addr()
    }
}

/// Serves the Nacos API on `listeners` until `shutdown` completes.
pub async fn serve(
    state: AppState,
    listeners: Listeners,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let grpc_app = grpc::router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let grpc = tokio::spawn(
        axum::serve(listeners.grpc, grpc_app)
            .with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .into_future(),
    );
    axum::serve(listeners.http, http::router(state))
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stop.send(true);
        })
        .await?;
    grpc.await.map_err(std::io::Error::other)?
}
