//! The bus: local delivery and a publish queue on the caller's side, a publisher task and a
//! subscriber task on the runtime.
//!
//! The subscriber task owns the subscription connection and the map of watched channels (a
//! count of local subscribers per channel). Watch and unwatch requests from the fan-out come to
//! it as messages, in order, and are applied in batches: one `SUBSCRIBE` for the channels that
//! gained their first subscriber, one `UNSUBSCRIBE` for those that lost their last, and the
//! watchers are answered once Redis confirmed. It pings Redis every second; a connection that
//! ends or stops answering is given up, every local subscriber is resynced, and a new
//! connection is made with a growing pause (up to two seconds); once it subscribed every watched
//! channel again, every local subscriber is resynced once more (they may have missed events in
//! between).
//!
//! The publisher task takes what queued, publishes it in one pipeline, and on failure notes the
//! channels of what it could not publish. Before the next events it publishes a notice naming
//! them (or "all", past [`MAX_LOST`]) on the resync channel, and the instances that hear it
//! resync those topics.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt as _;
use medex_core::events::{BusHealth, Event, EventBus, Fanout, Interest, Resync, Topic, Watching};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::channels::Names;
use crate::fresh::Freshness;
use crate::link::Link;
use crate::wire::{self, Lost, Origin};
use crate::{ConfigError, RedisOptions};

/// Channels whose lost events are named one by one; past this a notice says "all".
const MAX_LOST: usize = 10_000;
/// Events published in one pipeline at most.
const BATCH: usize = 512;
/// How often the subscription connection is asked whether it still answers.
const PING_EVERY: Duration = Duration::from_secs(1);
/// The longest pause between two attempts to reconnect.
const MAX_PAUSE: Duration = Duration::from_secs(2);

/// A request of the fan-out about its subscribers.
enum Command {
    Watch(Topic, oneshot::Sender<()>),
    Unwatch(Topic),
}

/// What the fan-out watches through: requests go to the subscriber task.
struct Watcher {
    commands: mpsc::UnboundedSender<Command>,
    wait: Duration,
}

impl Interest for Watcher {
    fn watch(&self, topic: &Topic) -> Watching {
        let (done, subscribed) = oneshot::channel();
        let sent = self.commands.send(Command::Watch(topic.clone(), done));
        let wait = self.wait;
        Box::pin(async move {
            if sent.is_ok() {
                // A subscription Redis does not confirm in time is not waited for: the bus is
                // failing, and its subscribers are resynced when it is back.
                let _ = tokio::time::timeout(wait, subscribed).await;
            }
        })
    }

    fn unwatch(&self, topic: &Topic) {
        let _ = self.commands.send(Command::Unwatch(topic.clone()));
    }
}

/// Channels whose events could not be published.
#[derive(Debug, Default)]
struct LostChannels {
    all: bool,
    channels: HashSet<String>,
}

impl LostChannels {
    fn add(&mut self, channels: impl IntoIterator<Item = String>) {
        if self.all {
            return;
        }
        self.channels.extend(channels);
        if self.channels.len() > MAX_LOST {
            self.all = true;
            self.channels = HashSet::new();
        }
    }

    fn is_empty(&self) -> bool {
        !self.all && self.channels.is_empty()
    }
}

/// What the caller's side and both tasks share.
struct Shared {
    origin: Origin,
    names: Names,
    fanout: Arc<dyn Fanout>,
    fresh: Mutex<Freshness>,
    lost: Mutex<LostChannels>,
    subscribed: AtomicBool,
    publishing: AtomicBool,
}

impl Shared {
    /// Hands `event` to the local subscribers of `topic`, unless they saw a newer one.
    fn deliver(&self, topic: &Topic, event: &Event) {
        let fresh = self
            .fresh
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .admit(topic, event);
        if fresh {
            self.fanout.deliver(topic, event);
        }
    }

    fn lose(&self, events: &[Event]) {
        let channels: Vec<String> = events
            .iter()
            .flat_map(Event::topics)
            .map(|t| self.names.channel(&t))
            .collect();
        metrics::counter!("medex_bus_lost_events_total").increment(events.len() as u64);
        self.lost
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .add(channels);
    }
}

/// A bus being built: its [`interest`](BusBuilder::interest) goes to the fan-out, then
/// [`start`](BusBuilder::start) connects it to that fan-out.
pub struct BusBuilder {
    options: RedisOptions,
    client: redis::Client,
    commands: mpsc::UnboundedSender<Command>,
    requests: mpsc::UnboundedReceiver<Command>,
}

impl BusBuilder {
    /// What the fan-out tells the bus about its subscribers.
    pub fn interest(&self) -> Arc<dyn Interest> {
        Arc::new(Watcher {
            commands: self.commands.clone(),
            wait: self.options.timeout,
        })
    }

    /// Starts the publisher and subscriber tasks (on the current Tokio runtime) and returns the
    /// bus to publish to; events from other instances go to `fanout`. Connections are made in
    /// the background: the bus works, for this instance alone, while Redis is unreachable.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime, like [`tokio::spawn`].
    pub fn start(self, fanout: Arc<dyn Fanout>) -> Arc<RedisBus> {
        let shared = Arc::new(Shared {
            origin: uuid::Uuid::new_v4().as_u64_pair().0,
            names: Names::new(&self.options.prefix),
            fanout,
            fresh: Mutex::new(Freshness::default()),
            lost: Mutex::new(LostChannels::default()),
            subscribed: AtomicBool::new(false),
            publishing: AtomicBool::new(true),
        });
        let (queue, queued) = mpsc::channel(self.options.queue.max(1));
        let link = Link::new(self.client.clone(), self.options.timeout);
        let tasks = vec![
            tokio::spawn(publisher(shared.clone(), link, queued)),
            tokio::spawn(subscriber(
                shared.clone(),
                self.client,
                self.requests,
                self.options.timeout,
            )),
        ];
        // The builder's sender would keep the subscriber task's requests open forever.
        drop(self.commands);
        Arc::new(RedisBus {
            shared,
            queue,
            tasks,
        })
    }
}

/// The event bus over Redis pub/sub: see the crate documentation.
///
/// Dropping it stops its tasks.
pub struct RedisBus {
    shared: Arc<Shared>,
    queue: mpsc::Sender<Event>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBus")
            .field("health", &self.health())
            .finish_non_exhaustive()
    }
}

impl RedisBus {
    /// A bus on the Redis of `options`; nothing connects before [`BusBuilder::start`].
    pub fn builder(options: RedisOptions) -> Result<BusBuilder, ConfigError> {
        let client = options.client()?;
        let (commands, requests) = mpsc::unbounded_channel();
        Ok(BusBuilder {
            options,
            client,
            commands,
            requests,
        })
    }
}

impl Drop for RedisBus {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl EventBus for RedisBus {
    fn publish(&self, event: Event) {
        for topic in event.topics() {
            self.shared.deliver(&topic, &event);
        }
        match self.queue.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(event)) => {
                tracing::warn!("the bus's publish queue is full: an event stays on this instance");
                self.shared.lose(&[event]);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    fn health(&self) -> BusHealth {
        if self.shared.subscribed.load(Ordering::Relaxed)
            && self.shared.publishing.load(Ordering::Relaxed)
        {
            BusHealth::Connected
        } else {
            BusHealth::Disconnected
        }
    }
}

async fn publisher(shared: Arc<Shared>, link: Link, mut queued: mpsc::Receiver<Event>) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let pending_notice = !shared
            .lost
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty();
        tokio::select! {
            n = queued.recv_many(&mut batch, BATCH) => {
                if n == 0 {
                    return;
                }
            }
            // A notice of lost events goes out even when no new event comes to carry it.
            () = tokio::time::sleep(Duration::from_secs(1)), if pending_notice => {}
        }
        let notice = {
            let mut lost = shared.lost.lock().unwrap_or_else(|e| e.into_inner());
            (!lost.is_empty()).then(|| std::mem::take(&mut *lost))
        };
        let mut pipe = redis::pipe();
        if let Some(lost) = &notice {
            let channels = lost.channels.iter().cloned().collect();
            pipe.cmd("PUBLISH")
                .arg(shared.names.resync())
                .arg(Lost::new(shared.origin, lost.all, channels).encode())
                .ignore();
        }
        for event in &batch {
            let payload = wire::encode(shared.origin, event);
            for topic in event.topics() {
                pipe.cmd("PUBLISH")
                    .arg(shared.names.channel(&topic))
                    .arg(&payload)
                    .ignore();
            }
        }
        let sent: Result<(), _> = link
            .run(|mut c| async move { pipe.query_async(&mut c).await })
            .await;
        match sent {
            Ok(()) => {
                if !shared.publishing.swap(true, Ordering::Relaxed) {
                    tracing::info!("the bus publishes again");
                }
                if let Some(lost) = notice {
                    tracing::info!(
                        channels = lost.channels.len(),
                        all = lost.all,
                        "told the other instances which topics lost events"
                    );
                }
            }
            Err(error) => {
                if shared.publishing.swap(false, Ordering::Relaxed) {
                    tracing::warn!(%error, "the bus cannot publish: events stay on this instance");
                }
                if let Some(lost) = notice {
                    let mut still = shared.lost.lock().unwrap_or_else(|e| e.into_inner());
                    if lost.all {
                        still.all = true;
                        still.channels = HashSet::new();
                    } else {
                        still.add(lost.channels);
                    }
                }
                shared.lose(&batch);
            }
        }
        batch.clear();
    }
}

/// Local subscribers per watched channel, and the topic each channel is.
#[derive(Default)]
struct Watched {
    channels: HashMap<String, (Topic, usize)>,
}

impl Watched {
    fn watch(&mut self, names: &Names, topic: Topic) {
        let channel = names.channel(&topic);
        self.channels.entry(channel).or_insert((topic, 0)).1 += 1;
    }

    fn unwatch(&mut self, names: &Names, topic: &Topic) {
        let channel = names.channel(topic);
        if let Some(entry) = self.channels.get_mut(&channel) {
            entry.1 -= 1;
            if entry.1 == 0 {
                self.channels.remove(&channel);
            }
        }
    }
}

async fn subscriber(
    shared: Arc<Shared>,
    client: redis::Client,
    mut requests: mpsc::UnboundedReceiver<Command>,
    timeout: Duration,
) {
    let mut watched = Watched::default();
    let mut pause = Duration::from_millis(100);
    loop {
        match session(&shared, &client, &mut requests, &mut watched, timeout).await {
            Session::Closed => return,
            Session::Failed { connected } => {
                shared.subscribed.store(false, Ordering::Relaxed);
                if connected {
                    // Whatever is published from now on does not reach this instance.
                    shared.fanout.resync(&Resync::All);
                    metrics::counter!("medex_bus_resyncs_total").increment(1);
                    tracing::warn!(
                        "the bus's subscription connection is lost: subscribers resync; reconnecting"
                    );
                    pause = Duration::from_millis(100);
                }
            }
        }
        // Wait before the next attempt, answering watchers meanwhile (at once: there is no
        // subscription to wait for).
        let deadline = tokio::time::sleep(pause);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                () = &mut deadline => break,
                request = requests.recv() => match request {
                    None => return,
                    Some(Command::Watch(topic, done)) => {
                        watched.watch(&shared.names, topic);
                        let _ = done.send(());
                    }
                    Some(Command::Unwatch(topic)) => watched.unwatch(&shared.names, &topic),
                },
            }
        }
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

enum Session {
    /// The fan-out is gone: nothing will watch again.
    Closed,
    /// The connection could not be made, or ended; `connected` if it had subscribed.
    Failed { connected: bool },
}

/// One subscription connection, from connecting to its end.
async fn session(
    shared: &Shared,
    client: &redis::Client,
    requests: &mut mpsc::UnboundedReceiver<Command>,
    watched: &mut Watched,
    timeout: Duration,
) -> Session {
    let failed = Session::Failed { connected: false };
    let pubsub = match tokio::time::timeout(timeout, client.get_async_pubsub()).await {
        Ok(Ok(pubsub)) => pubsub,
        Ok(Err(error)) => {
            tracing::debug!(%error, "the bus cannot connect");
            return failed;
        }
        Err(_) => return failed,
    };
    let (mut sink, mut stream) = pubsub.split();
    let mut channels: Vec<String> = watched.channels.keys().cloned().collect();
    channels.push(shared.names.resync());
    if !matches!(
        tokio::time::timeout(timeout, sink.subscribe(&channels)).await,
        Ok(Ok(()))
    ) {
        return failed;
    }
    shared.subscribed.store(true, Ordering::Relaxed);
    // Subscribers that came before this connection may have missed events: they start again.
    shared.fanout.resync(&Resync::All);
    tracing::info!(channels = channels.len(), "the bus is subscribed");
    let lost = Session::Failed { connected: true };
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            message = stream.next() => match message {
                Some(message) => receive(shared, watched, &message),
                None => return lost,
            },
            request = requests.recv() => {
                let Some(first) = request else { return Session::Closed };
                let mut batch = vec![first];
                while let Ok(more) = requests.try_recv() {
                    batch.push(more);
                }
                if !apply(shared, watched, batch, &mut sink, timeout).await {
                    return lost;
                }
            }
            _ = ping.tick() => {
                // A subscribed connection answers PING with a pub/sub message, not `PONG`.
                let answered: Result<Result<redis::Value, _>, _> =
                    tokio::time::timeout(timeout, sink.ping()).await;
                if !matches!(answered, Ok(Ok(_))) {
                    return lost;
                }
            }
        }
    }
}

/// Applies a batch of watch requests: subscribes the channels that gained their first local
/// subscriber and unsubscribes those that lost their last, then answers the watchers. `false`
/// when Redis did not confirm.
async fn apply(
    shared: &Shared,
    watched: &mut Watched,
    batch: Vec<Command>,
    sink: &mut redis::aio::PubSubSink,
    timeout: Duration,
) -> bool {
    let before: HashSet<String> = watched.channels.keys().cloned().collect();
    let mut answers = Vec::new();
    for command in batch {
        match command {
            Command::Watch(topic, done) => {
                watched.watch(&shared.names, topic);
                answers.push(done);
            }
            Command::Unwatch(topic) => watched.unwatch(&shared.names, &topic),
        }
    }
    let gained: Vec<&String> = watched
        .channels
        .keys()
        .filter(|c| !before.contains(*c))
        .collect();
    let left: Vec<&String> = before
        .iter()
        .filter(|c| !watched.channels.contains_key(*c))
        .collect();
    let mut confirmed = true;
    if !gained.is_empty() {
        confirmed &= matches!(
            tokio::time::timeout(timeout, sink.subscribe(&gained)).await,
            Ok(Ok(()))
        );
    }
    if confirmed && !left.is_empty() {
        confirmed &= matches!(
            tokio::time::timeout(timeout, sink.unsubscribe(&left)).await,
            Ok(Ok(()))
        );
    }
    // Watchers are answered either way: on failure the connection is renewed and every
    // subscriber resynced, these included.
    for done in answers {
        let _ = done.send(());
    }
    confirmed
}

/// A message from Redis: an event for a watched channel, or a notice of lost events.
fn receive(shared: &Shared, watched: &Watched, message: &redis::Msg) {
    let channel = message.get_channel_name();
    let payload = message.get_payload_bytes();
    if channel == shared.names.resync() {
        let which = match Lost::decode(payload) {
            Ok(lost) if lost.from == shared.origin => return,
            Ok(lost) if !lost.all => Resync::Topics(
                lost.channels
                    .iter()
                    .filter_map(|c| watched.channels.get(c).map(|(topic, _)| topic.clone()))
                    .collect(),
            ),
            Ok(_) => Resync::All,
            Err(error) => {
                tracing::warn!(%error, "an unreadable notice of lost events: resyncing all");
                Resync::All
            }
        };
        if which != Resync::Topics(Vec::new()) {
            metrics::counter!("medex_bus_resyncs_total").increment(1);
            shared.fanout.resync(&which);
        }
        return;
    }
    let Some((topic, _)) = watched.channels.get(channel) else {
        // Unsubscribed a moment ago.
        return;
    };
    match wire::decode(payload) {
        Ok((from, _)) if from == shared.origin => {}
        Ok((_, event)) => shared.deliver(topic, &event),
        Err(error) => {
            tracing::warn!(%error, "an unreadable event from another instance: its topic resyncs");
            shared.fanout.resync(&Resync::Topics(vec![topic.clone()]));
        }
    }
}
