//! Arrivals at drop-offs (DESIGN §14), told from the fixes of the driver carrying the order.

use std::collections::HashMap;
use std::sync::Mutex;

use super::tracking::FixContext;
use super::*;
use crate::arrivals::{Approach, Arrival};

/// Each reporting driver's approach to the drop-off it heads for, kept by the instance that
/// takes its fixes. The marks on the order (`driver_arriving_at`, `driver_arrived_at`) keep each
/// event once per order across instances and restarts; an instance that takes over a driver's
/// fixes starts its approach afresh, so `arrived` may come late there, never twice.
#[derive(Debug, Default)]
pub(super) struct Approaches(Mutex<HashMap<DriverId, (OrderId, Approach)>>);

impl Approaches {
    /// What the fix at `here` newly tells about `driver`'s approach to `order`'s drop-off at
    /// `stop`; heading for another drop-off starts a new approach.
    fn observe(
        &self,
        driver: DriverId,
        order: OrderId,
        stop: Coordinates,
        fix: &LocationFix,
        eta_minutes: Option<f64>,
    ) -> Vec<Arrival> {
        let Some(here) = fix.coordinates() else {
            return Vec::new();
        };
        let mut approaches = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let approach = approaches
            .entry(driver)
            .or_insert_with(|| (order, Approach::new(stop)));
        if approach.0 != order || approach.1.stop() != stop {
            *approach = (order, Approach::new(stop));
        }
        approach.1.observe(here, fix.recorded_at, eta_minutes)
    }

    fn forget(&self, driver: DriverId) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&driver);
    }
}

/// Whether the order is on board, its drop-off ahead.
fn on_board(status: OrderStatus) -> bool {
    matches!(status, OrderStatus::PickedUp | OrderStatus::OutForDelivery)
}

/// The order whose drop-off the driver heads for, with its ETA: on a run, the one on board with
/// no other drop-off before it; otherwise the driver's order once picked up.
fn next_dropoff<'a>(
    context: &'a FixContext,
    location: &DriverLocation,
) -> Option<(&'a Order, Option<f64>)> {
    if !location.run.is_empty() {
        let next = location
            .run
            .iter()
            .find(|s| s.stops_before == 0 && on_board(s.order_status))?;
        let order = context.run.iter().find(|o| o.id == next.order_id)?;
        return Some((order, Some(next.eta_minutes)));
    }
    let order = context.order.as_ref()?;
    (on_board(order.status) && location.order_id == Some(order.id))
        .then_some((order, location.eta_minutes))
}

/// Where an order keeps the time of an arrival told once.
type Mark = fn(&mut Order) -> &mut Option<DateTime<Utc>>;

impl MedEx {
    /// Feeds the fix to the driver's approach to its next drop-off and tells what it newly
    /// shows: the pharmacy hears all three events, the customer `arriving`, webhooks
    /// `order.driver_arriving` and `order.driver_arrived`. Never fails the fix: a mark that
    /// cannot be written is not told.
    pub(super) async fn observe_arrivals(&self, context: &FixContext, location: &DriverLocation) {
        let driver = location.driver_id;
        let Some((order, eta)) = next_dropoff(context, location) else {
            self.approaches.forget(driver);
            return;
        };
        let Some(stop) = order.delivery_location() else {
            self.approaches.forget(driver);
            return;
        };
        for arrival in self
            .approaches
            .observe(driver, order.id, stop, &location.fix, eta)
        {
            let mark: Option<Mark> = match arrival {
                Arrival::Arriving => Some(|o| &mut o.driver_arriving_at),
                Arrival::Arrived => Some(|o| &mut o.driver_arrived_at),
                Arrival::Departed => None,
            };
            let told = match mark {
                Some(mark) => match self.mark_arrival(order, mark).await {
                    Some(marked) => marked,
                    None => continue,
                },
                None => order.clone(),
            };
            self.bus.publish(Event::DriverArrival {
                order: Arc::new(told),
                driver_id: driver,
                arrival,
                eta_minutes: eta.map(|m| (m * 10.0).round() / 10.0),
            });
        }
    }

    /// Sets `mark` on `order` with its webhooks in one version-guarded write, once: `None` when
    /// it is set already (by another instance, or before a restart), the order is no longer on
    /// board with the same driver, or the write keeps failing. A write lost to a concurrent
    /// change of the order is tried once more on the order as it now is.
    async fn mark_arrival(&self, order: &Order, mark: Mark) -> Option<Order> {
        let mut current = order.clone();
        for attempt in 0..2 {
            if mark(&mut current).is_some()
                || !on_board(current.status)
                || current.driver_id != order.driver_id
            {
                return None;
            }
            let now = self.clock.now();
            let mut next = current.clone();
            *mark(&mut next) = Some(now);
            next.updated_at = now.max(current.updated_at);
            bump(&mut next, |o| &mut o.version);
            let mut writes = vec![Write::Order(next.clone())];
            writes.extend(self.outbox(Some(&current), &next).await.ok()?);
            match self.commit(writes).await {
                Ok(()) => return Some(next),
                Err(_) if attempt == 0 => current = self.store.order(order.id).await.ok()??,
                Err(_) => return None,
            }
        }
        None
    }
}
