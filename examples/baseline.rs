//! The baseline of the tracking benchmark: a bare hyper 1 server answering every request with one
//! constant JSON body, so that `GET /api/tracking/{token}` can be reported as a ratio to it
//! (DESIGN §8). `scripts/bench-tracking.sh` runs both under the same wrk settings.
//!
//! ```text
//! cargo run --release --example baseline -- 127.0.0.1:8001 tracking.json
//! cargo run --release --example baseline -- 127.0.0.1:8001 --bytes 700
//! ```
//!
//! The body is the file's content (e.g. a real tracking answer saved with curl) or, with
//! `--bytes N`, a JSON object of N bytes. Loopback addresses only.

use std::convert::Infallible;
use std::net::SocketAddr;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Response, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// A JSON object of exactly `size` bytes (at least 10).
fn filler(size: usize) -> Bytes {
    let pad = size.saturating_sub(10);
    Bytes::from(format!(r#"{{"pad":"{}"}}"#, "x".repeat(pad)))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (addr, body) = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [addr, "--bytes", size] => (addr, filler(size.parse().context("--bytes N")?)),
        [addr, file] if file != "--help" && file != "-h" => (
            addr,
            Bytes::from(std::fs::read(file).with_context(|| format!("cannot read {file}"))?),
        ),
        _ => {
            println!(
                "usage: baseline ADDR FILE | baseline ADDR --bytes N\n\n\
                 Answers every request with 200 and the body (JSON) from FILE, or N bytes of JSON."
            );
            return Ok(());
        }
    };
    let addr: SocketAddr = addr.parse().context("ADDR like 127.0.0.1:8001")?;
    if !addr.ip().is_loopback() {
        bail!("{addr} is not a loopback address");
    }
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    println!(
        "baseline: {} bytes of JSON on http://{}",
        body.len(),
        listener.local_addr()?
    );
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let body = body.clone();
        tokio::spawn(async move {
            let service = service_fn(move |_request| {
                let body = body.clone();
                async move {
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header(header::CONTENT_TYPE, "application/json")
                            .body(Full::new(body))
                            .expect("valid response"),
                    )
                }
            });
            // Clients that hang up mid-request end their connection; nothing to report.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
