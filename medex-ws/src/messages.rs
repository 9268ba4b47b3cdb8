//! The wire: JSON messages with a `type`, in both directions.
//!
//! Server messages are built from borrowed domain records into explicit wire structs, so what a
//! subscriber sees is decided here and nowhere else: the public tracker gets only what the
//! [`TrackingView`] would show.

use chrono::{DateTime, Utc};
use medex_core::arrivals::Arrival;
use medex_core::events::DriverLocation;
use medex_core::model::{
    Driver, DriverId, DriverStatus, Money, Order, OrderId, OrderStatus, UserId, VehicleType,
    VendorId,
};
use medex_core::permissions::OrderFields;
use medex_core::service::LiveFleet;
use medex_core::tracking::{TimelineEntry, TrackingView};
use medex_core::views::OrderView;
use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::Utf8Bytes;

// ---------------------------------------------------------------------------------------------
// Client → server

/// What a client may send.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ClientMessage {
    /// A driver's position (drivers only).
    Location(WireFix),
    /// Fixes the device kept while it was offline (drivers only): at most 100, each with its
    /// `recorded_at`, recorded as one report.
    Locations {
        /// Oldest or newest first: they join the trail in `recorded_at` order.
        fixes: Vec<WireFix>,
    },
    /// An application-level keep-alive for clients that cannot send ping frames; answered with
    /// `pong`.
    Ping,
}

/// A fix as a client sends it: the fields of a `location` message, or one fix of a `locations`
/// batch.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub(crate) struct WireFix {
    pub(crate) latitude: f64,
    pub(crate) longitude: f64,
    #[serde(default)]
    pub(crate) speed: Option<f64>,
    #[serde(default)]
    pub(crate) heading: Option<f64>,
    #[serde(default)]
    pub(crate) accuracy: Option<f64>,
    #[serde(default)]
    pub(crate) recorded_at: Option<DateTime<Utc>>,
}

impl From<WireFix> for medex_core::service::FixInput {
    fn from(f: WireFix) -> Self {
        Self {
            latitude: f.latitude,
            longitude: f.longitude,
            speed: f.speed,
            heading: f.heading,
            accuracy: f.accuracy,
            recorded_at: f.recorded_at,
        }
    }
}

impl ClientMessage {
    /// Parses one text message; the error is for the client (serde's description).
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }
}

// ---------------------------------------------------------------------------------------------
// Server → client: views of records

/// An order as its pharmacy (and its driver) see it, never with the handover code: no socket
/// message carries it (the recipient gives it at the door).
fn order_view(order: &Order) -> OrderView<'_> {
    OrderView::with(OrderFields::WithoutHandoverCode, order)
}

/// A driver as its pharmacy sees it on the dashboard.
#[derive(Debug, Serialize)]
pub(crate) struct DriverView<'a> {
    id: DriverId,
    user_id: UserId,
    vendor_id: VendorId,
    full_name: &'a str,
    email: &'a str,
    phone: Option<&'a str>,
    vehicle_type: VehicleType,
    vehicle_number: Option<&'a str>,
    license_number: Option<&'a str>,
    status: DriverStatus,
    active_order_id: Option<OrderId>,
    current_latitude: Option<f64>,
    current_longitude: Option<f64>,
    last_location_update: Option<DateTime<Utc>>,
    total_deliveries: u64,
    total_earnings: Money,
    is_active: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl<'a> DriverView<'a> {
    pub(crate) fn new(d: &'a Driver) -> Self {
        Self {
            id: d.id,
            user_id: d.user_id,
            vendor_id: d.vendor_id,
            full_name: &d.full_name,
            email: d.email.as_str(),
            phone: d.phone.as_deref(),
            vehicle_type: d.vehicle_type,
            vehicle_number: d.vehicle_number.as_deref(),
            license_number: d.license_number.as_deref(),
            status: d.status,
            active_order_id: d.active_order_id,
            current_latitude: d.current_latitude,
            current_longitude: d.current_longitude,
            last_location_update: d.last_location_update,
            total_deliveries: d.total_deliveries,
            total_earnings: d.total_earnings,
            is_active: d.is_active,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Server → client: messages

/// Every server message: a `type`, its body, and when the server sent it.
#[derive(Serialize)]
struct Envelope<T> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    body: T,
    sent_at: DateTime<Utc>,
}

/// Serializes a message once; the text is then shared by every subscriber.
fn text<T: Serialize>(kind: &'static str, body: T, sent_at: DateTime<Utc>) -> Utf8Bytes {
    match serde_json::to_string(&Envelope {
        kind,
        body,
        sent_at,
    }) {
        Ok(json) => Utf8Bytes::from(json),
        // Only a Serialize impl returning an error could get here; none of ours does.
        Err(e) => {
            tracing::error!(error = %e, kind, "cannot serialize a WebSocket message");
            Utf8Bytes::from(format!(
                r#"{{"type":"error","code":"internal","detail":"cannot serialize {kind}"}}"#
            ))
        }
    }
}

/// `driver_location` for the vendor dashboard: everything about the fix.
pub(crate) fn vendor_location(loc: &DriverLocation, sent_at: DateTime<Utc>) -> Utf8Bytes {
    #[derive(Serialize)]
    struct Body {
        driver_id: DriverId,
        latitude: f64,
        longitude: f64,
        speed: Option<f64>,
        heading: Option<f64>,
        accuracy: Option<f64>,
        recorded_at: DateTime<Utc>,
        order_id: Option<OrderId>,
        order_status: Option<OrderStatus>,
        eta_minutes: Option<f64>,
    }
    let fix = &loc.fix;
    text(
        "driver_location",
        Body {
            driver_id: loc.driver_id,
            latitude: fix.latitude,
            longitude: fix.longitude,
            speed: fix.speed,
            heading: fix.heading,
            accuracy: fix.accuracy,
            recorded_at: fix.recorded_at,
            order_id: loc.order_id,
            order_status: loc.order_status,
            eta_minutes: loc.eta_minutes,
        },
        sent_at,
    )
}

/// `driver_location` for a public tracker: the position, its time and the ETA, and on a run how
/// many drop-offs come before this customer's, nothing else.
pub(crate) fn tracker_location(
    loc: &DriverLocation,
    eta_minutes: Option<f64>,
    stops_before: Option<u32>,
    sent_at: DateTime<Utc>,
) -> Utf8Bytes {
    #[derive(Serialize)]
    struct Body {
        latitude: f64,
        longitude: f64,
        recorded_at: DateTime<Utc>,
        eta_minutes: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        stops_before: Option<u32>,
    }
    text(
        "driver_location",
        Body {
            latitude: loc.fix.latitude,
            longitude: loc.fix.longitude,
            recorded_at: loc.fix.recorded_at,
            eta_minutes,
            stops_before,
        },
        sent_at,
    )
}

/// `driver_status` for the vendor dashboard.
pub(crate) fn driver_status(
    driver_id: DriverId,
    status: DriverStatus,
    sent_at: DateTime<Utc>,
) -> Utf8Bytes {
    #[derive(Serialize)]
    struct Body {
        driver_id: DriverId,
        status: DriverStatus,
    }
    text("driver_status", Body { driver_id, status }, sent_at)
}

/// `order_created` for the vendor dashboard.
pub(crate) fn order_created(order: &Order, sent_at: DateTime<Utc>) -> Utf8Bytes {
    #[derive(Serialize)]
    struct Body<'a> {
        order: OrderView<'a>,
    }
    text(
        "order_created",
        Body {
            order: order_view(order),
        },
        sent_at,
    )
}

/// `order_updated`: an order changed without changing status (its destination was given).
pub(crate) fn order_updated(order: &Order, sent_at: DateTime<Utc>) -> Utf8Bytes {
    #[derive(Serialize)]
    struct Body<'a> {
        order: OrderView<'a>,
    }
    text(
        "order_updated",
        Body {
            order: order_view(order),
        },
        sent_at,
    )
}

/// `late_risk` for the vendor dashboard: the order whose drop-off is now expected after its
/// `deliver_before`.
pub(crate) fn late_risk(order: &Order, sent_at: DateTime<Utc>) -> Utf8Bytes {
    #[derive(Serialize)]
    struct Body<'a> {
        order_id: OrderId,
        order_number: &'a str,
        driver_id: Option<DriverId>,
        deliver_before: Option<DateTime<Utc>>,
        late_risk_at: Option<DateTime<Utc>>,
    }
    text(
        "late_risk",
        Body {
            order_id: order.id,
            order_number: &order.order_number,
            driver_id: order.driver_id,
            deliver_before: order.deliver_before,
            late_risk_at: order.late_risk_at,
        },
        sent_at,
    )
}

/// `driver_arriving`, `driver_arrived` or `driver_departed` for the vendor dashboard: the
/// driver and the order whose drop-off it is.
pub(crate) fn vendor_arrival(
    order: &Order,
    driver_id: DriverId,
    arrival: Arrival,
    eta_minutes: Option<f64>,
    sent_at: DateTime<Utc>,
) -> Utf8Bytes {
    #[derive(Serialize)]
    struct Body<'a> {
        order_id: OrderId,
        order_number: &'a str,
        driver_id: DriverId,
        eta_minutes: Option<f64>,
    }
    text(
        arrival.message_type(),
        Body {
            order_id: order.id,
            order_number: &order.order_number,
            driver_id,
            eta_minutes,
        },
        sent_at,
    )
}

/// `driver_arriving` for a public tracker: its driver is about to reach the door.
pub(crate) fn tracker_arriving(eta_minutes: Option<f64>, sent_at: DateTime<Utc>) -> Utf8Bytes {
    #[derive(Serialize)]
    struct Body {
        eta_minutes: Option<f64>,
    }
    text(
        Arrival::Arriving.message_type(),
        Body { eta_minutes },
        sent_at,
    )
}

/// `order_status` for the parties who see the whole order (its pharmacy and its driver).
pub(crate) fn order_status(
    order: &Order,
    previous: OrderStatus,
    sent_at: DateTime<Utc>,
) -> Utf8Bytes {
    #[derive(Serialize)]
    struct Body<'a> {
        order_id: OrderId,
        order_number: &'a str,
        status: OrderStatus,
        previous_status: OrderStatus,
        driver_id: Option<DriverId>,
        order: OrderView<'a>,
    }
    text(
        "order_status",
        Body {
            order_id: order.id,
            order_number: &order.order_number,
            status: order.status,
            previous_status: previous,
            driver_id: order.driver_id,
            order: order_view(order),
        },
        sent_at,
    )
}

/// `order_status` for a public tracker: the status and the timeline, as the tracking view
/// shows them; after a failed attempt only that it failed and will be rescheduled, never why.
pub(crate) fn tracker_order_status(order: &Order, sent_at: DateTime<Utc>) -> Utf8Bytes {
    #[derive(Serialize)]
    struct Body {
        status: OrderStatus,
        attempt: u32,
        attempt_failed: bool,
        accepted_at: Option<DateTime<Utc>>,
        picked_up_at: Option<DateTime<Utc>>,
        out_for_delivery_at: Option<DateTime<Utc>>,
        delivered_at: Option<DateTime<Utc>>,
        cancelled_at: Option<DateTime<Utc>>,
        timeline: Vec<TimelineEntry>,
    }
    text(
        "order_status",
        Body {
            status: order.status,
            attempt: order.attempt,
            attempt_failed: medex_core::tracking::attempt_failed(order.status),
            accepted_at: order.accepted_at,
            picked_up_at: order.picked_up_at,
            out_for_delivery_at: order.out_for_delivery_at,
            delivered_at: order.delivered_at,
            cancelled_at: order.cancelled_at,
            timeline: order
                .status_history
                .iter()
                .map(|c| TimelineEntry {
                    status: c.status,
                    at: c.at,
                })
                .collect(),
        },
        sent_at,
    )
}

/// `assignment` for the driver an order was assigned to.
pub(crate) fn assignment(order: &Order, sent_at: DateTime<Utc>) -> Utf8Bytes {
    #[derive(Serialize)]
    struct Body<'a> {
        order_id: OrderId,
        order: OrderView<'a>,
    }
    text(
        "assignment",
        Body {
            order_id: order.id,
            order: order_view(order),
        },
        sent_at,
    )
}

/// `unassigned` for the driver relieved of an order by a re-assignment.
pub(crate) fn unassigned(order: &Order, sent_at: DateTime<Utc>) -> Utf8Bytes {
    #[derive(Serialize)]
    struct Body<'a> {
        order_id: OrderId,
        order_number: &'a str,
    }
    text(
        "unassigned",
        Body {
            order_id: order.id,
            order_number: &order.order_number,
        },
        sent_at,
    )
}

/// `initial_state` for the vendor dashboard.
pub(crate) fn vendor_initial_state(
    vendor_id: VendorId,
    fleet: &LiveFleet,
    sent_at: DateTime<Utc>,
) -> Utf8Bytes {
    #[derive(Serialize)]
    struct Body<'a> {
        vendor_id: VendorId,
        drivers: Vec<DriverView<'a>>,
        active_orders: Vec<OrderView<'a>>,
    }
    text(
        "initial_state",
        Body {
            vendor_id,
            drivers: fleet.drivers.iter().map(DriverView::new).collect(),
            active_orders: fleet.active_orders.iter().map(order_view).collect(),
        },
        sent_at,
    )
}

/// `initial_state` for a public tracker: the tracking view (as `GET /api/tracking/{token}`),
/// with the trail.
pub(crate) fn tracker_initial_state(view: &TrackingView, sent_at: DateTime<Utc>) -> Utf8Bytes {
    text("initial_state", view, sent_at)
}

/// `connected` for a driver: who it is, its availability and the order it is on, if any.
pub(crate) fn connected(
    driver: &Driver,
    active_order: Option<&Order>,
    min_fix_interval_ms: u64,
    sent_at: DateTime<Utc>,
) -> Utf8Bytes {
    #[derive(Serialize)]
    struct Body<'a> {
        driver_id: DriverId,
        vendor_id: VendorId,
        status: DriverStatus,
        active_order: Option<OrderView<'a>>,
        min_fix_interval_ms: u64,
    }
    text(
        "connected",
        Body {
            driver_id: driver.id,
            vendor_id: driver.vendor_id,
            status: driver.status,
            active_order: active_order.map(order_view),
            min_fix_interval_ms,
        },
        sent_at,
    )
}

/// `pong`, the answer to an application-level `ping`.
pub(crate) fn pong(sent_at: DateTime<Utc>) -> Utf8Bytes {
    text("pong", Empty {}, sent_at)
}

#[derive(Serialize)]
struct Empty {}

/// One invalid field, as in the HTTP API's error body.
#[derive(Debug, Serialize)]
pub(crate) struct FieldProblem {
    pub(crate) field: String,
    pub(crate) message: String,
}

/// `error`: what was wrong with the client's last message. The connection stays open.
pub(crate) fn error(
    code: &str,
    detail: &str,
    errors: Vec<FieldProblem>,
    sent_at: DateTime<Utc>,
) -> Utf8Bytes {
    #[derive(Serialize)]
    struct Body<'a> {
        code: &'a str,
        detail: &'a str,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        errors: Vec<FieldProblem>,
    }
    text(
        "error",
        Body {
            code,
            detail,
            errors,
        },
        sent_at,
    )
}

/// The JSON body of a refused handshake, as the HTTP API's errors.
pub(crate) fn refusal_body(code: &str, detail: &str) -> String {
    serde_json::json!({ "detail": detail, "code": code }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_parse_or_explain() {
        let check = |raw: &str, expect: Result<ClientMessage, ()>| {
            assert_eq!(ClientMessage::parse(raw).map_err(drop), expect, "{raw}");
        };
        check(
            r#"{"type":"location","latitude":52.5,"longitude":13.4}"#,
            Ok(ClientMessage::Location(WireFix {
                latitude: 52.5,
                longitude: 13.4,
                speed: None,
                heading: None,
                accuracy: None,
                recorded_at: None,
            })),
        );
        check(
            r#"{"type":"location","latitude":1,"longitude":2,"speed":30.5,"heading":90,"accuracy":5,"recorded_at":"2026-01-01T10:00:00Z"}"#,
            Ok(ClientMessage::Location(WireFix {
                latitude: 1.0,
                longitude: 2.0,
                speed: Some(30.5),
                heading: Some(90.0),
                accuracy: Some(5.0),
                recorded_at: Some("2026-01-01T10:00:00Z".parse().unwrap()),
            })),
        );
        check(r#"{"type":"ping"}"#, Ok(ClientMessage::Ping));
        check(
            r#"{"type":"locations","fixes":[{"latitude":1,"longitude":2,"recorded_at":"2026-01-01T10:00:00Z"},{"latitude":3,"longitude":4,"speed":9}]}"#,
            Ok(ClientMessage::Locations {
                fixes: vec![
                    WireFix {
                        latitude: 1.0,
                        longitude: 2.0,
                        speed: None,
                        heading: None,
                        accuracy: None,
                        recorded_at: Some("2026-01-01T10:00:00Z".parse().unwrap()),
                    },
                    WireFix {
                        latitude: 3.0,
                        longitude: 4.0,
                        speed: Some(9.0),
                        heading: None,
                        accuracy: None,
                        recorded_at: None,
                    },
                ],
            }),
        );
        check(r#"{"type":"locations","fixes":[{"latitude":1}]}"#, Err(()));
        check(r#"{"type":"locations"}"#, Err(()));
        check(
            r#"{"type":"location","latitude":"x","longitude":2}"#,
            Err(()),
        );
        check(r#"{"type":"location","longitude":2}"#, Err(()));
        check(r#"{"type":"teleport"}"#, Err(()));
        check(r#"{"latitude":1,"longitude":2}"#, Err(()));
        check("not json", Err(()));
        check("[]", Err(()));
    }

    #[test]
    fn messages_carry_their_type_and_a_server_time() {
        let at: DateTime<Utc> = "2026-01-01T10:00:00Z".parse().unwrap();
        let json: serde_json::Value = serde_json::from_str(&pong(at)).unwrap();
        assert_eq!(json["type"], "pong");
        assert_eq!(json["sent_at"], "2026-01-01T10:00:00Z");
        let json: serde_json::Value =
            serde_json::from_str(&error("invalid_message", "bad", vec![], at)).unwrap();
        assert_eq!(json["type"], "error");
        assert_eq!(json["code"], "invalid_message");
        assert!(json.get("errors").is_none());
    }
}
