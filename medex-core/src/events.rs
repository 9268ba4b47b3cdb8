//! Events the use cases emit after a successful commit, and the bus port they go through.
//!
//! Transports subscribe (the WebSocket hub implements [`EventBus`]). Publishing never blocks and
//! never fails: a subscriber that cannot keep up is the subscriber's problem.

use std::sync::{Arc, Mutex, RwLock};

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
    /// Minutes to the destination of that order, from this position.
    pub eta_minutes: Option<f64>,
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
    /// A driver was assigned to an order (the driver's `assignment` message).
    DriverAssigned {
        /// The order after assignment.
        order: Arc<Order>,
        /// The driver relieved by a re-assignment.
        previous_driver: Option<DriverId>,
    },
    /// A driver reported a position.
    DriverLocation(Arc<DriverLocation>),
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

/// Where events go.
pub trait EventBus: Send + Sync + 'static {
    /// Hands an event to subscribers. Must not block.
    fn publish(&self, event: Event);
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
