//! What both examples need: the shared test world with the Hub as its bus, a serving loop, and
//! clients with small buffers.

use std::convert::Infallible;
use std::sync::Arc;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use medex_core::testkit::{Options, World};
use medex_ws::{Hub, WsServer};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Error;
use tokio_tungstenite::tungstenite::handshake::client::Response;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The shared test world on the in-memory store and the system clock, publishing to `hub`.
pub(crate) async fn world(hub: &Arc<Hub>) -> World {
    World::with(Options {
        bus: Some(hub.clone()),
        live_clock: true,
        ..Options::default()
    })
    .await
}

/// Serves `ws` on every connection `listener` accepts, for ever.
pub(crate) async fn serve(ws: WsServer, listener: TcpListener) {
    while let Ok((stream, _)) = listener.accept().await {
        let ws = ws.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let ws = ws.clone();
                async move { Ok::<_, Infallible>(ws.handle(req).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

/// A client with small buffers: thousands of them share one process.
pub(crate) async fn connect(
    url: &str,
) -> Result<(WebSocketStream<MaybeTlsStream<TcpStream>>, Response), Error> {
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    tokio_tungstenite::connect_async_with_config(url, Some(config), false).await
}
