//! What travels between instances: an event as JSON with the instance it came from (so that an
//! instance ignores its own), and notices that events were lost. Every message carries a format
//! version; one of another version is not understood, and the topics it concerned are resynced.

use std::sync::Arc;

use medex_core::arrivals::Arrival;
use medex_core::events::{DriverLocation, Event, RunStopEta};
use medex_core::model::{
    DriverId, DriverStatus, LocationFix, Order, OrderId, OrderStatus, SessionId, UserId, VendorId,
};
use serde::{Deserialize, Serialize};

/// The format of this build's messages.
const FORMAT: u8 = 1;

/// The process a message came from: random per start.
pub(crate) type Origin = u64;

/// An event as it is published.
#[derive(Serialize)]
struct Outgoing<'a> {
    v: u8,
    from: Origin,
    event: WireRef<'a>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireRef<'a> {
    OrderCreated {
        order: &'a Order,
    },
    OrderUpdated {
        order: &'a Order,
    },
    LateRisk {
        order: &'a Order,
    },
    SessionsEnded {
        user_id: UserId,
        session: Option<SessionId>,
    },
    OrderStatusChanged {
        order: &'a Order,
        previous: OrderStatus,
    },
    DriverAssigned {
        order: &'a Order,
        previous_driver: Option<DriverId>,
    },
    DriverArrival {
        order: &'a Order,
        driver_id: DriverId,
        arrival: Arrival,
        eta_minutes: Option<f64>,
    },
    DriverLocation {
        driver_id: DriverId,
        vendor_id: VendorId,
        fix: &'a LocationFix,
        order_id: Option<OrderId>,
        tracking_token: Option<&'a str>,
        order_status: Option<OrderStatus>,
        eta_minutes: Option<f64>,
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        run: &'a [RunStopEta],
    },
    DriverStatusChanged {
        driver_id: DriverId,
        vendor_id: VendorId,
        status: DriverStatus,
    },
}

/// An event as it is received.
#[derive(Deserialize)]
struct Incoming {
    v: u8,
    from: Origin,
    event: Wire,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Wire {
    OrderCreated {
        order: Order,
    },
    OrderUpdated {
        order: Order,
    },
    LateRisk {
        order: Order,
    },
    SessionsEnded {
        user_id: UserId,
        session: Option<SessionId>,
    },
    OrderStatusChanged {
        order: Order,
        previous: OrderStatus,
    },
    DriverAssigned {
        order: Order,
        previous_driver: Option<DriverId>,
    },
    DriverArrival {
        order: Order,
        driver_id: DriverId,
        arrival: Arrival,
        eta_minutes: Option<f64>,
    },
    DriverLocation {
        driver_id: DriverId,
        vendor_id: VendorId,
        fix: LocationFix,
        order_id: Option<OrderId>,
        tracking_token: Option<String>,
        order_status: Option<OrderStatus>,
        eta_minutes: Option<f64>,
        #[serde(default)]
        run: Vec<RunStopEta>,
    },
    DriverStatusChanged {
        driver_id: DriverId,
        vendor_id: VendorId,
        status: DriverStatus,
    },
}

/// The JSON published for `event`.
pub(crate) fn encode(from: Origin, event: &Event) -> Vec<u8> {
    let event = match event {
        Event::OrderCreated(order) => WireRef::OrderCreated { order },
        Event::OrderUpdated(order) => WireRef::OrderUpdated { order },
        Event::LateRisk(order) => WireRef::LateRisk { order },
        Event::SessionsEnded { user_id, session } => WireRef::SessionsEnded {
            user_id: *user_id,
            session: *session,
        },
        Event::OrderStatusChanged { order, previous } => WireRef::OrderStatusChanged {
            order,
            previous: *previous,
        },
        Event::DriverAssigned {
            order,
            previous_driver,
        } => WireRef::DriverAssigned {
            order,
            previous_driver: *previous_driver,
        },
        Event::DriverArrival {
            order,
            driver_id,
            arrival,
            eta_minutes,
        } => WireRef::DriverArrival {
            order,
            driver_id: *driver_id,
            arrival: *arrival,
            eta_minutes: *eta_minutes,
        },
        Event::DriverLocation(loc) => WireRef::DriverLocation {
            driver_id: loc.driver_id,
            vendor_id: loc.vendor_id,
            fix: &loc.fix,
            order_id: loc.order_id,
            tracking_token: loc.tracking_token.as_deref(),
            order_status: loc.order_status,
            eta_minutes: loc.eta_minutes,
            run: &loc.run,
        },
        Event::DriverStatusChanged {
            driver_id,
            vendor_id,
            status,
        } => WireRef::DriverStatusChanged {
            driver_id: *driver_id,
            vendor_id: *vendor_id,
            status: *status,
        },
    };
    // Records and values serialize without failing (the stores rely on it too).
    serde_json::to_vec(&Outgoing {
        v: FORMAT,
        from,
        event,
    })
    .unwrap_or_default()
}

/// Why a message was not understood.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Unreadable {
    /// Not JSON of an event.
    #[error("not an event message: {0}")]
    Malformed(#[from] serde_json::Error),
    /// Written by a build of another message format.
    #[error("message format {0}, this build reads {FORMAT}")]
    Format(u8),
}

/// The event of a received message and where it came from.
pub(crate) fn decode(bytes: &[u8]) -> Result<(Origin, Event), Unreadable> {
    let incoming: Incoming = serde_json::from_slice(bytes)?;
    if incoming.v != FORMAT {
        return Err(Unreadable::Format(incoming.v));
    }
    let event = match incoming.event {
        Wire::OrderCreated { order } => Event::OrderCreated(Arc::new(order)),
        Wire::OrderUpdated { order } => Event::OrderUpdated(Arc::new(order)),
        Wire::LateRisk { order } => Event::LateRisk(Arc::new(order)),
        Wire::SessionsEnded { user_id, session } => Event::SessionsEnded { user_id, session },
        Wire::OrderStatusChanged { order, previous } => Event::OrderStatusChanged {
            order: Arc::new(order),
            previous,
        },
        Wire::DriverArrival {
            order,
            driver_id,
            arrival,
            eta_minutes,
        } => Event::DriverArrival {
            order: Arc::new(order),
            driver_id,
            arrival,
            eta_minutes,
        },
        Wire::DriverAssigned {
            order,
            previous_driver,
        } => Event::DriverAssigned {
            order: Arc::new(order),
            previous_driver,
        },
        Wire::DriverLocation {
            driver_id,
            vendor_id,
            fix,
            order_id,
            tracking_token,
            order_status,
            eta_minutes,
            run,
        } => Event::DriverLocation(Arc::new(DriverLocation {
            driver_id,
            vendor_id,
            fix,
            order_id,
            tracking_token,
            order_status,
            eta_minutes,
            run,
        })),
        Wire::DriverStatusChanged {
            driver_id,
            vendor_id,
            status,
        } => Event::DriverStatusChanged {
            driver_id,
            vendor_id,
            status,
        },
    };
    Ok((incoming.from, event))
}

/// A notice that events on `channels` (or on every channel) were lost before reaching Redis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Lost {
    v: u8,
    /// The instance that lost them.
    pub(crate) from: Origin,
    /// Too many to list: every subscriber must resync.
    pub(crate) all: bool,
    /// The channels whose events were lost.
    pub(crate) channels: Vec<String>,
}

impl Lost {
    pub(crate) fn new(from: Origin, all: bool, channels: Vec<String>) -> Self {
        Self {
            v: FORMAT,
            from,
            all,
            channels,
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// A notice of another format counts as "everything was lost".
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, Unreadable> {
        let lost: Lost = serde_json::from_slice(bytes)?;
        if lost.v != FORMAT {
            return Err(Unreadable::Format(lost.v));
        }
        Ok(lost)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use medex_core::conformance::fixtures;

    use super::*;
    use medex_core::conformance::fixtures::id;

    #[test]
    fn every_event_travels_unchanged() {
        let mut order = fixtures::order(id(1), id(2), id(3));
        order.driver_id = Some(id(4));
        order.version = 7;
        order.notes = Some("ring twice \u{0} ünïcode".into());
        let order = Arc::new(order);
        let fix = LocationFix {
            driver_id: id(4),
            latitude: 52.520_008_123_456_78,
            longitude: 13.404_954,
            speed: Some(18.5),
            heading: None,
            accuracy: Some(4.0),
            recorded_at: Utc.with_ymd_and_hms(2026, 5, 1, 8, 0, 0).unwrap()
                + chrono::Duration::nanoseconds(123_456_789),
        };
        let events = [
            Event::OrderCreated(order.clone()),
            Event::OrderStatusChanged {
                order: order.clone(),
                previous: OrderStatus::Accepted,
            },
            Event::DriverAssigned {
                order: order.clone(),
                previous_driver: Some(id(5)),
            },
            Event::DriverLocation(Arc::new(DriverLocation {
                driver_id: id(4),
                vendor_id: id(2),
                fix,
                order_id: Some(order.id),
                tracking_token: Some(order.tracking_token.clone()),
                order_status: Some(OrderStatus::OutForDelivery),
                eta_minutes: Some(7.25),
                run: vec![RunStopEta {
                    order_id: order.id,
                    tracking_token: order.tracking_token.clone(),
                    order_status: OrderStatus::OutForDelivery,
                    eta_minutes: 7.25,
                    stops_before: 2,
                }],
            })),
            Event::DriverStatusChanged {
                driver_id: id(4),
                vendor_id: id(2),
                status: DriverStatus::OnBreak,
            },
            Event::OrderUpdated(order.clone()),
            Event::LateRisk(order.clone()),
            Event::DriverArrival {
                order: order.clone(),
                driver_id: id(4),
                arrival: Arrival::Arriving,
                eta_minutes: Some(1.5),
            },
            Event::DriverArrival {
                order: order.clone(),
                driver_id: id(4),
                arrival: Arrival::Departed,
                eta_minutes: None,
            },
            Event::SessionsEnded {
                user_id: id(6),
                session: Some(id(7)),
            },
            Event::SessionsEnded {
                user_id: id(6),
                session: None,
            },
        ];
        for event in events {
            let (from, back) = decode(&encode(42, &event)).unwrap();
            assert_eq!((from, back), (42, event));
        }
    }

    #[test]
    fn messages_of_another_format_or_no_event_are_refused() {
        assert!(matches!(decode(b"not json"), Err(Unreadable::Malformed(_))));
        assert!(matches!(
            decode(br#"{"v":2,"from":1,"event":{"type":"future"}}"#),
            Err(Unreadable::Malformed(_) | Unreadable::Format(2))
        ));
        assert!(matches!(
            decode(br#"{"v":2,"from":1,"event":{"type":"driver_status_changed","driver_id":"00000000-0000-7000-8000-000000000001","vendor_id":"00000000-0000-7000-8000-000000000001","status":"busy"}}"#),
            Err(Unreadable::Format(2))
        ));
        let lost = Lost::new(9, false, vec!["p:vendor:x".into()]);
        assert_eq!(Lost::decode(&lost.encode()).unwrap(), lost);
        assert!(Lost::decode(br#"{"v":3,"from":1,"all":false,"channels":[]}"#).is_err());
    }
}
