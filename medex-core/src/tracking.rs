//! The public view of an order: what anyone holding the tracking link may see, and nothing more.
//!
//! No phone numbers, no account ids, no addresses beyond the destination the customer gave, no
//! driver surname; the driver's position and the ETA only while the order is on its way. After a
//! failed attempt it says only that: the attempt failed and will be rescheduled, never why (a
//! reason or a driver's note could say who was or was not at home).

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::SystemConfig;
use crate::model::{Driver, LocationFix, Order, OrderStatus, VehicleType, Vendor};
use crate::routing;

/// A point on the public map.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MapPoint {
    /// Degrees.
    pub latitude: f64,
    /// Degrees.
    pub longitude: f64,
}

/// One step of the public timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineEntry {
    /// The status entered.
    pub status: OrderStatus,
    /// When.
    #[serde(serialize_with = "crate::timestamp::serialize")]
    pub at: DateTime<Utc>,
}

/// The driver as the public sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PublicDriver {
    /// First name only.
    pub first_name: String,
    /// What it drives.
    pub vehicle_type: VehicleType,
    /// Last known position.
    pub location: Option<MapPoint>,
    /// When that position was recorded.
    #[serde(serialize_with = "crate::timestamp::option::serialize")]
    pub last_location_update: Option<DateTime<Utc>>,
}

/// What `GET /api/tracking/{token}` and the tracking page show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrackingView {
    /// Order number.
    pub order_number: String,
    /// Status.
    pub status: OrderStatus,
    /// Pharmacy name.
    pub vendor_name: String,
    /// When placed.
    #[serde(serialize_with = "crate::timestamp::serialize")]
    pub created_at: DateTime<Utc>,
    /// When accepted by the pharmacy.
    #[serde(serialize_with = "crate::timestamp::option::serialize")]
    pub accepted_at: Option<DateTime<Utc>>,
    /// When picked up.
    #[serde(serialize_with = "crate::timestamp::option::serialize")]
    pub picked_up_at: Option<DateTime<Utc>>,
    /// When it left for the customer.
    #[serde(serialize_with = "crate::timestamp::option::serialize")]
    pub out_for_delivery_at: Option<DateTime<Utc>>,
    /// When delivered.
    #[serde(serialize_with = "crate::timestamp::option::serialize")]
    pub delivered_at: Option<DateTime<Utc>>,
    /// When cancelled.
    #[serde(serialize_with = "crate::timestamp::option::serialize")]
    pub cancelled_at: Option<DateTime<Utc>>,
    /// Statuses with times, oldest first.
    pub timeline: Vec<TimelineEntry>,
    /// Which delivery attempt is under way, from 1.
    pub attempt: u32,
    /// The latest attempt failed and the pharmacy will reschedule the delivery (status `failed`
    /// or `returned`). Never the reason.
    pub attempt_failed: bool,
    /// The pharmacy.
    pub pickup: Option<MapPoint>,
    /// The destination.
    pub destination: Option<MapPoint>,
    /// The driver, while the order is on its way.
    pub driver: Option<PublicDriver>,
    /// Minutes to the destination, while on its way and the driver's position is known; on a
    /// run of several orders, through the stops before this one.
    pub eta_minutes: Option<f64>,
    /// On a run of several orders: how many drop-offs come before this one (a count, nothing
    /// about the other customers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stops_before: Option<u32>,
    /// Recent path of the driver, oldest first (only where asked for).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trail: Vec<MapPoint>,
}

fn point(latitude: Option<f64>, longitude: Option<f64>) -> Option<MapPoint> {
    Some(MapPoint {
        latitude: latitude?,
        longitude: longitude?,
    })
}

/// The statuses the order went through, each once per stay (history entries that record a change
/// within a status, such as a destination given, are not steps for the public).
fn timeline(order: &Order) -> Vec<TimelineEntry> {
    let mut steps: Vec<TimelineEntry> = Vec::with_capacity(order.status_history.len());
    for change in &order.status_history {
        if steps.last().is_none_or(|last| last.status != change.status) {
            steps.push(TimelineEntry {
                status: change.status,
                at: change.at,
            });
        }
    }
    steps
}

/// When a tracking link stops working: `days` after its order ended (never while it runs).
pub fn link_expires(order: &Order, days: u32) -> Option<DateTime<Utc>> {
    if !order.status.is_terminal() {
        return None;
    }
    let ended = order
        .status_history
        .last()
        .map_or(order.updated_at, |c| c.at);
    ended.checked_add_signed(chrono::Duration::days(i64::from(days)))
}

/// Whether the public is told "this attempt failed and will be rescheduled".
pub fn attempt_failed(status: OrderStatus) -> bool {
    matches!(status, OrderStatus::Failed | OrderStatus::Returned)
}

impl TrackingView {
    /// Projects an order (with its vendor, and its driver while on its way).
    pub fn new(
        order: &Order,
        vendor: Option<&Vendor>,
        driver: Option<&Driver>,
        config: &SystemConfig,
    ) -> Self {
        let on_its_way = order.status.is_on_its_way();
        let driver = driver.filter(|_| on_its_way);
        let eta_minutes = driver.and_then(|d| {
            let at = d.position()?;
            routing::eta_minutes(order, at, d.vehicle_type, config)
                .map(|m| (m * 10.0).round() / 10.0)
        });
        Self {
            order_number: order.order_number.clone(),
            status: order.status,
            vendor_name: vendor.map(|v| v.business_name.clone()).unwrap_or_default(),
            created_at: order.created_at,
            accepted_at: order.accepted_at,
            picked_up_at: order.picked_up_at,
            out_for_delivery_at: order.out_for_delivery_at,
            delivered_at: order.delivered_at,
            cancelled_at: order.cancelled_at,
            timeline: timeline(order),
            attempt: order.attempt,
            attempt_failed: attempt_failed(order.status),
            pickup: point(Some(order.pickup_latitude), Some(order.pickup_longitude)),
            // Once the order ended the link shows the outcome, not where the customer lives.
            destination: point(order.delivery_latitude, order.delivery_longitude)
                .filter(|_| !order.status.is_terminal()),
            driver: driver.map(|d| PublicDriver {
                first_name: d.first_name().to_owned(),
                vehicle_type: d.vehicle_type,
                location: point(d.current_latitude, d.current_longitude),
                last_location_update: d.last_location_update,
            }),
            eta_minutes,
            stops_before: None,
            trail: vec![],
        }
    }

    /// The ETA and place of this order in its driver's run.
    pub fn set_run_position(&mut self, eta_minutes: f64, stops_before: u32) {
        if self.driver.is_some() {
            self.eta_minutes = Some(eta_minutes);
            self.stops_before = Some(stops_before);
        }
    }

    /// Adds the driver's recent path.
    pub fn set_trail(&mut self, fixes: &[LocationFix]) {
        self.trail = fixes
            .iter()
            .map(|f| MapPoint {
                latitude: f.latitude,
                longitude: f.longitude,
            })
            .collect();
    }
}
