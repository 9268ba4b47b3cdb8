//! Events the use cases emit after a successful commit, and the bus port they go through.
//!
//! Transports subscribe (the WebSocket hub implements [`EventBus`]). Publishing never blocks and
//! never fails: a subscriber that cannot keep up is the subscriber's problem.
//!
//! Events reach subscribers by [`Topic`]: a pharmacy's dashboard, an order's public tracker, a
//! driver's own socket; [`Event::topics`] says which topics an event concerns. A bus that carries
//! events between instances (over Redis, say) hands them to each instance's fan-out topic by
//! topic ([`Fanout`]), learns from it which topics have subscribers there ([`Interest`]), and
//! tells it when subscribers may have missed events and must start again ([`Resync`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};

use crate::arrivals::Arrival;
use crate::model::{
    DriverId, DriverStatus, LocationFix, Order, OrderId, OrderStatus, SessionId, UserId, VendorId,
};

/// A driver's new position, with what subscribers need to route and show it.
#[derive(Debug, Clone, PartialEq)]
pub struct DriverLocation {
    /// Whose.
    pub driver_id: DriverId,
    /// The fleet it belongs to.
    pub vendor_id: VendorId,
    /// The fix.
    pub fix: LocationFix,
    /// The order it is working on, if any.
    pub order_id: Option<OrderId>,
    /// That order's tracking token, so tracking subscribers can be reached.
    pub tracking_token: Option<String>,
    /// That order's status.
    pub order_status: Option<OrderStatus>,
    /// Minutes to the destination of that order, from this position (on a run: through the
    /// stops before it).
    pub eta_minutes: Option<f64>,
    /// On a run of several orders (DESIGN §14): each order with a stop ahead, with its ETA
    /// through the stops before its own and how many drop-offs come first. Empty otherwise.
    pub run: Vec<RunStopEta>,
}

/// Where one order of a run stands for its customer: all its tracker is told.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunStopEta {
    /// Which order.
    pub order_id: OrderId,
    /// Its tracking token, so its tracker can be reached.
    pub tracking_token: String,
    /// Its status.
    pub order_status: OrderStatus,
    /// Minutes to its drop-off through the stops before it.
    pub eta_minutes: f64,
    /// Drop-offs of other orders before its own (a count, nothing about them).
    pub stops_before: u32,
}

impl DriverLocation {
    /// The ETA and stops before for the order tracked by `token`: from its run entry, else the
    /// order the event names (with no stops before it).
    pub fn for_tracker(&self, token: &str) -> Option<(Option<f64>, Option<u32>)> {
        if let Some(stop) = self.run.iter().find(|s| s.tracking_token == token) {
            return stop
                .order_status
                .is_on_its_way()
                .then_some((Some(stop.eta_minutes), Some(stop.stops_before)));
        }
        (self.tracking_token.as_deref() == Some(token)
            && self.order_status.is_some_and(|s| s.is_on_its_way()))
        .then_some((self.eta_minutes, None))
    }
}

/// Something that happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A new order arrived at a pharmacy.
    OrderCreated(Arc<Order>),
    /// An order changed status (including re-assignment, which stays `driver_assigned`).
    OrderStatusChanged {
        /// The order after the change.
        order: Arc<Order>,
        /// The status before.
        previous: OrderStatus,
    },
    /// An order changed without changing status (its destination was given).
    OrderUpdated(Arc<Order>),
    /// An order's drop-off is now expected after its `deliver_before` (raised once per order;
    /// `late_risk_at` says when).
    LateRisk(Arc<Order>),
    /// A driver was assigned to an order (the driver's `assignment` message).
    DriverAssigned {
        /// The order after assignment.
        order: Arc<Order>,
        /// The driver relieved by a re-assignment.
        previous_driver: Option<DriverId>,
    },
    /// A driver reported a position.
    DriverLocation(Arc<DriverLocation>),
    /// A driver is about to reach, has reached or has left an order's drop-off (DESIGN §14),
    /// each once per order; `order` carries the marks (`driver_arriving_at`,
    /// `driver_arrived_at`).
    DriverArrival {
        /// The order whose drop-off it is.
        order: Arc<Order>,
        /// Whose approach.
        driver_id: DriverId,
        /// What happened.
        arrival: Arrival,
        /// Minutes to the drop-off from the fix that told it, when known.
        eta_minutes: Option<f64>,
    },
    /// Tokens of an account stopped working: one session (`Some`: a logout, a refresh token used
    /// twice) or all of them (`None`: deactivation, a password change, "log out everywhere").
    /// Live connections opened with them close.
    SessionsEnded {
        /// Whose.
        user_id: UserId,
        /// Which session, or every one.
        session: Option<SessionId>,
    },
    /// A driver's availability changed.
    DriverStatusChanged {
        /// Whose.
        driver_id: DriverId,
        /// The fleet.
        vendor_id: VendorId,
        /// The new status.
        status: DriverStatus,
    },
}

/// What live subscribers listen to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    /// A pharmacy's dashboard: its fleet's positions and statuses, its orders.
    Vendor(VendorId),
    /// A public tracker of one order, by its tracking token.
    Tracking(String),
    /// A driver's own socket: its assignments and its orders' statuses.
    Driver(DriverId),
    /// Every connection an account signed in with: closed when its tokens stop working.
    Account(UserId),
}

impl Event {
    /// The topics whose subscribers this event concerns, each once: the one routing table of
    /// live updates.
    ///
    /// - `OrderCreated`, `OrderUpdated`, `LateRisk`, `DriverStatusChanged`: the pharmacy.
    /// - `OrderStatusChanged`: the pharmacy, the tracker, and the assigned driver unless the
    ///   change is an assignment (the driver hears of that as `DriverAssigned`).
    /// - `DriverAssigned`: the assigned driver, and a driver relieved by a re-assignment.
    /// - `DriverLocation`: the pharmacy, and the order's tracker while the order is on its way
    ///   (not while the driver heads back after a failed attempt); on a run, the tracker of
    ///   every order of the run on its way.
    /// - `DriverArrival`: the pharmacy, and the order's tracker for `arriving` only (where the
    ///   driver waits or goes next is not the customer's to follow).
    /// - `SessionsEnded`: the account's connections.
    pub fn topics(&self) -> impl Iterator<Item = Topic> + use<> {
        let (a, b, c) = match self {
            Event::OrderCreated(order) | Event::OrderUpdated(order) | Event::LateRisk(order) => {
                (Some(Topic::Vendor(order.vendor_id)), None, None)
            }
            Event::SessionsEnded { user_id, .. } => (Some(Topic::Account(*user_id)), None, None),
            Event::DriverStatusChanged { vendor_id, .. } => {
                (Some(Topic::Vendor(*vendor_id)), None, None)
            }
            Event::OrderStatusChanged { order, .. } => (
                Some(Topic::Vendor(order.vendor_id)),
                order
                    .driver_id
                    .filter(|_| order.status != OrderStatus::DriverAssigned)
                    .map(Topic::Driver),
                Some(Topic::Tracking(order.tracking_token.clone())),
            ),
            Event::DriverArrival { order, arrival, .. } => (
                Some(Topic::Vendor(order.vendor_id)),
                (*arrival == Arrival::Arriving)
                    .then(|| Topic::Tracking(order.tracking_token.clone())),
                None,
            ),
            Event::DriverAssigned {
                order,
                previous_driver,
            } => (
                order.driver_id.map(Topic::Driver),
                previous_driver
                    .filter(|p| Some(*p) != order.driver_id)
                    .map(Topic::Driver),
                None,
            ),
            Event::DriverLocation(loc) => (
                Some(Topic::Vendor(loc.vendor_id)),
                match (&loc.tracking_token, loc.order_status) {
                    (Some(token), Some(status))
                        if status.is_on_its_way()
                            && !loc.run.iter().any(|s| s.tracking_token == *token) =>
                    {
                        Some(Topic::Tracking(token.clone()))
                    }
                    _ => None,
                },
                None,
            ),
        };
        let run: Vec<Topic> = match self {
            Event::DriverLocation(loc) => loc
                .run
                .iter()
                .filter(|s| s.order_status.is_on_its_way())
                .map(|s| Topic::Tracking(s.tracking_token.clone()))
                .collect(),
            _ => Vec::new(),
        };
        [a, b, c].into_iter().flatten().chain(run)
    }

    /// The order this event reports, with its version: events of one order carry rising
    /// versions in commit order (a status change and its assignment share one).
    pub fn order_version(&self) -> Option<(OrderId, u64)> {
        match self {
            Event::OrderCreated(order)
            | Event::OrderUpdated(order)
            | Event::LateRisk(order)
            | Event::OrderStatusChanged { order, .. }
            | Event::DriverAssigned { order, .. }
            | Event::DriverArrival { order, .. } => Some((order.id, order.version)),
            Event::DriverLocation(_)
            | Event::DriverStatusChanged { .. }
            | Event::SessionsEnded { .. } => None,
        }
    }
}

/// Whether the bus reaches the other instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusHealth {
    /// The bus is this process: nothing to reach.
    InProcess,
    /// Connected to the shared bus.
    Connected,
    /// The shared bus cannot be reached now: events stay in this instance (its subscribers are
    /// told to resync once it is back).
    Disconnected,
}

/// Where events go.
pub trait EventBus: Send + Sync + 'static {
    /// Hands an event to subscribers. Must not block.
    fn publish(&self, event: Event);

    /// Whether the bus reaches the other instances; in-process buses have none to reach.
    /// Buses that wrap another must pass this on.
    fn health(&self) -> BusHealth {
        BusHealth::InProcess
    }
}

/// Which subscribers must start again from a fresh state, because events meant for them may
/// have been lost on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resync {
    /// Every subscriber of this instance.
    All,
    /// The subscribers of these topics.
    Topics(Vec<Topic>),
}

/// An instance's fan-out of events to its subscribers, topic by topic: what a bus between
/// instances hands events to (the WebSocket hub implements it).
pub trait Fanout: Send + Sync + 'static {
    /// Delivers `event` to the subscribers of `topic` only (`topic` is one of
    /// [`Event::topics`]). Must not block.
    fn deliver(&self, topic: &Topic, event: &Event);
    /// Ends the subscriptions `which` names, telling their clients to reconnect and start from
    /// a fresh state. Must not block.
    fn resync(&self, which: &Resync);
}

/// A future resolved once a bus receives a topic's events.
pub type Watching = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// What a fan-out tells a bus about its subscribers, so that the bus receives the events of
/// those topics only.
pub trait Interest: Send + Sync + 'static {
    /// A subscriber of `topic` arrived. The future resolves once events of `topic` published
    /// from then on reach this instance (at once while the bus is down: its subscribers are
    /// resynced when it is back); a subscriber reads its first state after that, so that
    /// nothing falls between that state and the events.
    fn watch(&self, topic: &Topic) -> Watching;
    /// A subscriber of `topic` left (one call per earlier [`Interest::watch`]).
    fn unwatch(&self, topic: &Topic);
}

/// A bus that drops every event: for programs that do not need live updates.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullBus;

impl EventBus for NullBus {
    fn publish(&self, _event: Event) {}
}

type Subscriber = Box<dyn Fn(&Event) + Send + Sync>;

/// The in-process default: calls each subscriber synchronously. Subscribers must be quick and
/// must not publish themselves.
#[derive(Default)]
pub struct InProcessBus {
    subscribers: RwLock<Vec<Subscriber>>,
}

impl InProcessBus {
    /// An empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a subscriber for every later event.
    pub fn subscribe(&self, subscriber: impl Fn(&Event) + Send + Sync + 'static) {
        self.subscribers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(subscriber));
    }
}

impl EventBus for InProcessBus {
    fn publish(&self, event: Event) {
        for subscriber in self
            .subscribers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            subscriber(&event);
        }
    }
}

/// Keeps every event: for tests that assert what was published.
#[derive(Debug, Default)]
pub struct RecordingBus {
    events: Mutex<Vec<Event>>,
}

impl RecordingBus {
    /// Takes the events published so far.
    pub fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl EventBus for RecordingBus {
    fn publish(&self, event: Event) {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::fixtures;
    use crate::conformance::fixtures::id;

    fn order(status: OrderStatus, driver: Option<u64>) -> Arc<Order> {
        let mut order = fixtures::order(id(1), id(2), id(3));
        order.status = status;
        order.driver_id = driver.map(id);
        order.tracking_token = "tok".into();
        order.version = 4;
        Arc::new(order)
    }

    fn location(status: Option<OrderStatus>) -> Event {
        Event::DriverLocation(Arc::new(DriverLocation {
            driver_id: id(7),
            vendor_id: id(2),
            fix: LocationFix {
                driver_id: id(7),
                latitude: 52.5,
                longitude: 13.4,
                speed: None,
                heading: None,
                accuracy: None,
                recorded_at: fixtures::t0(),
            },
            order_id: status.map(|_| id(1)),
            tracking_token: status.map(|_| "tok".to_owned()),
            order_status: status,
            eta_minutes: None,
            run: Vec::new(),
        }))
    }

    #[test]
    fn each_event_concerns_exactly_its_topics() {
        let vendor = Topic::Vendor(id(2));
        let tracker = Topic::Tracking("tok".into());
        let check = |event: Event, expect: Vec<Topic>| {
            assert_eq!(event.topics().collect::<Vec<_>>(), expect, "{event:?}");
        };
        check(
            Event::OrderCreated(order(OrderStatus::Pending, None)),
            vec![vendor.clone()],
        );
        check(
            Event::OrderStatusChanged {
                order: order(OrderStatus::PickedUp, Some(7)),
                previous: OrderStatus::DriverAssigned,
            },
            vec![vendor.clone(), Topic::Driver(id(7)), tracker.clone()],
        );
        // The driver hears of its assignment as `DriverAssigned`, not as a status change.
        check(
            Event::OrderStatusChanged {
                order: order(OrderStatus::DriverAssigned, Some(7)),
                previous: OrderStatus::Accepted,
            },
            vec![vendor.clone(), tracker.clone()],
        );
        check(
            Event::DriverAssigned {
                order: order(OrderStatus::DriverAssigned, Some(7)),
                previous_driver: Some(id(8)),
            },
            vec![Topic::Driver(id(7)), Topic::Driver(id(8))],
        );
        check(
            Event::DriverAssigned {
                order: order(OrderStatus::DriverAssigned, Some(7)),
                previous_driver: Some(id(7)),
            },
            vec![Topic::Driver(id(7))],
        );
        check(
            location(Some(OrderStatus::OutForDelivery)),
            vec![vendor.clone(), tracker],
        );
        // Heading back after a failed attempt, or on no order: the pharmacy only.
        check(location(Some(OrderStatus::Failed)), vec![vendor.clone()]);
        check(location(None), vec![vendor.clone()]);
        check(
            Event::DriverStatusChanged {
                driver_id: id(7),
                vendor_id: id(2),
                status: DriverStatus::OnBreak,
            },
            vec![vendor.clone()],
        );
        check(
            Event::OrderUpdated(order(OrderStatus::Accepted, None)),
            vec![vendor],
        );
        check(
            Event::SessionsEnded {
                user_id: id(9),
                session: None,
            },
            vec![Topic::Account(id(9))],
        );
        assert_eq!(
            Event::OrderCreated(order(OrderStatus::Pending, None)).order_version(),
            Some((id(1), 4))
        );
        assert_eq!(location(None).order_version(), None);
    }
}
