//! Dispatch (DESIGN §14): the stops of a driver's run in the order to drive them, sequenced on
//! every read from the run as it is (so a joining or leaving order or a stop done shows at
//! once), and the order a pharmacy fixes by hand, kept until the run changes.

use super::*;
use crate::events::RunStopEta;
use crate::router::{GreatCircle, Profile, Router};
use crate::sequencing::{self, Plan, RunOrder, StopKind, Window};

/// Statuses whose orders have stops ahead: a failed parcel waits for a retry or its return.
fn has_stops(status: OrderStatus) -> bool {
    matches!(
        status,
        OrderStatus::DriverAssigned | OrderStatus::PickedUp | OrderStatus::OutForDelivery
    )
}

/// A driver's run, sequenced.
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// Whose.
    pub driver_id: DriverId,
    /// The stops, distances and times.
    pub plan: Plan,
    /// Whether the drop-off order was fixed by hand.
    pub manual: bool,
}

impl MedEx {
    /// The stops of a driver's run in the order to drive them (the driver, its pharmacy,
    /// admins).
    pub async fn driver_run(&self, actor: &Actor, id: DriverId) -> Result<RunPlan> {
        let driver = self.load_driver(id).await?;
        access(actor, Permission::ViewRun(&driver)).require()?;
        self.plan_run(&driver).await
    }

    /// Fixes the drop-off order of a driver's run (its pharmacy, admins): `order_ids` must name
    /// each order of the run exactly once (422 otherwise). Kept until an order joins or leaves
    /// the run.
    pub async fn arrange_run(
        &self,
        actor: &Actor,
        id: DriverId,
        order_ids: Vec<OrderId>,
    ) -> Result<RunPlan> {
        let mut driver = self.load_driver(id).await?;
        access(actor, Permission::ArrangeRun(&driver)).require()?;
        let mut given = order_ids.clone();
        given.sort();
        let mut run = driver.run();
        run.sort();
        if given != run {
            return Err(Error::invalid(
                "order_ids",
                "must name each order of the driver's run exactly once",
            ));
        }
        driver.manual_stop_order = order_ids;
        driver.updated_at = self.clock.now().max(driver.updated_at);
        bump(&mut driver, |d| &mut d.version);
        self.commit(vec![Write::Driver(driver.clone())]).await?;
        self.plan_run(&driver).await
    }

    /// The orders of `driver`'s run that have stops ahead, in the order they joined it.
    pub(super) async fn run_members(&self, driver: &Driver) -> Result<Vec<Order>> {
        let mut orders = Vec::new();
        for id in driver.run() {
            if let Some(order) = self.store.order(id).await?
                && has_stops(order.status)
            {
                orders.push(order);
            }
        }
        Ok(orders)
    }

    /// Sequences `driver`'s run as it is now.
    pub(super) async fn plan_run(&self, driver: &Driver) -> Result<RunPlan> {
        let orders = self.run_members(driver).await?;
        let start = match driver.position() {
            Some(at) => at,
            None => self.load_vendor(driver.vendor_id).await?.location,
        };
        let run = run_of(start, self.clock.now(), &orders);
        let profile = Profile::of(driver.vehicle_type, &self.config());
        let table = self.router.table(&run.points(), profile).await;
        let manual: Vec<OrderId> = driver
            .manual_stop_order
            .iter()
            .copied()
            .filter(|id| run.orders.iter().any(|o| o.order_id == *id))
            .collect();
        let planned = if manual.is_empty() {
            sequencing::sequence(&run, &table).map(|plan| (plan, false))
        } else {
            sequencing::in_order(&run, &table, &manual).map(|plan| (plan, true))
        };
        // The router broke its contract, or a manual order fell out of step with the run:
        // sequence on great circles, whose table always fits.
        let (plan, manual) = planned.unwrap_or_else(|_| {
            let table = crate::router::GreatCircle::compute(&run.points(), profile);
            let plan = sequencing::sequence(&run, &table).unwrap_or(Plan {
                stops: Vec::new(),
                total_km: 0.0,
                total_minutes: 0.0,
                late_minutes: 0.0,
            });
            (plan, false)
        });
        Ok(RunPlan {
            driver_id: driver.id,
            plan,
            manual,
        })
    }

    /// The drop-off order a driver's fixes follow between reloads of its context: the
    /// pharmacy's, else the best on great circles from `at` (the router's answer may be a
    /// network call away; a fix must not wait for one).
    pub(super) fn fix_sequence(
        &self,
        driver: &Driver,
        orders: &[Order],
        at: Coordinates,
    ) -> Vec<OrderId> {
        let run = run_of(at, self.clock.now(), orders);
        let manual: Vec<OrderId> = driver
            .manual_stop_order
            .iter()
            .copied()
            .filter(|id| run.orders.iter().any(|o| o.order_id == *id))
            .collect();
        if manual.len() == run.orders.len() {
            return manual;
        }
        let profile = Profile::of(driver.vehicle_type, &self.config());
        let table = GreatCircle::compute(&run.points(), profile);
        sequencing::sequence(&run, &table)
            .map(|plan| plan.dropoff_order())
            .unwrap_or_default()
    }

    /// Each order of a run with its ETA from `at` through the stops before its own, along
    /// `sequence` on great circles, and the drop-offs before it.
    pub(super) fn run_etas(
        &self,
        driver: &Driver,
        orders: &[Order],
        sequence: &[OrderId],
        at: Coordinates,
    ) -> Vec<RunStopEta> {
        let run = run_of(at, self.clock.now(), orders);
        let profile = Profile::of(driver.vehicle_type, &self.config());
        let table = GreatCircle::compute(&run.points(), profile);
        let Ok(plan) = sequencing::in_order(&run, &table, sequence) else {
            return Vec::new();
        };
        stop_etas(&plan, orders)
    }

    /// Uses `router` for travel times between the stops of runs instead of great circles.
    pub fn with_router(mut self, router: Arc<dyn Router>) -> Self {
        self.router = router;
        self
    }
}

/// The run to sequence from `start` at `now`: orders without a destination have no stop.
fn run_of(start: Coordinates, now: DateTime<Utc>, orders: &[Order]) -> sequencing::Run {
    sequencing::Run {
        start,
        now,
        orders: orders
            .iter()
            .filter_map(|o| {
                Some(RunOrder {
                    order_id: o.id,
                    pickup: o.pickup_location()?,
                    dropoff: o.delivery_location()?,
                    on_board: o.status != OrderStatus::DriverAssigned,
                    window: Window {
                        after: o.deliver_after,
                        before: o.deliver_before,
                    },
                })
            })
            .collect(),
    }
}

/// Each order's drop-off in `plan`: minutes to it, and how many drop-offs come before.
pub(super) fn stop_etas(plan: &Plan, orders: &[Order]) -> Vec<RunStopEta> {
    plan.stops
        .iter()
        .filter(|s| s.kind == StopKind::Dropoff)
        .enumerate()
        .filter_map(|(before, stop)| {
            let order = orders.iter().find(|o| o.id == stop.order_id)?;
            Some(RunStopEta {
                order_id: order.id,
                tracking_token: order.tracking_token.clone(),
                order_status: order.status,
                eta_minutes: (stop.minutes * 10.0).round() / 10.0,
                stops_before: u32::try_from(before).unwrap_or(u32::MAX),
            })
        })
        .collect()
}
