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

use std::borrow::Borrow;
use std::cell::OnceCell;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use chrono::Utc;
use medex_core::events::{Event, EventBus};
use medex_core::model::{DriverId, SessionId, UserId, VendorId};
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
}

impl Outbox {
    /// An outbox holding at most `capacity` status events (at least 1).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            pending: Mutex::new(Pending::default()),
            notify: Notify::new(),
            capacity: capacity.max(1),
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

/// What a subscription listens to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Topic {
    /// A pharmacy's dashboard: its fleet's positions and statuses, its orders.
    Vendor(VendorId),
    /// A public tracker of one order, by its tracking token.
    Tracking(Box<str>),
    /// A driver's own socket: its assignments and its orders' statuses.
    Driver(DriverId),
}

/// The WebSocket fan-out, and the [`EventBus`] the use cases publish to.
///
/// Give the same `Arc<Hub>` to [`MedEx`](medex_core::MedEx) as its bus and to
/// [`WsServer`](crate::WsServer). [`publish`](EventBus::publish) never blocks or awaits: it
/// serializes each message once per topic and hands it to each subscriber's bounded outbox.
/// Topics: per vendor (dashboards), per tracking token (public trackers), per driver (the
/// driver's own socket).
pub struct Hub {
    vendors: Topics<VendorId>,
    trackers: Topics<Box<str>>,
    drivers: Topics<DriverId>,
    /// Every signed-in connection's outbox by account, with the session it was opened in: for
    /// closing them when their tokens stop working.
    accounts: RwLock<HashMap<UserId, Vec<SignedIn>>>,
}

/// A signed-in connection's outbox, with the session it was opened in.
type SignedIn = (Option<SessionId>, Arc<Outbox>);

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
            accounts: RwLock::new(HashMap::new()),
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
        let outbox = Arc::new(Outbox::new(capacity));
        match &topic {
            Topic::Vendor(id) => self.vendors.add(*id, outbox.clone()),
            Topic::Tracking(token) => self.trackers.add(token.clone(), outbox.clone()),
            Topic::Driver(id) => self.drivers.add(*id, outbox.clone()),
        }
        let account = actor.map(|a| a.user_id);
        if let Some(actor) = actor {
            self.accounts
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .entry(actor.user_id)
                .or_default()
                .push((actor.session, outbox.clone()));
        }
        Subscription {
            hub: self.clone(),
            topic,
            account,
            outbox,
        }
    }

    fn unsubscribe(&self, topic: &Topic, account: Option<UserId>, outbox: &Arc<Outbox>) {
        match topic {
            Topic::Vendor(id) => self.vendors.remove(id, outbox),
            Topic::Tracking(token) => self.trackers.remove(&**token, outbox),
            Topic::Driver(id) => self.drivers.remove(id, outbox),
        }
        if let Some(user) = account {
            let mut accounts = self.accounts.write().unwrap_or_else(|e| e.into_inner());
            if let Some(list) = accounts.get_mut(&user) {
                list.retain(|(_, o)| !Arc::ptr_eq(o, outbox));
                if list.is_empty() {
                    accounts.remove(&user);
                }
            }
        }
    }

    /// Closes the connections of `user` opened in `session` (every session when `None`).
    fn sign_out(&self, user: UserId, session: Option<SessionId>) {
        let accounts = self.accounts.read().unwrap_or_else(|e| e.into_inner());
        for (opened_in, outbox) in accounts.get(&user).into_iter().flatten() {
            if session.is_none() || *opened_in == session {
                outbox.sign_out();
            }
        }
    }
}

impl EventBus for Hub {
    fn publish(&self, event: Event) {
        let now = Utc::now();
        match event {
            Event::SessionsEnded { user_id, session } => self.sign_out(user_id, session),
            Event::DriverLocation(loc) => {
                self.vendors.deliver(
                    &loc.vendor_id,
                    || messages::vendor_location(&loc, now),
                    Delivery::Location(loc.driver_id),
                );
                // The public follows the driver only while its order is on its way: not while it
                // heads back after a failed attempt.
                if let (Some(token), Some(status)) = (&loc.tracking_token, loc.order_status)
                    && status.is_on_its_way()
                {
                    self.trackers.deliver(
                        token.as_str(),
                        || messages::tracker_location(&loc, now),
                        Delivery::Location(loc.driver_id),
                    );
                }
            }
            Event::DriverStatusChanged {
                driver_id,
                vendor_id,
                status,
            } => self.vendors.deliver(
                &vendor_id,
                || messages::driver_status(driver_id, status, now),
                Delivery::Event,
            ),
            Event::OrderCreated(order) => self.vendors.deliver(
                &order.vendor_id,
                || messages::order_created(&order, now),
                Delivery::Event,
            ),
            Event::OrderUpdated(order) => self.vendors.deliver(
                &order.vendor_id,
                || messages::order_updated(&order, now),
                Delivery::Event,
            ),
            Event::OrderStatusChanged { order, previous } => {
                // The pharmacy and the driver see the same message: serialize it once.
                let full = OnceCell::new();
                let full = || {
                    full.get_or_init(|| messages::order_status(&order, previous, now))
                        .clone()
                };
                self.vendors
                    .deliver(&order.vendor_id, full, Delivery::Event);
                // An assignment reaches the driver as `assignment` (Event::DriverAssigned).
                if let Some(driver) = order.driver_id
                    && order.status != medex_core::model::OrderStatus::DriverAssigned
                {
                    self.drivers.deliver(&driver, full, Delivery::Event);
                }
                let how = if order.status.is_terminal() {
                    Delivery::Final
                } else {
                    Delivery::Event
                };
                self.trackers.deliver(
                    order.tracking_token.as_str(),
                    || messages::tracker_order_status(&order, now),
                    how,
                );
            }
            Event::DriverAssigned {
                order,
                previous_driver,
            } => {
                if let Some(driver) = order.driver_id {
                    self.drivers.deliver(
                        &driver,
                        || messages::assignment(&order, now),
                        Delivery::Event,
                    );
                }
                if let Some(previous) = previous_driver.filter(|p| Some(*p) != order.driver_id) {
                    self.drivers.deliver(
                        &previous,
                        || messages::unassigned(&order, now),
                        Delivery::Event,
                    );
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
}

impl Subscription {
    /// Where this subscription's messages wait.
    pub(crate) fn outbox(&self) -> &Outbox {
        &self.outbox
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

    fn id<T: std::str::FromStr>(n: u64) -> T {
        match format!("00000000-0000-7000-8000-{n:012}").parse() {
            Ok(id) => id,
            Err(_) => panic!("bad test id"),
        }
    }

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
        assert!(hub.accounts.read().unwrap().is_empty());
    }
}
