//! The fan-out: events in, one serialized message per topic, handed to each subscriber's
//! bounded outbox without ever waiting.
//!
//! Each connection owns an [`Outbox`]: a bounded queue of status events and a map holding the
//! latest location message per driver. Publishing locks a topic for reading, serializes the
//! message once, and for each subscriber locks its outbox for a few instructions (push or
//! replace) and wakes its task. A subscriber that lets its status queue fill up is marked ended
//! (the connection closes with 1013) and dropped from the topic; one that is slow with locations
//! just sees fewer, newer ones. Nothing here awaits, so a stalled socket cannot slow the
//! publisher or the other subscribers.
//!
//! Which topics an event reaches is core's table ([`Event::topics`]); the hub turns an event
//! into each topic's message ([`Fanout::deliver`]), so a bus between instances can hand it
//! events topic by topic, learn which topics have subscribers here ([`Interest`]), and end the
//! subscriptions that may have missed events ([`Fanout::resync`], 1013 as well).
//!
//! A signed-in connection is also filed under its account ([`Topic::Account`]): when that
//! account's tokens stop working ([`Event::SessionsEnded`]), its connections close at once.

use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use chrono::Utc;
use medex_core::arrivals::Arrival;
use medex_core::events::{Event, EventBus, Fanout, Interest, Resync, Topic, Watching};
use medex_core::model::{DriverId, OrderStatus, SessionId, UserId, VendorId};
use medex_core::permissions::Actor;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::messages;

/// Why an outbox takes no more messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// The status queue was full: close with 1013, the client resyncs on reconnect.
    Overflow,
    /// The subject reached its end (a tracked order's terminal status): deliver what is queued,
    /// then close with 1000.
    Finished,
    /// Events for this subscriber may have been lost between instances: close with 1013, the
    /// client resyncs on reconnect.
    Resync,
    /// The tokens the connection was opened with stopped working (logout, deactivation, a
    /// password change): close with 1008 at once, delivering nothing more.
    SignedOut,
}

/// What a connection's task takes out of its outbox in one go.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    /// Status events, oldest first.
    pub(crate) events: Vec<Utf8Bytes>,
    /// The latest location message of each driver that moved since the last batch.
    pub(crate) locations: Vec<Utf8Bytes>,
    /// Set once nothing more will come.
    pub(crate) end: Option<End>,
}

#[derive(Debug, Default)]
struct Pending {
    events: VecDeque<Utf8Bytes>,
    locations: HashMap<DriverId, Utf8Bytes>,
    end: Option<End>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.events.is_empty() && self.locations.is_empty()
    }
}

/// One connection's mailbox. The hub pushes, the connection's task takes.
#[derive(Debug)]
pub(crate) struct Outbox {
    pending: Mutex<Pending>,
    notify: Notify,
    capacity: usize,
    /// The session a signed-in connection was opened in.
    session: Option<SessionId>,
}

impl Outbox {
    /// An outbox holding at most `capacity` status events (at least 1).
    #[cfg(test)]
    fn new(capacity: usize) -> Self {
        Self::in_session(capacity, None)
    }

    /// An outbox as [`Outbox::new`], of a connection opened in `session`.
    fn in_session(capacity: usize, session: Option<SessionId>) -> Self {
        Self {
            pending: Mutex::new(Pending::default()),
            notify: Notify::new(),
            capacity: capacity.max(1),
            session,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a status event; `false` when the outbox has ended (now or before).
    fn push_event(&self, message: Utf8Bytes) -> bool {
        let mut pending = self.lock();
        if pending.end.is_some() {
            return false;
        }
        let was_empty = pending.is_empty();
        if pending.events.len() >= self.capacity {
            // The client resyncs from initial_state: what it has not read is worthless now.
            pending.end = Some(End::Overflow);
            pending.events = VecDeque::new();
            pending.locations = HashMap::new();
            drop(pending);
            self.notify.notify_one();
            return false;
        }
        pending.events.push_back(message);
        drop(pending);
        if was_empty {
            self.notify.notify_one();
        }
        true
    }

    /// Queues the last message of the subject; the outbox ends after it.
    fn push_final(&self, message: Utf8Bytes) {
        let mut pending = self.lock();
        if pending.end.is_some() {
            return;
        }
        pending.events.push_back(message);
        pending.end = Some(End::Finished);
        drop(pending);
        self.notify.notify_one();
    }

    /// Replaces the driver's pending location message, if any, with this newer one.
    fn push_location(&self, driver: DriverId, message: Utf8Bytes) {
        let mut pending = self.lock();
        if pending.end.is_some() {
            return;
        }
        let was_empty = pending.is_empty();
        pending.locations.insert(driver, message);
        drop(pending);
        if was_empty {
            self.notify.notify_one();
        }
    }

    /// Ends the outbox for a resync: what is queued is dropped (the client starts again from a
    /// fresh state).
    fn end_for_resync(&self) {
        let mut pending = self.lock();
        if pending.end.is_some() {
            return;
        }
        pending.end = Some(End::Resync);
        pending.events = VecDeque::new();
        pending.locations = HashMap::new();
        drop(pending);
        self.notify.notify_one();
    }

    /// Ends the outbox at once, dropping what waits: the reader may see nothing more.
    fn sign_out(&self) {
        let mut pending = self.lock();
        pending.end = Some(End::SignedOut);
        pending.events = VecDeque::new();
        pending.locations = HashMap::new();
        drop(pending);
        self.notify.notify_one();
    }

    /// Whether it takes no more messages.
    pub(crate) fn has_ended(&self) -> bool {
        self.lock().end.is_some()
    }

    /// Everything waiting, emptying the outbox.
    pub(crate) fn take(&self) -> Batch {
        let mut pending = self.lock();
        let events = if pending.events.is_empty() {
            Vec::new()
        } else {
            pending.events.drain(..).collect()
        };
        let locations = if pending.locations.is_empty() {
            Vec::new()
        } else {
            pending.locations.drain().map(|(_, m)| m).collect()
        };
        Batch {
            events,
            locations,
            end: pending.end,
        }
    }

    /// Resolves when something was pushed since the last [`take`](Self::take) (possibly
    /// spuriously).
    pub(crate) async fn ready(&self) {
        self.notify.notified().await;
    }
}

/// How a message reaches an outbox.
#[derive(Clone, Copy)]
enum Delivery {
    /// A status event: queued, bounded.
    Event,
    /// A position: replaces the driver's previous one.
    Location(DriverId),
    /// The subject's last message: the topic is removed after it.
    Final,
}

/// Subscribers by topic key.
struct Topics<K> {
    map: RwLock<HashMap<K, Vec<Arc<Outbox>>>>,
}

impl<K: Hash + Eq> Topics<K> {
    fn new() -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
        }
    }

    fn add(&self, key: K, outbox: Arc<Outbox>) {
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default()
            .push(outbox);
    }

    fn remove<Q>(&self, key: &Q, outbox: &Arc<Outbox>)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if let Some(list) = map.get_mut(key) {
            list.retain(|o| !Arc::ptr_eq(o, outbox));
            if list.is_empty() {
                map.remove(key);
            }
        }
    }

    /// Ends every subscription of `key` for a resync and forgets the topic.
    fn resync<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let removed = self
            .map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        for outbox in removed.into_iter().flatten() {
            outbox.end_for_resync();
        }
    }

    /// Ends every subscription of every key for a resync.
    fn resync_all(&self) {
        let all = std::mem::take(&mut *self.map.write().unwrap_or_else(|e| e.into_inner()));
        for outbox in all.into_values().flatten() {
            outbox.end_for_resync();
        }
    }

    /// Calls `f` with every subscriber of `key`.
    fn each<Q>(&self, key: &Q, f: impl Fn(&Outbox))
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        for outbox in map.get(key).into_iter().flatten() {
            f(outbox);
        }
    }

    fn count(&self) -> usize {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(Vec::len)
            .sum()
    }

    /// Serializes with `make` (only if someone listens) and hands the message to every
    /// subscriber of `key`.
    fn deliver<Q>(&self, key: &Q, make: impl FnOnce() -> Utf8Bytes, how: Delivery)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut overflowed = false;
        {
            let map = self.map.read().unwrap_or_else(|e| e.into_inner());
            let Some(list) = map.get(key).filter(|l| !l.is_empty()) else {
                return;
            };
            let message = make();
            for outbox in list {
                match how {
                    Delivery::Event => overflowed |= !outbox.push_event(message.clone()),
                    Delivery::Location(driver) => outbox.push_location(driver, message.clone()),
                    Delivery::Final => outbox.push_final(message.clone()),
                }
            }
        }
        if matches!(how, Delivery::Final) {
            self.map
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(key);
        } else if overflowed {
            let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
            if let Some(list) = map.get_mut(key) {
                list.retain(|o| !o.has_ended());
                if list.is_empty() {
                    map.remove(key);
                }
            }
        }
    }
}

/// The WebSocket fan-out, and the [`EventBus`] the use cases publish to.
///
/// Give the same `Arc<Hub>` to [`MedEx`](medex_core::MedEx) as its bus and to
/// [`WsServer`](crate::WsServer). [`publish`](EventBus::publish) never blocks or awaits: it
/// serializes each message once per topic and hands it to each subscriber's bounded outbox.
/// Topics: per vendor (dashboards), per tracking token (public trackers), per driver (the
/// driver's own socket), and per account for every signed-in connection.
///
/// Behind a bus between instances, build it [`with_interest`](Hub::with_interest) and give it
/// to the bus as its [`Fanout`].
pub struct Hub {
    vendors: Topics<VendorId>,
    trackers: Topics<Box<str>>,
    drivers: Topics<DriverId>,
    /// Every signed-in connection again, by account: for closing them when their tokens stop
    /// working.
    accounts: Topics<UserId>,
    interest: Option<Arc<dyn Interest>>,
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("subscribers", &self.subscriber_count())
            .finish()
    }
}

impl Hub {
    /// A hub without subscribers.
    pub fn new() -> Self {
        Self {
            vendors: Topics::new(),
            trackers: Topics::new(),
            drivers: Topics::new(),
            accounts: Topics::new(),
            interest: None,
        }
    }

    /// A hub that tells `interest` (a bus between instances) when each subscriber arrives and
    /// leaves; a new subscriber's first state is read once the bus receives its topic.
    pub fn with_interest(interest: Arc<dyn Interest>) -> Self {
        Self {
            interest: Some(interest),
            ..Self::new()
        }
    }

    /// Live subscriptions over all topics: one per open WebSocket connection. A connection
    /// dropped for overflow stops counting at once, before its socket is closed.
    pub fn subscriber_count(&self) -> usize {
        self.vendors.count() + self.trackers.count() + self.drivers.count()
    }

    /// Starts delivering `topic`'s messages to a new outbox of `capacity` status events. A
    /// connection signed in as `actor` is also closed when that actor's tokens stop working.
    pub(crate) fn subscribe(
        self: &Arc<Self>,
        topic: Topic,
        capacity: usize,
        actor: Option<&Actor>,
    ) -> Subscription {
        let outbox = Arc::new(Outbox::in_session(capacity, actor.and_then(|a| a.session)));
        let account = actor.map(|a| a.user_id);
        let mut watching = Vec::new();
        for topic in std::iter::once(topic.clone()).chain(account.map(Topic::Account)) {
            if let Some(interest) = &self.interest {
                watching.push(interest.watch(&topic));
            }
            match topic {
                Topic::Vendor(id) => self.vendors.add(id, outbox.clone()),
                Topic::Tracking(token) => self.trackers.add(token.into(), outbox.clone()),
                Topic::Driver(id) => self.drivers.add(id, outbox.clone()),
                Topic::Account(id) => self.accounts.add(id, outbox.clone()),
            }
        }
        let watching: Option<Watching> = (!watching.is_empty()).then(|| {
            Box::pin(async move {
                for w in watching {
                    w.await;
                }
            }) as Watching
        });
        Subscription {
            hub: self.clone(),
            topic,
            account,
            outbox,
            watching: Mutex::new(watching),
        }
    }

    fn unsubscribe(&self, topic: &Topic, account: Option<UserId>, outbox: &Arc<Outbox>) {
        let account = account.map(Topic::Account);
        for topic in std::iter::once(topic).chain(account.as_ref()) {
            match topic {
                Topic::Vendor(id) => self.vendors.remove(id, outbox),
                Topic::Tracking(token) => self.trackers.remove(token.as_str(), outbox),
                Topic::Driver(id) => self.drivers.remove(id, outbox),
                Topic::Account(id) => self.accounts.remove(id, outbox),
            }
            if let Some(interest) = &self.interest {
                interest.unwatch(topic);
            }
        }
    }
}

impl EventBus for Hub {
    fn publish(&self, event: Event) {
        for topic in event.topics() {
            self.deliver(&topic, &event);
        }
    }
}

impl Fanout for Hub {
    fn deliver(&self, topic: &Topic, event: &Event) {
        let now = Utc::now();
        // Each arm checks that the event concerns the topic (core's table): whatever a bus
        // hands over, a subscriber gets only its own messages.
        match (topic, event) {
            (Topic::Vendor(vendor), Event::DriverLocation(loc)) if loc.vendor_id == *vendor => {
                self.vendors.deliver(
                    vendor,
                    || messages::vendor_location(loc, now),
                    Delivery::Location(loc.driver_id),
                );
            }
            (Topic::Tracking(token), Event::DriverLocation(loc)) => {
                if let Some((eta, stops_before)) = loc.for_tracker(token) {
                    self.trackers.deliver(
                        token.as_str(),
                        || messages::tracker_location(loc, eta, stops_before, now),
                        Delivery::Location(loc.driver_id),
                    );
                }
            }
            (
                Topic::Vendor(vendor),
                Event::DriverStatusChanged {
                    driver_id,
                    vendor_id,
                    status,
                },
            ) if vendor_id == vendor => self.vendors.deliver(
                vendor,
                || messages::driver_status(*driver_id, *status, now),
                Delivery::Event,
            ),
            (Topic::Vendor(vendor), Event::OrderCreated(order)) if order.vendor_id == *vendor => {
                self.vendors.deliver(
                    vendor,
                    || messages::order_created(order, now),
                    Delivery::Event,
                );
            }
            (
                Topic::Vendor(vendor),
                Event::DriverArrival {
                    order,
                    driver_id,
                    arrival,
                    eta_minutes,
                },
            ) if order.vendor_id == *vendor => self.vendors.deliver(
                vendor,
                || messages::vendor_arrival(order, *driver_id, *arrival, *eta_minutes, now),
                Delivery::Event,
            ),
            (
                Topic::Tracking(token),
                Event::DriverArrival {
                    order,
                    arrival: Arrival::Arriving,
                    eta_minutes,
                    ..
                },
            ) if order.tracking_token == *token => self.trackers.deliver(
                token.as_str(),
                || messages::tracker_arriving(*eta_minutes, now),
                Delivery::Event,
            ),
            (Topic::Vendor(vendor), Event::LateRisk(order)) if order.vendor_id == *vendor => {
                self.vendors
                    .deliver(vendor, || messages::late_risk(order, now), Delivery::Event);
            }
            (Topic::Vendor(vendor), Event::OrderUpdated(order)) if order.vendor_id == *vendor => {
                self.vendors.deliver(
                    vendor,
                    || messages::order_updated(order, now),
                    Delivery::Event,
                );
            }
            (Topic::Account(user), Event::SessionsEnded { user_id, session })
                if user_id == user =>
            {
                // One session's connections, or every one of the account's.
                self.accounts.each(user, |outbox| {
                    if session.is_none() || outbox.session == *session {
                        outbox.sign_out();
                    }
                });
            }
            (Topic::Vendor(vendor), Event::OrderStatusChanged { order, previous })
                if order.vendor_id == *vendor =>
            {
                self.vendors.deliver(
                    vendor,
                    || messages::order_status(order, *previous, now),
                    Delivery::Event,
                );
            }
            // An assignment reaches the driver as `assignment` (Event::DriverAssigned).
            (Topic::Driver(driver), Event::OrderStatusChanged { order, previous })
                if order.driver_id == Some(*driver)
                    && order.status != OrderStatus::DriverAssigned =>
            {
                self.drivers.deliver(
                    driver,
                    || messages::order_status(order, *previous, now),
                    Delivery::Event,
                );
            }
            (Topic::Tracking(token), Event::OrderStatusChanged { order, .. })
                if order.tracking_token == *token =>
            {
                let how = if order.status.is_terminal() {
                    Delivery::Final
                } else {
                    Delivery::Event
                };
                self.trackers.deliver(
                    token.as_str(),
                    || messages::tracker_order_status(order, now),
                    how,
                );
            }
            (
                Topic::Driver(driver),
                Event::DriverAssigned {
                    order,
                    previous_driver,
                },
            ) => {
                if order.driver_id == Some(*driver) {
                    self.drivers.deliver(
                        driver,
                        || messages::assignment(order, now),
                        Delivery::Event,
                    );
                } else if *previous_driver == Some(*driver) {
                    self.drivers.deliver(
                        driver,
                        || messages::unassigned(order, now),
                        Delivery::Event,
                    );
                }
            }
            _ => {}
        }
    }

    fn resync(&self, which: &Resync) {
        match which {
            Resync::All => {
                self.vendors.resync_all();
                self.trackers.resync_all();
                self.drivers.resync_all();
                self.accounts.resync_all();
            }
            Resync::Topics(topics) => {
                for topic in topics {
                    match topic {
                        Topic::Vendor(id) => self.vendors.resync(id),
                        Topic::Tracking(token) => self.trackers.resync(token.as_str()),
                        Topic::Driver(id) => self.drivers.resync(id),
                        Topic::Account(id) => self.accounts.resync(id),
                    }
                }
            }
        }
    }
}

/// A connection's place in a topic; leaving the topic when dropped.
pub(crate) struct Subscription {
    hub: Arc<Hub>,
    topic: Topic,
    account: Option<UserId>,
    outbox: Arc<Outbox>,
    /// Until the bus receives the topic's events (none without a bus). In a mutex only to make
    /// the subscription `Sync`: it is taken once, before the connection starts.
    watching: Mutex<Option<Watching>>,
}

impl Subscription {
    /// Where this subscription's messages wait.
    pub(crate) fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Resolves once events of the topic published from now on reach this instance: read the
    /// first state after this, so that nothing falls between it and the events.
    pub(crate) async fn ready(&mut self) {
        let watching = self
            .watching
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(watching) = watching {
            watching.await;
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub
            .unsubscribe(&self.topic, self.account, &self.outbox);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use medex_core::conformance::fixtures::id;

    fn driver(n: u64) -> DriverId {
        id(n)
    }

    fn vendor(n: u64) -> VendorId {
        id(n)
    }

    #[test]
    fn locations_coalesce_to_the_latest_per_driver() {
        let outbox = Outbox::new(4);
        for i in 0..1000 {
            outbox.push_location(driver(1), format!("a{i}").into());
            outbox.push_location(driver(2), format!("b{i}").into());
        }
        let mut batch = outbox.take();
        batch.locations.sort();
        assert_eq!(batch.locations, ["a999", "b999"]);
        assert!(batch.events.is_empty() && batch.end.is_none());
        assert!(outbox.take().locations.is_empty());
    }

    #[test]
    fn a_full_status_queue_ends_the_outbox() {
        let outbox = Outbox::new(2);
        assert!(outbox.push_event("1".into()));
        assert!(outbox.push_event("2".into()));
        assert!(!outbox.push_event("3".into()));
        assert!(outbox.has_ended());
        outbox.push_location(driver(1), "late".into());
        let batch = outbox.take();
        assert!(batch.events.is_empty() && batch.locations.is_empty());
        assert_eq!(batch.end, Some(End::Overflow));
    }

    #[test]
    fn a_final_message_is_delivered_then_the_outbox_ends() {
        let outbox = Outbox::new(8);
        assert!(outbox.push_event("1".into()));
        outbox.push_final("last".into());
        assert!(!outbox.push_event("after".into()));
        let batch = outbox.take();
        assert_eq!(batch.events, ["1", "last"]);
        assert_eq!(batch.end, Some(End::Finished));
    }

    #[test]
    fn overflowing_subscribers_leave_the_topic_and_others_keep_receiving() {
        let hub = Arc::new(Hub::new());
        let slow = hub.subscribe(Topic::Vendor(vendor(1)), 2, None);
        let fast = hub.subscribe(Topic::Vendor(vendor(1)), 2, None);
        let other = hub.subscribe(Topic::Vendor(vendor(2)), 2, None);
        assert_eq!(hub.subscriber_count(), 3);
        let mut serialized = 0;
        for i in 0..10 {
            hub.vendors.deliver(
                &vendor(1),
                || {
                    serialized += 1;
                    format!("{i}").into()
                },
                Delivery::Event,
            );
            // The fast one reads everything at once; the slow one never reads.
            assert_eq!(fast.outbox().take().events, [format!("{i}")]);
        }
        assert_eq!(serialized, 10, "once per topic, not per subscriber");
        assert!(slow.outbox().has_ended());
        assert_eq!(hub.subscriber_count(), 2);
        assert!(other.outbox().take().events.is_empty());
        drop((slow, fast, other));
        assert_eq!(hub.subscriber_count(), 0);
    }

    #[test]
    fn nothing_is_serialized_for_a_topic_without_subscribers() {
        let hub = Hub::new();
        hub.vendors.deliver(
            &vendor(1),
            || unreachable!("nobody listens"),
            Delivery::Event,
        );
    }

    #[test]
    fn a_resync_ends_the_named_topics_or_all_of_them() {
        let hub = Arc::new(Hub::new());
        let one = hub.subscribe(Topic::Vendor(vendor(1)), 4, None);
        let two = hub.subscribe(Topic::Vendor(vendor(2)), 4, None);
        let own = hub.subscribe(Topic::Driver(driver(3)), 4, None);
        one.outbox().push_event("queued".into());
        hub.resync(&Resync::Topics(vec![Topic::Vendor(vendor(1))]));
        let batch = one.outbox().take();
        assert_eq!(batch.end, Some(End::Resync));
        assert!(batch.events.is_empty(), "what was queued is of no use now");
        assert!(!two.outbox().has_ended() && !own.outbox().has_ended());
        assert_eq!(hub.subscriber_count(), 2);
        hub.resync(&Resync::All);
        assert_eq!(two.outbox().take().end, Some(End::Resync));
        assert_eq!(own.outbox().take().end, Some(End::Resync));
        assert_eq!(hub.subscriber_count(), 0);
        // A new subscriber after the resync receives again.
        let fresh = hub.subscribe(Topic::Driver(driver(3)), 4, None);
        hub.drivers
            .deliver(&driver(3), || "after".into(), Delivery::Event);
        assert_eq!(fresh.outbox().take().events, ["after"]);
    }

    /// Counts what the hub tells a bus.
    #[derive(Default)]
    struct Watched(Mutex<Vec<(bool, Topic)>>);

    impl Interest for Watched {
        fn watch(&self, topic: &Topic) -> Watching {
            self.0.lock().unwrap().push((true, topic.clone()));
            Box::pin(async {})
        }
        fn unwatch(&self, topic: &Topic) {
            self.0.lock().unwrap().push((false, topic.clone()));
        }
    }

    #[test]
    fn the_bus_hears_of_every_subscriber_arriving_and_leaving() {
        let watched = Arc::new(Watched::default());
        let hub = Arc::new(Hub::with_interest(watched.clone()));
        let tracking = Topic::Tracking("token".into());
        let a = hub.subscribe(tracking.clone(), 4, None);
        let b = hub.subscribe(tracking.clone(), 4, None);
        // Ended by a resync, a subscription still leaves once, when its connection drops it.
        hub.resync(&Resync::All);
        drop((a, b));
        assert_eq!(
            *watched.0.lock().unwrap(),
            [
                (true, tracking.clone()),
                (true, tracking.clone()),
                (false, tracking.clone()),
                (false, tracking),
            ]
        );
    }

    #[test]
    fn ending_a_session_closes_its_connections_only() {
        let hub = Arc::new(Hub::new());
        let user: UserId = id(9);
        let (one, two): (SessionId, SessionId) = (id(1), id(2));
        let actor = |session| Actor {
            user_id: user,
            role: medex_core::model::Role::Vendor,
            vendor_id: Some(vendor(1)),
            driver_id: None,
            session: Some(session),
        };
        let first = hub.subscribe(Topic::Vendor(vendor(1)), 4, Some(&actor(one)));
        let second = hub.subscribe(Topic::Vendor(vendor(1)), 4, Some(&actor(two)));
        let anonymous = hub.subscribe(Topic::Tracking("t".into()), 4, None);
        hub.publish(Event::SessionsEnded {
            user_id: user,
            session: Some(one),
        });
        assert_eq!(first.outbox().take().end, Some(End::SignedOut));
        assert_eq!(second.outbox().take().end, None);
        hub.publish(Event::SessionsEnded {
            user_id: user,
            session: None,
        });
        assert_eq!(second.outbox().take().end, Some(End::SignedOut));
        assert_eq!(anonymous.outbox().take().end, None);
        drop((first, second, anonymous));
        assert_eq!(hub.accounts.count(), 0);
    }
}
