//! Dispatch (DESIGN §14): the stops of a driver's run in the order to drive them, sequenced on
//! every read from the run as it is (so a joining or leaving order or a stop done shows at
//! once), the order a pharmacy fixes by hand, kept until the run changes, and which drivers
//! could take an order (suggestions, and the automatic assignment of a pharmacy that wants it).

use super::*;
use crate::events::RunStopEta;
use crate::router::{GreatCircle, Profile, Router};
use crate::sequencing::{self, Plan, RunOrder, StopKind, Window};
use crate::suggestions::{self, Added, Candidate, DriverSuggestion};

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

    /// The drivers of the order's pharmacy who could take it now (available, or busy with room
    /// left in their run; see [`suggestions::has_room`]), fewest minutes added to their run
    /// first, with the ETA and distance to its drop-off in the run with it. Its pharmacy and
    /// admins ask; the order must be one the lifecycle lets them assign now (409 otherwise).
    /// The driver already on the order is not among them.
    pub async fn driver_suggestions(
        &self,
        actor: &Actor,
        id: OrderId,
    ) -> Result<Vec<DriverSuggestion>> {
        let order = self.store.order(id).await?.ok_or(Error::NotFound)?;
        access(actor, Permission::SuggestDrivers(&order)).require()?;
        self.rule(actor, &order, Action::AssignDriver)?;
        if order.scheduled_for.is_some_and(|at| self.clock.now() < at) {
            return Err(Conflict::NotYetScheduled.into());
        }
        self.suggest(&order).await
    }

    /// The ranking behind [`MedEx::driver_suggestions`], without asking who wants it.
    async fn suggest(&self, order: &Order) -> Result<Vec<DriverSuggestion>> {
        let vendor = self.load_vendor(order.vendor_id).await?;
        let (Some(pickup), Some(dropoff)) = (order.pickup_location(), order.delivery_location())
        else {
            return Err(Conflict::LocationMissing.into());
        };
        let joining = RunOrder {
            order_id: order.id,
            pickup,
            dropoff,
            on_board: false,
            window: Window {
                after: order.deliver_after,
                before: order.deliver_before,
            },
        };
        let capacity = vendor.max_active_orders;
        let mut candidates = Vec::new();
        for driver in self.all_drivers(vendor.id).await? {
            if order.driver_id == Some(driver.id) {
                continue;
            }
            let run_size = driver.run().len();
            let mut is_active = driver.is_active;
            let mut added = None;
            if suggestions::has_room(driver.status, is_active, run_size, capacity) {
                // A driver whose account was deactivated cannot sign in to take the order.
                is_active = self
                    .store
                    .user(driver.user_id)
                    .await?
                    .is_some_and(|u| u.is_active);
                if is_active {
                    added = self.added_to_run(&driver, &vendor, &joining).await?;
                }
            }
            candidates.push(Candidate {
                driver_id: driver.id,
                full_name: driver.full_name,
                status: driver.status,
                is_active,
                run_size,
                added,
            });
        }
        Ok(suggestions::rank(candidates, capacity))
    }

    /// What `joining` adds to `driver`'s run as it is now, from its last position (the
    /// pharmacy's when it has none), the run with it and without sequenced alike.
    async fn added_to_run(
        &self,
        driver: &Driver,
        vendor: &Vendor,
        joining: &RunOrder,
    ) -> Result<Option<Added>> {
        let members = self.run_members(driver).await?;
        let start = driver.position().unwrap_or(vendor.location);
        let run = run_of(start, self.clock.now(), &members);
        let mut longer = run.clone();
        longer.orders.push(joining.clone());
        let points = longer.points();
        let profile = Profile::of(driver.vehicle_type, &self.config());
        let table = self.router.table(&points, profile).await;
        // A router that broke its contract: great circles, whose table always fits.
        let found = sequencing::insertion(&run, joining.clone(), &table).or_else(|_| {
            sequencing::insertion(
                &run,
                joining.clone(),
                &GreatCircle::compute(&points, profile),
            )
        });
        Ok(found.ok().map(|i| Added {
            minutes: i.added_minutes,
            eta_minutes: i.eta_minutes,
            km: i.km,
        }))
    }

    /// After `accepted` was committed: when its pharmacy assigns automatically, the best
    /// suggested driver gets it through the same path as an assignment by hand (the driver
    /// still accepts or declines), else the next when that one was taken meanwhile. `None`
    /// leaves the order accepted: nobody fits, someone else moved the order first, or the
    /// store failed — the acceptance stands either way.
    pub(super) async fn auto_assign(&self, actor: &Actor, accepted: &Order) -> Option<Order> {
        let vendor = self.store.vendor(accepted.vendor_id).await.ok()??;
        if !vendor.auto_assign
            || accepted
                .scheduled_for
                .is_some_and(|at| self.clock.now() < at)
        {
            return None;
        }
        for suggestion in self.suggest(accepted).await.ok()? {
            match self
                .assign(actor, accepted.clone(), suggestion.driver_id)
                .await
            {
                Ok(assigned) => return Some(assigned),
                Err(Error::Conflict(Conflict::DriverNotAvailable)) => continue,
                // The driver's record or the order's changed: only the first is a reason to
                // try the next driver.
                Err(Error::Conflict(Conflict::ConcurrentUpdate)) => {
                    match self.store.order(accepted.id).await {
                        Ok(Some(now)) if now.version == accepted.version => continue,
                        _ => return None,
                    }
                }
                Err(_) => return None,
            }
        }
        None
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
