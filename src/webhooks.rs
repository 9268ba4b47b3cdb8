//! The webhook dispatcher: sends the deliveries that order changes wrote into the store's outbox
//! (in the same commit as the change), signs them, retries them, and records every attempt.
//!
//! - **At least once.** A delivery leaves the queue only in the commit that records its 2xx
//!   answer (or its giving up); a crash between sending and recording sends it again after a
//!   restart, with the same `X-MedEx-Delivery`, which receivers use to drop duplicates.
//! - **One sender at a time.** Before sending, an instance claims the delivery by committing it
//!   with `leased_until` set, guarded by its version as every write is: of several instances on
//!   one database exactly one claim succeeds, and a claim left by a crashed instance runs out.
//! - **In order per order and endpoint.** Of the pending deliveries of one order to one endpoint
//!   only the earliest (by the order's version, then the event's place in its commit) is sent;
//!   the next waits until it is delivered or failed.
//! - **Only where allowed.** Each attempt resolves the host itself and refuses private,
//!   loopback, link-local, CGNAT, ULA, multicast and unspecified addresses (IPv4-mapped forms
//!   too) and plain `http://`, unless `MEDEX_WEBHOOK_ALLOW_PRIVATE`; a refused attempt is
//!   recorded as blocked and retried like a failure (the operator may fix DNS or the setting).
//!   Redirects are not followed; at most a few KiB of an answer are read.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use medex_core::integrations::{
    Delivery, DeliveryAttempt, DeliveryState, Webhook, is_public, signature,
};
use medex_core::store::{Store, StoreError, Write};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use tokio::sync::{Semaphore, watch};

/// How the dispatcher sends.
#[derive(Debug, Clone)]
pub struct DispatchConfig {
    /// Plain `http://` and private addresses allowed (`MEDEX_WEBHOOK_ALLOW_PRIVATE`).
    pub allow_private: bool,
    /// One attempt's whole time (`MEDEX_WEBHOOK_TIMEOUT_MS`).
    pub timeout: Duration,
    /// Deliveries in flight at once (`MEDEX_WEBHOOK_CONCURRENCY`).
    pub concurrency: usize,
    /// How often the queue is looked at.
    pub poll: Duration,
    /// The first wait before a retry, before jitter (`MEDEX_WEBHOOK_RETRY_BASE_MS`; 10 s).
    pub retry_base: Duration,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        Self {
            allow_private: false,
            timeout: Duration::from_secs(10),
            concurrency: 8,
            poll: Duration::from_millis(250),
            retry_base: Duration::from_secs(10),
        }
    }
}

/// How much of the queue one look reads.
const QUEUE_WINDOW: usize = 1000;
/// How much of an answer is read (and thrown away) before the connection is let go.
const MAX_ANSWER: usize = 4096;

/// Why a destination was refused before anything was sent.
#[derive(Debug, thiserror::Error)]
#[error("blocked: {0}")]
struct Blocked(String);

/// Resolves names as the system does, then keeps only public addresses (all of them when
/// private ones are allowed): a name that resolves to none is refused.
struct PublicOnly {
    allow_private: bool,
}

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?
                .collect();
            let kept: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| allow_private || is_public(a.ip()))
                .collect();
            if kept.is_empty() {
                return Err(
                    Box::new(Blocked(format!("{host} resolves to no public address")))
                        as Box<dyn std::error::Error + Send + Sync>,
                );
            }
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}

/// The HTTP client of every attempt: rustls, no redirects, the address rule in its resolver.
fn client(config: &DispatchConfig) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(config.timeout)
        .connect_timeout(config.timeout.min(Duration::from_secs(5)))
        .dns_resolver(Arc::new(PublicOnly {
            allow_private: config.allow_private,
        }))
        .user_agent(concat!("MedEx-Webhooks/", env!("CARGO_PKG_VERSION")))
        .pool_max_idle_per_host(2)
        .build()
        .expect("a client of rustls with the built-in roots always builds")
}

/// Checks what the resolver cannot see: the scheme, and a literal address in the URL (which is
/// connected to without resolution).
fn check_destination(url: &str, allow_private: bool) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|_| "not a valid URL".to_owned())?;
    match parsed.scheme() {
        "https" => {}
        "http" if allow_private => {}
        other => return Err(format!("blocked: {other}:// is not allowed")),
    }
    let literal: Option<IpAddr> = match parsed.host() {
        Some(url::Host::Ipv4(v4)) => Some(v4.into()),
        Some(url::Host::Ipv6(v6)) => Some(v6.into()),
        Some(url::Host::Domain(_)) => None,
        None => return Err("the URL has no host".to_owned()),
    };
    if let Some(ip) = literal
        && !allow_private
        && !is_public(ip)
    {
        return Err(format!("blocked: {ip} is not a public address"));
    }
    Ok(parsed)
}

fn blocked_in(error: &reqwest::Error) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(blocked) = e.downcast_ref::<Blocked>() {
            return Some(blocked.to_string());
        }
        source = e.source();
    }
    None
}

/// What one attempt came to, without secrets.
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "could not connect".to_owned()
    } else if error.is_request() {
        "the request failed".to_owned()
    } else {
        "the answer could not be read".to_owned()
    }
}

/// Sends one attempt of `delivery` to `webhook`.
async fn attempt(
    client: &reqwest::Client,
    config: &DispatchConfig,
    webhook: &Webhook,
    delivery: &Delivery,
) -> DeliveryAttempt {
    let at = Utc::now();
    let started = Instant::now();
    let done = |status: Option<u16>, error: Option<String>, blocked: bool| DeliveryAttempt {
        at,
        status,
        error,
        blocked,
        duration_ms: started.elapsed().as_millis() as u64,
    };
    let url = match check_destination(&webhook.url, config.allow_private) {
        Ok(url) => url,
        Err(why) => {
            let blocked = why.starts_with("blocked");
            return done(None, Some(why), blocked);
        }
    };
    let body = medex_http::webhook_body(delivery);
    let signed = signature(&webhook.secret, at.timestamp(), &body);
    let sent = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-MedEx-Event", delivery.event.as_str())
        .header("X-MedEx-Delivery", delivery.id.to_string())
        .header("X-MedEx-Signature", signed)
        .body(body)
        .send()
        .await;
    match sent {
        Ok(mut response) => {
            let status = response.status().as_u16();
            let mut read = 0;
            let mut error = None;
            while read < MAX_ANSWER {
                match response.chunk().await {
                    Ok(Some(chunk)) => read += chunk.len(),
                    Ok(None) => break,
                    Err(e) => {
                        error = Some(describe(&e));
                        break;
                    }
                }
            }
            let error = error
                .or_else(|| (!(200..300).contains(&status)).then(|| format!("answered {status}")));
            done(Some(status), error, false)
        }
        Err(e) => match blocked_in(&e) {
            Some(why) => done(None, Some(why), true),
            None => done(None, Some(describe(&e)), false),
        },
    }
}

/// A jitter in 0..1 from the OS's randomness (through a v4 UUID).
fn jitter() -> f64 {
    f64::from(uuid::Uuid::new_v4().as_bytes()[0]) / 255.0
}

/// Of the pending deliveries, the ones that may go now: the earliest of each order and endpoint,
/// due, unleased, and not already in flight here.
fn sendable(
    pending: &[Delivery],
    in_flight: &HashSet<uuid::Uuid>,
    now: chrono::DateTime<Utc>,
) -> Vec<Delivery> {
    let mut first: HashMap<(uuid::Uuid, uuid::Uuid), &Delivery> = HashMap::new();
    for d in pending {
        let key = (*d.webhook_id.as_uuid(), *d.order_id.as_uuid());
        first
            .entry(key)
            .and_modify(|held| {
                if d.order_key() < held.order_key() {
                    *held = d;
                }
            })
            .or_insert(d);
    }
    let mut ready: Vec<Delivery> = first
        .into_values()
        .filter(|d| d.is_due(now) && !in_flight.contains(d.id.as_uuid()))
        .cloned()
        .collect();
    ready.sort_by_key(|d| d.next_attempt_at);
    ready
}

/// Starts the dispatcher: it runs until `stopped` turns true.
pub fn spawn(store: Arc<dyn Store>, config: DispatchConfig, mut stopped: watch::Receiver<bool>) {
    describe_metrics();
    tokio::spawn(async move {
        let client = client(&config);
        let permits = Arc::new(Semaphore::new(config.concurrency));
        let in_flight: Arc<Mutex<HashSet<uuid::Uuid>>> = Arc::default();
        let mut ticks = tokio::time::interval(config.poll);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stopped.changed() => return,
            }
            if *stopped.borrow() {
                return;
            }
            let pending = match store.pending_deliveries(QUEUE_WINDOW).await {
                Ok(pending) => pending,
                Err(error) => {
                    tracing::warn!(%error, "could not read the webhook queue");
                    continue;
                }
            };
            metrics::gauge!("medex_webhook_queue_depth").set(pending.len() as f64);
            let now = Utc::now();
            let busy = in_flight.lock().unwrap_or_else(|e| e.into_inner()).clone();
            for delivery in sendable(&pending, &busy, now) {
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    break;
                };
                // The attempt's own time and a margin for recording it.
                let lease = chrono::Duration::from_std(config.timeout + Duration::from_secs(5))
                    .unwrap_or(chrono::Duration::seconds(15));
                let mut claimed = delivery;
                claimed.leased_until = Some(now + lease);
                claimed.version += 1;
                match store.commit(vec![Write::Delivery(claimed.clone())]).await {
                    Ok(()) => {}
                    // Another instance claimed it first, or it changed: leave it.
                    Err(StoreError::Conflict) => continue,
                    Err(error) => {
                        tracing::warn!(%error, "could not claim a webhook delivery");
                        continue;
                    }
                }
                in_flight
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(*claimed.id.as_uuid());
                let store = store.clone();
                let client = client.clone();
                let config = config.clone();
                let in_flight = in_flight.clone();
                tokio::spawn(async move {
                    let id = *claimed.id.as_uuid();
                    send(&*store, &client, &config, claimed).await;
                    in_flight
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&id);
                    drop(permit);
                });
            }
        }
    });
}

/// One claimed delivery: attempt it, then record the attempt and what comes next.
async fn send(
    store: &dyn Store,
    client: &reqwest::Client,
    config: &DispatchConfig,
    claimed: Delivery,
) {
    let webhook = match store.webhook(claimed.webhook_id).await {
        Ok(webhook) => webhook.filter(|w| w.deleted_at.is_none()),
        Err(error) => {
            // The lease runs out and the delivery is tried again.
            tracing::warn!(%error, "could not read a webhook endpoint");
            return;
        }
    };
    let mut next = claimed.clone();
    match webhook {
        Some(webhook) => {
            let result = attempt(client, config, &webhook, &claimed).await;
            let blocked = result.blocked;
            let seconds = result.duration_ms as f64 / 1000.0;
            let base = chrono::Duration::from_std(config.retry_base)
                .unwrap_or(medex_core::integrations::RETRY_BASE);
            next.record(result, base, jitter());
            metrics::histogram!("medex_webhook_delivery_seconds").record(seconds);
            if blocked {
                metrics::counter!("medex_webhook_deliveries_blocked_total").increment(1);
                tracing::warn!(delivery = %claimed.id, webhook = %webhook.id, "webhook delivery blocked by the address rule");
            }
            match next.state {
                DeliveryState::Delivered => {
                    metrics::counter!("medex_webhook_deliveries_sent_total").increment(1);
                }
                DeliveryState::Failed => {
                    metrics::counter!("medex_webhook_deliveries_failed_total").increment(1);
                    tracing::warn!(delivery = %claimed.id, webhook = %webhook.id, attempts = next.attempts, "webhook delivery given up");
                }
                DeliveryState::Pending => {
                    metrics::counter!("medex_webhook_deliveries_retried_total").increment(1);
                }
            }
        }
        None => {
            next.leased_until = None;
            next.state = DeliveryState::Failed;
            next.log.push(DeliveryAttempt {
                at: Utc::now(),
                status: None,
                error: Some("the endpoint was removed".into()),
                blocked: false,
                duration_ms: 0,
            });
            metrics::counter!("medex_webhook_deliveries_failed_total").increment(1);
        }
    }
    next.version = claimed.version + 1;
    match store.commit(vec![Write::Delivery(next)]).await {
        Ok(()) => {}
        // Our lease ran out and another instance took the delivery over: it records its own.
        Err(StoreError::Conflict) => {}
        Err(error) => {
            tracing::warn!(%error, "could not record a webhook attempt; it will be sent again")
        }
    }
}

fn describe_metrics() {
    metrics::describe_counter!(
        "medex_webhook_deliveries_sent_total",
        "webhook deliveries answered with a 2xx"
    );
    metrics::describe_counter!(
        "medex_webhook_deliveries_failed_total",
        "webhook deliveries given up (24 h of retries, or the endpoint removed)"
    );
    metrics::describe_counter!(
        "medex_webhook_deliveries_retried_total",
        "webhook attempts that failed and were scheduled again"
    );
    metrics::describe_counter!(
        "medex_webhook_deliveries_blocked_total",
        "webhook attempts refused by the address rule (nothing sent)"
    );
    metrics::describe_gauge!(
        "medex_webhook_queue_depth",
        "pending webhook deliveries (up to 1000 counted)"
    );
    metrics::describe_histogram!(
        "medex_webhook_delivery_seconds",
        "time of one webhook attempt"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_private_addresses_and_plain_http_are_blocked() {
        for url in [
            "http://shop.example.com/",
            "https://127.0.0.1/",
            "https://[::1]:8443/",
            "https://[::ffff:10.0.0.1]/",
            "https://169.254.169.254/",
            "ftp://shop.example.com/",
        ] {
            let refused = check_destination(url, false).unwrap_err();
            assert!(refused.starts_with("blocked"), "{url}: {refused}");
        }
        assert!(check_destination("https://shop.example.com/", false).is_ok());
        assert!(check_destination("http://127.0.0.1:9/", true).is_ok());
    }
}
