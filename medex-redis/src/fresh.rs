//! Commit order between instances. Two instances publishing changes of one order reach a third
//! by different connections, so the later change can arrive first; every event of an order
//! carries the order's version, and a subscriber gets an order's events in rising versions only:
//! one older than what its topic already saw is dropped (the newer state has been delivered).
//! Driver positions likewise, by their `recorded_at`.
//!
//! The marks are remembered in two generations of bounded size: when the current one is full it
//! becomes the previous one and a new one starts, so the memory stays bounded and a mark is
//! forgotten only after many newer subjects passed.

use std::collections::HashMap;

use medex_core::events::{Event, Topic};
use medex_core::model::{DriverId, OrderId, UserId, VendorId};

/// Marks kept per generation.
const GENERATION: usize = 50_000;

/// Whose events are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Subject {
    Order(OrderId),
    Position(DriverId),
}

/// Which subscribers: a topic without the token (an order has one tracker topic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Lane {
    Vendor(VendorId),
    Tracking,
    Driver(DriverId),
    Account(UserId),
}

fn lane(topic: &Topic) -> Lane {
    match topic {
        Topic::Vendor(id) => Lane::Vendor(*id),
        Topic::Tracking(_) => Lane::Tracking,
        Topic::Driver(id) => Lane::Driver(*id),
        Topic::Account(id) => Lane::Account(*id),
    }
}

/// The newest mark of each (subject, lane) delivered so far.
#[derive(Debug, Default)]
pub(crate) struct Freshness {
    current: HashMap<(Subject, Lane), i128>,
    previous: HashMap<(Subject, Lane), i128>,
}

impl Freshness {
    /// Whether `event` may go to the subscribers of `topic`: it is not older than what they
    /// already got. Records it when it is newer.
    pub(crate) fn admit(&mut self, topic: &Topic, event: &Event) -> bool {
        let (subject, mark) = match event {
            Event::DriverLocation(loc) => (
                Subject::Position(loc.driver_id),
                i128::from(
                    loc.fix
                        .recorded_at
                        .timestamp_nanos_opt()
                        .unwrap_or(i64::MAX),
                ),
            ),
            other => match other.order_version() {
                Some((order, version)) => (Subject::Order(order), i128::from(version)),
                None => return true,
            },
        };
        let key = (subject, lane(topic));
        let seen = self
            .current
            .get(&key)
            .or_else(|| self.previous.get(&key))
            .copied();
        if seen.is_some_and(|seen| mark < seen) {
            return false;
        }
        if self.current.len() >= GENERATION && !self.current.contains_key(&key) {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(key, mark);
        true
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use medex_core::conformance::fixtures;
    use medex_core::events::DriverLocation;
    use medex_core::model::{LocationFix, OrderStatus};

    use super::*;
    use medex_core::conformance::fixtures::id;

    fn status(n: u64, version: u64) -> Event {
        let mut order = fixtures::order(id(n), id(2), id(3));
        order.version = version;
        Event::OrderStatusChanged {
            order: Arc::new(order),
            previous: OrderStatus::Pending,
        }
    }

    fn location(seconds: i64) -> Event {
        Event::DriverLocation(Arc::new(DriverLocation {
            driver_id: id(4),
            vendor_id: id(2),
            fix: LocationFix {
                driver_id: id(4),
                latitude: 52.5,
                longitude: 13.4,
                speed: None,
                heading: None,
                accuracy: None,
                recorded_at: fixtures::t0() + chrono::Duration::seconds(seconds),
            },
            order_id: None,
            tracking_token: None,
            order_status: None,
            eta_minutes: None,
            run: Vec::new(),
        }))
    }

    #[test]
    fn an_older_version_than_the_topic_saw_is_dropped() {
        let mut fresh = Freshness::default();
        let vendor = Topic::Vendor(id(2));
        let tracking = Topic::Tracking("t".into());
        assert!(fresh.admit(&vendor, &status(1, 4)));
        assert!(!fresh.admit(&vendor, &status(1, 3)), "v3 after v4");
        assert!(
            fresh.admit(&vendor, &status(1, 4)),
            "events of one commit share a version"
        );
        assert!(fresh.admit(&vendor, &status(1, 5)));
        assert!(
            fresh.admit(&tracking, &status(1, 3)),
            "each topic has its own order"
        );
        assert!(fresh.admit(&vendor, &status(9, 1)), "each order too");
        assert!(fresh.admit(&vendor, &location(10)));
        assert!(!fresh.admit(&vendor, &location(9)), "an older position");
        assert!(fresh.admit(&vendor, &location(11)));
    }

    #[test]
    fn marks_stay_bounded_and_recent_ones_are_kept() {
        let mut fresh = Freshness::default();
        let vendor = Topic::Vendor(id(2));
        assert!(fresh.admit(&vendor, &status(0, 10)));
        for n in 1..=(GENERATION as u64 * 3) {
            fresh.admit(&vendor, &status(n, 1));
        }
        assert!(fresh.current.len() <= GENERATION && fresh.previous.len() <= GENERATION);
        let last = GENERATION as u64 * 3;
        assert!(
            !fresh.admit(&vendor, &status(last, 0)),
            "a recent mark is remembered"
        );
    }
}
