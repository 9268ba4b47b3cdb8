//! medex-ws over real sockets: a hyper server on 127.0.0.1:0 calling `WsServer::handle`, and
//! tokio-tungstenite clients.

mod auth;
mod backpressure;
mod flows;
mod limits;
mod support;
