//! One upgraded connection: its task reads the client, drains its outbox, pings, and closes.
//!
//! Everything a connection does happens in its own task, so a slow client costs only itself:
//! the hub never waits for it, and writes to it give up after [`WsConfig::write_timeout`].

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use chrono::Utc;
use futures_util::{SinkExt, StreamExt};
use medex_core::MedEx;
use medex_core::error::{Error, FieldError, Invalid};
use medex_core::fields::FieldErrors;
use medex_core::model::DriverId;
use medex_core::permissions::Actor;
use medex_core::service::FixInput;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, Sleep, sleep_until, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::config::WsConfig;
use crate::hub::{End, Subscription};
use crate::messages::{self, ClientMessage, FieldProblem};
use crate::open::OpenConnection;

/// Outgoing messages longer than the write buffer are sent in fragments of its size, at least
/// this long.
const MIN_FRAGMENT: usize = 1024;

/// Who is on the other end.
pub(crate) enum Peer {
    /// A driver's device: sends locations.
    Driver {
        /// The authenticated account.
        actor: Actor,
        /// Its driver profile.
        driver_id: DriverId,
    },
    /// A pharmacy's dashboard (or an admin watching one).
    Vendor {
        /// The authenticated account.
        actor: Actor,
    },
    /// A public tracking page.
    Tracker,
}

impl Peer {
    pub(crate) fn actor(&self) -> Option<&Actor> {
        match self {
            Peer::Driver { actor, .. } | Peer::Vendor { actor } => Some(actor),
            Peer::Tracker => None,
        }
    }
}

/// Everything a connection task needs, prepared during the handshake.
pub(crate) struct Connection {
    pub(crate) medex: Arc<MedEx>,
    pub(crate) config: Arc<WsConfig>,
    pub(crate) peer: Peer,
    pub(crate) subscription: Subscription,
    /// Sent before anything from the outbox: `connected` or `initial_state`.
    pub(crate) first: Vec<Utf8Bytes>,
    /// Close normally right after `first` (a tracked order that has already finished).
    pub(crate) finished: bool,
    pub(crate) open: OpenConnection,
}

/// Why the loop stops.
enum Stop {
    /// Send a close frame with this code and reason, then wait for the client's.
    Close(CloseCode, &'static str),
    /// The client's stream failed while reading: send a close frame, then drain the socket.
    CloseAfterReadError(CloseCode, &'static str),
    /// The client went away or a write failed or stalled: just drop the socket.
    Drop,
}

/// The per-connection state of the read side.
struct Reader {
    /// When the client last sent anything (a pong counts).
    last_seen: Instant,
    /// When the server last pinged.
    last_ping: Instant,
    /// Times of recent invalid messages, within the window.
    invalid: VecDeque<Instant>,
    /// When the last fix was recorded.
    last_fix: Option<Instant>,
    /// A fix waiting for the minimum interval to pass (the newest one received).
    pending_fix: Option<FixInput>,
}

pub(crate) async fn run<S>(mut ws: WebSocketStream<S>, mut conn: Connection)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let stop = serve(&mut ws, &mut conn).await;
    let config = &conn.config;
    match stop {
        Stop::Close(code, reason) => {
            tracing::debug!(%code, reason, "closing WebSocket");
            let frame = CloseFrame {
                code,
                reason: Utf8Bytes::from_static(reason),
            };
            if timeout(config.write_timeout, ws.close(Some(frame)))
                .await
                .is_ok_and(|r| r.is_ok())
            {
                // Wait for the client's close frame, so that the client learns the code.
                let _ = timeout(config.close_timeout, async {
                    while let Some(Ok(_)) = ws.next().await {}
                })
                .await;
            }
        }
        Stop::CloseAfterReadError(code, reason) => {
            tracing::debug!(%code, reason, "closing WebSocket after a read error");
            let frame = CloseFrame {
                code,
                reason: Utf8Bytes::from_static(reason),
            };
            if timeout(config.write_timeout, ws.close(Some(frame)))
                .await
                .is_ok_and(|r| r.is_ok())
            {
                // Unread bytes at close would reset the connection and could destroy the close
                // frame before the client reads it: finish writing, then drain until the client
                // hangs up.
                let io = ws.get_mut();
                let _ = timeout(config.close_timeout, async {
                    let _ = io.shutdown().await;
                    let mut sink = [0u8; 1024];
                    let mut left = 1usize << 20;
                    while let Ok(n @ 1..) = io.read(&mut sink).await {
                        left = left.saturating_sub(n);
                        if left == 0 {
                            break;
                        }
                    }
                })
                .await;
            }
        }
        Stop::Drop => tracing::debug!("dropping WebSocket"),
    }
}

async fn serve<S>(ws: &mut WebSocketStream<S>, conn: &mut Connection) -> Stop
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let config = conn.config.clone();
    let first = std::mem::take(&mut conn.first);
    if let Err(stop) = send_all(ws, first, &config).await {
        return stop;
    }
    if conn.finished {
        return Stop::Close(CloseCode::Normal, "order finished");
    }
    let now = Instant::now();
    let mut reader = Reader {
        last_seen: now,
        last_ping: now,
        invalid: VecDeque::new(),
        last_fix: None,
        pending_fix: None,
    };
    let mut keepalive: Pin<Box<Sleep>> = Box::pin(sleep_until(next_keepalive(&reader, &config)));
    let mut fix_timer: Pin<Box<Sleep>> = Box::pin(sleep_until(now));
    loop {
        tokio::select! {
            incoming = ws.next() => {
                let message = match incoming {
                    None => return Stop::Drop,
                    Some(Ok(message)) => message,
                    Some(Err(WsError::Capacity(
                        CapacityError::MessageTooLong { .. } | CapacityError::TooManyHeaders,
                    ))) => return Stop::CloseAfterReadError(CloseCode::Size, "message too big"),
                    Some(Err(WsError::Utf8(_))) => {
                        return Stop::CloseAfterReadError(CloseCode::Invalid, "invalid UTF-8")
                    }
                    Some(Err(WsError::Protocol(e))) => {
                        tracing::debug!(error = %e, "WebSocket protocol error");
                        return Stop::CloseAfterReadError(CloseCode::Protocol, "protocol error");
                    }
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "WebSocket read failed");
                        return Stop::Drop;
                    }
                };
                reader.last_seen = Instant::now();
                let outcome = match message {
                    Message::Text(text) => on_text(ws, conn, &mut reader, &text, &mut fix_timer).await,
                    Message::Binary(_) => {
                        invalid(ws, &config, &mut reader, "unsupported_message",
                            "send JSON text messages", Vec::new()).await
                    }
                    // Pongs to pings are automatic; a close is answered by tungstenite and the
                    // next read ends the stream.
                    Message::Ping(_) | Message::Pong(_) | Message::Close(_) | Message::Frame(_) => {
                        Ok(())
                    }
                };
                if let Err(stop) = outcome {
                    return stop;
                }
            }
            () = conn.subscription.outbox().ready() => {
                let batch = conn.subscription.outbox().take();
                if batch.end == Some(End::Overflow) {
                    return Stop::Close(CloseCode::Again, "too slow: reconnect for a fresh state");
                }
                if batch.end == Some(End::SignedOut) {
                    return Stop::Close(CloseCode::Policy, "signed out: the token no longer works");
                }
                if batch.end == Some(End::Resync) {
                    return Stop::Close(
                        CloseCode::Again,
                        "events may have been missed: reconnect for a fresh state",
                    );
                }
                let messages = batch.events.into_iter().chain(batch.locations);
                if let Err(stop) = send_all(ws, messages, &config).await {
                    return stop;
                }
                if batch.end == Some(End::Finished) {
                    return Stop::Close(CloseCode::Normal, "order finished");
                }
            }
            () = &mut keepalive => {
                let now = Instant::now();
                if now >= reader.last_seen + config.idle_timeout {
                    return Stop::Close(CloseCode::Away, "idle timeout");
                }
                if now >= reader.last_ping + config.ping_interval {
                    reader.last_ping = now;
                    if let Err(stop) = ping(ws, &config).await {
                        return stop;
                    }
                    if let Some(actor) = conn.peer.actor()
                        && !account_active(&conn.medex, actor).await
                    {
                        return Stop::Close(CloseCode::Policy, "account deactivated");
                    }
                }
                keepalive.as_mut().reset(next_keepalive(&reader, &config));
            }
            () = &mut fix_timer, if reader.pending_fix.is_some() => {
                if let Some(fix) = reader.pending_fix.take()
                    && let Err(stop) = record(ws, conn, &mut reader, fix).await
                {
                    return stop;
                }
            }
            () = conn.open.shutdown() => {
                return Stop::Close(CloseCode::Away, "server shutting down");
            }
        }
    }
}

fn next_keepalive(reader: &Reader, config: &WsConfig) -> Instant {
    (reader.last_seen + config.idle_timeout).min(reader.last_ping + config.ping_interval)
}

/// Whether the account behind a long-lived connection is still allowed in: deactivation takes
/// effect within a ping interval, as it does at once for HTTP requests.
async fn account_active(medex: &MedEx, actor: &Actor) -> bool {
    match medex.me(actor).await {
        Ok(user) => user.is_active,
        Err(Error::NotFound) => false,
        // A storage hiccup is not the client's fault: check again next time.
        Err(_) => true,
    }
}

async fn ping<S>(ws: &mut WebSocketStream<S>, config: &WsConfig) -> Result<(), Stop>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match timeout(
        config.write_timeout,
        ws.send(Message::Ping(Default::default())),
    )
    .await
    {
        Ok(Ok(())) => Ok(()),
        _ => Err(Stop::Drop),
    }
}

/// Writes messages and flushes once; a client that does not read for
/// [`WsConfig::write_timeout`] is dropped.
async fn send_all<S>(
    ws: &mut WebSocketStream<S>,
    messages: impl IntoIterator<Item = Utf8Bytes>,
    config: &WsConfig,
) -> Result<(), Stop>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let fragment = config.write_buffer_size.max(MIN_FRAGMENT);
    let write = async {
        for message in messages {
            if message.len() <= fragment {
                ws.feed(Message::Text(message)).await?;
                continue;
            }
            // tungstenite copies each frame into its write buffer, which keeps its largest
            // size for the life of the connection: large messages (initial states) go out in
            // fragments so that an idle connection does not hold a copy-sized buffer.
            let bytes = Bytes::from(message);
            let mut start = 0;
            while start < bytes.len() {
                let end = (start + fragment).min(bytes.len());
                let opcode = if start == 0 {
                    Data::Text
                } else {
                    Data::Continue
                };
                let frame = Frame::message(
                    bytes.slice(start..end),
                    OpCode::Data(opcode),
                    end == bytes.len(),
                );
                ws.feed(Message::Frame(frame)).await?;
                start = end;
            }
        }
        ws.flush().await
    };
    match timeout(config.write_timeout, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "WebSocket write failed");
            Err(Stop::Drop)
        }
        Err(_) => {
            tracing::debug!("WebSocket client stopped reading; dropping it");
            Err(Stop::Drop)
        }
    }
}

async fn send_one<S>(
    ws: &mut WebSocketStream<S>,
    message: Utf8Bytes,
    config: &WsConfig,
) -> Result<(), Stop>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    send_all(ws, [message], config).await
}

/// Answers an invalid message with `error`; the one that makes too many within the window
/// closes the connection with 1008.
async fn invalid<S>(
    ws: &mut WebSocketStream<S>,
    config: &WsConfig,
    reader: &mut Reader,
    code: &str,
    detail: &str,
    errors: Vec<FieldProblem>,
) -> Result<(), Stop>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let now = Instant::now();
    while reader
        .invalid
        .front()
        .is_some_and(|at| now.duration_since(*at) >= config.invalid_window)
    {
        reader.invalid.pop_front();
    }
    reader.invalid.push_back(now);
    send_one(
        ws,
        messages::error(code, detail, errors, Utc::now()),
        config,
    )
    .await?;
    if reader.invalid.len() >= config.max_invalid_messages.max(1) as usize {
        return Err(Stop::Close(CloseCode::Policy, "too many invalid messages"));
    }
    Ok(())
}

async fn on_text<S>(
    ws: &mut WebSocketStream<S>,
    conn: &Connection,
    reader: &mut Reader,
    text: &str,
    fix_timer: &mut Pin<Box<Sleep>>,
) -> Result<(), Stop>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let config = &conn.config;
    let message = match ClientMessage::parse(text) {
        Ok(message) => message,
        Err(detail) => {
            return invalid(ws, config, reader, "invalid_message", &detail, Vec::new()).await;
        }
    };
    match message {
        ClientMessage::Ping => send_one(ws, messages::pong(Utc::now()), config).await,
        ClientMessage::Location(fix) => {
            if !matches!(conn.peer, Peer::Driver { .. }) {
                return invalid(
                    ws,
                    config,
                    reader,
                    "unexpected_message",
                    "only drivers send locations",
                    Vec::new(),
                )
                .await;
            }
            // Bad coordinates are refused at once, not after waiting for the interval.
            let mut errors = FieldErrors::new();
            errors.coordinates("", fix.latitude, fix.longitude);
            if let Err(Invalid(fields)) = errors.finish() {
                return invalid(
                    ws,
                    config,
                    reader,
                    "validation_failed",
                    "invalid location",
                    problems(fields),
                )
                .await;
            }
            let fix = FixInput::from(fix);
            let now = Instant::now();
            match reader.last_fix {
                Some(last) if now < last + config.min_fix_interval => {
                    // Too soon: keep only the newest, recorded when the interval has passed.
                    if reader.pending_fix.replace(fix).is_none() {
                        fix_timer.as_mut().reset(last + config.min_fix_interval);
                    }
                    Ok(())
                }
                _ => record(ws, conn, reader, fix).await,
            }
        }
        ClientMessage::Locations { fixes } => {
            let Peer::Driver { actor, driver_id } = &conn.peer else {
                return invalid(
                    ws,
                    config,
                    reader,
                    "unexpected_message",
                    "only drivers send locations",
                    Vec::new(),
                )
                .await;
            };
            let inputs: Vec<FixInput> = fixes.iter().copied().map(FixInput::from).collect();
            // One report: paced by the service as a single fix is (a batch too soon after
            // the last report is answered with `rate_limited`, to be sent again).
            let result = conn
                .medex
                .record_locations(actor, *driver_id, &inputs)
                .await;
            answer(ws, conn, reader, result.map(drop)).await
        }
    }
}

fn problems(fields: Vec<FieldError>) -> Vec<FieldProblem> {
    fields
        .into_iter()
        .map(|f| FieldProblem {
            field: f.field,
            message: f.message,
        })
        .collect()
}

/// Runs the fix through the use case (the same pipeline as the HTTP fallback), which stores it
/// and publishes it to the hub.
async fn record<S>(
    ws: &mut WebSocketStream<S>,
    conn: &Connection,
    reader: &mut Reader,
    fix: FixInput,
) -> Result<(), Stop>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Peer::Driver { actor, driver_id } = &conn.peer else {
        return Ok(());
    };
    let result = conn.medex.record_location(actor, *driver_id, fix).await;
    answer(ws, conn, reader, result.map(drop)).await
}

/// Tells the driver what became of its report: nothing when it was recorded, an `error` when
/// not, and closes the socket when this driver may not report at all.
async fn answer<S>(
    ws: &mut WebSocketStream<S>,
    conn: &Connection,
    reader: &mut Reader,
    result: Result<(), Error>,
) -> Result<(), Stop>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let config = &conn.config;
    match result {
        Ok(()) => {
            reader.last_fix = Some(Instant::now());
            Ok(())
        }
        Err(Error::Invalid(fields)) => {
            invalid(
                ws,
                config,
                reader,
                "validation_failed",
                "invalid location",
                problems(fields),
            )
            .await
        }
        // Refused as a request would be (401, 403, 404): this socket may not report.
        Err(e) if matches!(e.status(), 401 | 403 | 404) => {
            let message = messages::error(
                e.code(),
                "this driver may not report locations",
                Vec::new(),
                Utc::now(),
            );
            send_one(ws, message, config).await?;
            Err(Stop::Close(
                CloseCode::Policy,
                "driver may not report locations",
            ))
        }
        Err(e) => {
            if let Error::Storage(source) = &e {
                tracing::warn!(error = %source, "storing a fix failed");
            }
            let message = messages::error(
                e.code(),
                "the fix was not recorded; send the next one",
                Vec::new(),
                Utc::now(),
            );
            send_one(ws, message, config).await
        }
    }
}
