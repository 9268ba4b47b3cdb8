//! Live tracking: drivers' positions in, the public view of an order out.

use super::*;

/// A position report from a driver's device.
#[derive(Debug, Clone, Copy, Default)]
pub struct FixInput {
    /// Degrees.
    pub latitude: f64,
    /// Degrees.
    pub longitude: f64,
    /// km/h, 0 to 400.
    pub speed: Option<f64>,
    /// Degrees, 0 to 360.
    pub heading: Option<f64>,
    /// Metres, 0 to 100 000.
    pub accuracy: Option<f64>,
    /// When measured; the server's time if absent or implausible.
    pub recorded_at: Option<DateTime<Utc>>,
}

/// Most fixes in one [`MedEx::record_locations`] batch.
pub const MAX_FIX_BATCH: usize = 100;

impl FixInput {
    fn fix(&self, driver_id: DriverId, recorded_at: DateTime<Utc>) -> LocationFix {
        LocationFix {
            driver_id,
            latitude: self.latitude,
            longitude: self.longitude,
            speed: self.speed,
            heading: self.heading,
            accuracy: self.accuracy,
            recorded_at,
        }
    }
}

/// Checks one fix's values, its fields named `{prefix}latitude` and so on.
fn check_fix(errors: &mut FieldErrors, prefix: &str, input: &FixInput) {
    errors.coordinates(prefix, input.latitude, input.longitude);
    let in_range =
        |v: Option<f64>, max: f64| v.is_none_or(|v| v.is_finite() && (0.0..=max).contains(&v));
    if !in_range(input.speed, 400.0) {
        errors.push(format!("{prefix}speed"), "must be between 0 and 400 km/h");
    }
    if !in_range(input.heading, 360.0) {
        errors.push(
            format!("{prefix}heading"),
            "must be between 0 and 360 degrees",
        );
    }
    if !in_range(input.accuracy, 100_000.0) {
        errors.push(
            format!("{prefix}accuracy"),
            "must be between 0 and 100000 metres",
        );
    }
}

/// When each driver's last fix was accepted, to hold its fixes to a minimum interval.
#[derive(Debug, Default)]
pub(super) struct FixPace {
    interval: Duration,
    last: std::sync::Mutex<std::collections::HashMap<DriverId, DateTime<Utc>>>,
}

impl FixPace {
    pub(super) fn new(interval: std::time::Duration) -> Self {
        Self {
            interval: Duration::from_std(interval).unwrap_or(Duration::MAX),
            last: Default::default(),
        }
    }

    /// Takes a fix of `driver` at `now`, or says how long until one is taken.
    fn admit(&self, driver: DriverId, now: DateTime<Utc>) -> Result<()> {
        if self.interval.is_zero() {
            return Ok(());
        }
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(previous) = last.get(&driver)
            && now < *previous + self.interval
        {
            let wait = (*previous + self.interval - now).num_milliseconds().max(1);
            return Err(Error::RateLimited {
                retry_after_ms: u64::try_from(wait).unwrap_or(u64::MAX),
            });
        }
        last.insert(driver, now);
        Ok(())
    }
}

/// What a driver's fixes need from the store: its record and the active order it is on.
#[derive(Debug)]
pub(super) struct FixContext {
    pub(super) driver: Driver,
    pub(super) order: Option<Order>,
    /// On a run of several orders with stops ahead: those orders, and the drop-off order its
    /// fixes' ETAs follow until the context is read again.
    pub(super) run: Vec<Order>,
    sequence: Vec<OrderId>,
}

/// The drivers' [`FixContext`]s, so that a fix reads nothing from the store. A commit that
/// writes a driver, or an order with a driver, forgets that driver's context (see
/// [`MedEx::commit`](super::MedEx)); a context older than the map's age limit is read again, for
/// changes made by other instances.
pub(super) type FixContexts = Remembered<DriverId, FixContext>;

/// The drivers whose fix context `writes` may change.
pub(super) fn drivers_touched(writes: &[Write]) -> Vec<DriverId> {
    writes
        .iter()
        .filter_map(|w| match w {
            Write::Driver(d) => Some(d.id),
            Write::Order(o) => o.driver_id,
            Write::User(_)
            | Write::Vendor(_)
            | Write::ApiKey(_)
            | Write::Webhook(_)
            | Write::Delivery(_)
            | Write::Idempotency(_) => None,
        })
        .collect()
}

/// The orders whose public view a commit may change.
#[derive(Debug)]
pub(super) enum ViewsTouched {
    /// These orders (written, or their driver was).
    Orders(Vec<OrderId>),
    /// Every order: a pharmacy's name is in each of its orders' views.
    All,
}

/// The orders whose public view `writes` may change.
pub(super) fn views_touched(writes: &[Write]) -> ViewsTouched {
    let mut orders = Vec::new();
    for write in writes {
        match write {
            Write::Order(o) => orders.push(o.id),
            // Joining or leaving a run changes every view of it.
            Write::Driver(d) => orders.extend(d.run()),
            Write::Vendor(_) => return ViewsTouched::All,
            Write::User(_)
            | Write::ApiKey(_)
            | Write::Webhook(_)
            | Write::Delivery(_)
            | Write::Idempotency(_) => {}
        }
    }
    ViewsTouched::Orders(orders)
}

/// A public tracking view as its JSON answer, and until when the link works.
#[derive(Debug)]
pub(super) struct TrackedView {
    json: bytes::Bytes,
    link_expires: Option<DateTime<Utc>>,
}

/// Public tracking views, the most-read answer of a busy fleet, kept encoded: a read that finds
/// its view reads nothing from the store and encodes nothing. A commit, a fix or a change of
/// configuration that may change a view forgets it; views are read again after the age limit,
/// for changes made by other instances. Live trackers read their first state fresh instead
/// (see [`MedEx::tracking_view`]): what they see must not come before the events they follow.
#[derive(Debug)]
pub(super) struct TrackingViews {
    /// The order each token names. A token never names another order, so this is kept for a
    /// day; a deleted order answers as unknown when its view is made.
    orders: Remembered<Box<str>, OrderId>,
    views: Remembered<OrderId, TrackedView>,
}

impl TrackingViews {
    pub(super) fn new(max_age: Duration) -> Self {
        Self {
            orders: Remembered::new(Duration::days(1), 65_536),
            views: Remembered::new(max_age, 16_384),
        }
    }

    pub(super) fn forget(&self, touched: &ViewsTouched) {
        match touched {
            ViewsTouched::Orders(orders) => orders.iter().for_each(|o| self.views.forget(o)),
            ViewsTouched::All => self.views.forget_all(),
        }
    }

    pub(super) fn forget_all(&self) {
        self.views.forget_all();
    }
}

impl MedEx {
    /// The driver's context: remembered, or read from the store (driver, then its active order).
    async fn fix_context(&self, driver_id: DriverId) -> Result<Arc<FixContext>> {
        let making = match self.fix_contexts.get(&driver_id, self.clock.now()) {
            Ok(known) => return Ok(known),
            Err(making) => making,
        };
        let driver = self.load_driver(driver_id).await?;
        let order = match driver.active_order_id {
            Some(id) => self.store.order(id).await?.filter(is_active_order),
            None => None,
        };
        let (run, sequence) = if driver.run().len() > 1 {
            let run = self.run_members(&driver).await?;
            let at = match driver.position() {
                Some(at) => Some(at),
                None => self
                    .store
                    .vendor(driver.vendor_id)
                    .await?
                    .map(|v| v.location),
            };
            match at {
                Some(at) if run.len() > 1 => {
                    let sequence = self.fix_sequence(&driver, &run, at);
                    (run, sequence)
                }
                _ => (Vec::new(), Vec::new()),
            }
        } else {
            (Vec::new(), Vec::new())
        };
        let context = Arc::new(FixContext {
            driver,
            order,
            run,
            sequence,
        });
        self.fix_contexts.keep(driver_id, context.clone(), making);
        Ok(context)
    }

    /// Records a position from the driver's device: validates it, queues it for the trail,
    /// makes it the driver's current position, computes the ETA of the order the driver is on,
    /// and publishes it. The driver and its order come from memory when nothing changed them
    /// since the last fix.
    pub async fn record_location(
        &self,
        actor: &Actor,
        driver_id: DriverId,
        input: FixInput,
    ) -> Result<Arc<DriverLocation>> {
        let context = self.fix_context(driver_id).await?;
        let driver = &context.driver;
        access(actor, Permission::ReportLocation(driver)).require()?;
        let mut errors = FieldErrors::new();
        check_fix(&mut errors, "", &input);
        errors.finish()?;
        if !driver.is_active {
            return Err(Error::Forbidden);
        }
        let now = self.clock.now();
        self.fix_pace.admit(driver_id, now)?;
        // Devices' clocks drift: a time from the future or from long ago is replaced by ours.
        let recorded_at = input
            .recorded_at
            .filter(|t| *t <= now + Duration::seconds(30) && *t >= now - Duration::hours(1))
            .unwrap_or(now);
        let fix = input.fix(driver_id, recorded_at);
        // Queued: the trail is written in batches behind the fan-out (crate::fix_queue).
        self.store.append_fixes(&[fix]).await?;
        let location = self.located(&context, fix);
        self.forget_view_of(&context);
        self.bus.publish(Event::DriverLocation(location.clone()));
        self.raise_late_risks(&context, &location).await;
        self.observe_arrivals(&context, &location).await;
        Ok(location)
    }

    /// Records fixes a driver's device kept while it was offline, as one report (one step of
    /// the pace): at most [`MAX_FIX_BATCH`], each with its `recorded_at` within the last
    /// 24 hours (30 s ahead of the server's clock at most). They join the trail in time order;
    /// the newest becomes the driver's position and is published, unless the driver's position
    /// is newer already (an old fix never moves it back; subscribers see only the newest).
    /// Returns the newest fix of the batch as a location.
    pub async fn record_locations(
        &self,
        actor: &Actor,
        driver_id: DriverId,
        inputs: &[FixInput],
    ) -> Result<Arc<DriverLocation>> {
        let context = self.fix_context(driver_id).await?;
        let driver = &context.driver;
        access(actor, Permission::ReportLocation(driver)).require()?;
        let now = self.clock.now();
        let mut errors = FieldErrors::new();
        if inputs.is_empty() || inputs.len() > MAX_FIX_BATCH {
            errors.push("fixes", format!("must hold 1 to {MAX_FIX_BATCH} fixes"));
        }
        for (i, input) in inputs.iter().enumerate().take(MAX_FIX_BATCH) {
            let prefix = format!("fixes[{i}].");
            check_fix(&mut errors, &prefix, input);
            match input.recorded_at {
                None => errors.push(format!("{prefix}recorded_at"), "is required in a batch"),
                Some(t) if t > now + Duration::seconds(30) => {
                    errors.push(format!("{prefix}recorded_at"), "must not be in the future")
                }
                Some(t) if t < now - Duration::hours(24) => errors.push(
                    format!("{prefix}recorded_at"),
                    "must be within the last 24 hours",
                ),
                Some(_) => {}
            }
        }
        errors.finish()?;
        if !driver.is_active {
            return Err(Error::Forbidden);
        }
        self.fix_pace.admit(driver_id, now)?;
        let mut fixes: Vec<LocationFix> = inputs
            .iter()
            .map(|input| input.fix(driver_id, input.recorded_at.unwrap_or(now)))
            .collect();
        fixes.sort_by_key(|f| f.recorded_at);
        let newest = *fixes.last().ok_or(Error::NotFound)?;
        // Read before the append: is the batch's newest fix newer than the position now?
        let current = self.store.driver(driver_id).await?;
        let moves = current
            .and_then(|d| d.last_location_update)
            .is_none_or(|at| at <= newest.recorded_at);
        self.store.append_fixes(&fixes).await?;
        let location = self.located(&context, newest);
        if moves {
            self.forget_view_of(&context);
            self.bus.publish(Event::DriverLocation(location.clone()));
            self.raise_late_risks(&context, &location).await;
            self.observe_arrivals(&context, &location).await;
        }
        Ok(location)
    }

    /// A new position moves the driver on the public views of the orders it carries.
    fn forget_view_of(&self, context: &FixContext) {
        for order in context.order.iter().chain(&context.run) {
            self.tracking_views.views.forget(&order.id);
        }
    }

    /// Marks each order of the fix whose drop-off is now expected after its `deliver_before`,
    /// once: the mark is a version-guarded write of the order (with its `order.late_risk`
    /// webhooks), so of racing fixes or instances one raises it, and `late_risk` goes to the
    /// pharmacy. The fix itself is already taken: a failed mark is tried again by the next fix.
    async fn raise_late_risks(&self, context: &FixContext, location: &DriverLocation) {
        let candidates: Vec<(&Order, f64)> = if location.run.is_empty() {
            context.order.iter().zip(location.eta_minutes).collect()
        } else {
            location
                .run
                .iter()
                .filter_map(|s| {
                    let order = context.run.iter().find(|o| o.id == s.order_id)?;
                    Some((order, s.eta_minutes))
                })
                .collect()
        };
        let now = self.clock.now();
        for (order, eta) in candidates {
            let Some(by) = order.deliver_before else {
                continue;
            };
            let expected = now + Duration::milliseconds((eta * 60_000.0) as i64);
            if order.late_risk_at.is_some() || !order.status.is_on_its_way() || expected <= by {
                continue;
            }
            let mut next = order.clone();
            next.late_risk_at = Some(now);
            next.updated_at = now.max(order.updated_at);
            bump(&mut next, |o| &mut o.version);
            let mut writes = vec![Write::Order(next.clone())];
            match self.outbox(Some(order), &next).await {
                Ok(deliveries) => writes.extend(deliveries),
                Err(_) => continue,
            }
            if self.commit(writes).await.is_ok() {
                self.bus.publish(Event::LateRisk(Arc::new(next)));
            }
        }
    }

    /// The location event of `fix`, with the ETA of the driver's order; on a run, each order's
    /// ETA through the stops before its own.
    fn located(&self, context: &FixContext, fix: LocationFix) -> Arc<DriverLocation> {
        let driver = &context.driver;
        let order = &context.order;
        let run = match fix.coordinates() {
            Some(here) if !context.run.is_empty() => {
                self.run_etas(driver, &context.run, &context.sequence, here)
            }
            _ => Vec::new(),
        };
        let eta = match (order, fix.coordinates()) {
            (Some(order), _) if run.iter().any(|s| s.order_id == order.id) => run
                .iter()
                .find(|s| s.order_id == order.id)
                .map(|s| s.eta_minutes),
            (Some(order), Some(here)) => {
                routing::eta_minutes(order, here, driver.vehicle_type, &self.config())
            }
            _ => None,
        };
        Arc::new(DriverLocation {
            driver_id: driver.id,
            vendor_id: driver.vendor_id,
            fix,
            order_id: order.as_ref().map(|o| o.id),
            tracking_token: order.as_ref().map(|o| o.tracking_token.clone()),
            order_status: order.as_ref().map(|o| o.status),
            eta_minutes: eta.map(|m| (m * 10.0).round() / 10.0),
            run,
        })
    }

    /// The public view of an order by its tracking token, encoded as JSON: what
    /// `GET /api/tracking/{token}` answers. Kept between reads (see [`TrackingViews`]).
    pub async fn tracking_json(&self, token: &str) -> Result<bytes::Bytes> {
        if !plausible_token(token) {
            return Err(Error::NotFound);
        }
        let now = self.clock.now();
        let views = &self.tracking_views;
        let order_id = match views.orders.get(token, now) {
            Ok(id) => Some(*id),
            Err(_) => None,
        };
        if let Some(id) = order_id
            && let Ok(kept) = views.views.get(&id, now)
        {
            return match kept.link_expires {
                Some(at) if now >= at => Err(Error::NotFound),
                _ => Ok(kept.json.clone()),
            };
        }
        // Not kept: made now, with the ticket taken before anything is read.
        let making = match order_id {
            Some(id) => views.views.get(&id, now).err(),
            None => None,
        };
        let order = match order_id {
            Some(id) => self.store.order(id).await?,
            None => self.store.order_by_tracking_token(token).await?,
        }
        .ok_or(Error::NotFound)?;
        let (view, on_a_run) = self.view_of(&order, now).await?;
        let kept = Arc::new(TrackedView {
            // Plain fields and strings only: encoding cannot fail.
            json: bytes::Bytes::from(serde_json::to_vec(&view).expect("a tracking view encodes")),
            link_expires: crate::tracking::link_expires(&order, self.config().tracking_link_days),
        });
        match making {
            // A view on a run depends on the run's other orders, whose changes do not name this
            // one: it is made afresh on every read.
            Some(_) if on_a_run => {}
            Some(making) => views.views.keep(order.id, kept.clone(), making),
            None => {
                if let Err(making) = views.orders.get(token, now) {
                    views.orders.keep(token.into(), Arc::new(order.id), making);
                }
            }
        }
        Ok(kept.json.clone())
    }

    /// The public view of an order by its tracking token. `with_trail` adds the driver's recent
    /// path while the order is on its way (for maps; costs a trail read).
    pub async fn tracking_view(&self, token: &str, with_trail: bool) -> Result<TrackingView> {
        if !plausible_token(token) {
            return Err(Error::NotFound);
        }
        let order = self
            .store
            .order_by_tracking_token(token)
            .await?
            .ok_or(Error::NotFound)?;
        let (mut view, _) = self.view_of(&order, self.clock.now()).await?;
        let driver = view.driver.is_some().then_some(order.driver_id).flatten();
        if with_trail
            && let (Some(driver), Some(at)) = (driver, order.entered(OrderStatus::DriverAssigned))
        {
            let now = self.clock.now();
            let from = at.max(now - Duration::hours(2));
            let trail = self
                .store
                .trail(TrailQuery::new(
                    driver,
                    from,
                    now + Duration::seconds(1),
                    2000,
                ))
                .await?;
            view.set_trail(&trail);
        }
        Ok(view)
    }

    /// The public view of `order` (without trail), or not found when its link has expired; and
    /// whether its driver is on a run of several orders (the view then depends on the others).
    async fn view_of(&self, order: &Order, now: DateTime<Utc>) -> Result<(TrackingView, bool)> {
        let config = self.config();
        // An old link of a finished order answers as an unknown one.
        if crate::tracking::link_expires(order, config.tracking_link_days)
            .is_some_and(|at| now >= at)
        {
            return Err(Error::NotFound);
        }
        let vendor = self.store.vendor(order.vendor_id).await?;
        let driver = match order.driver_id {
            Some(id) if order.status.is_on_its_way() => self.store.driver(id).await?,
            _ => None,
        };
        let mut view = TrackingView::new(order, vendor.as_ref(), driver.as_ref(), &config);
        let on_a_run = driver.as_ref().is_some_and(|d| d.run().len() > 1);
        // On a run of several orders the ETA runs through the stops before this customer's.
        if let Some(driver) = driver.as_ref().filter(|_| on_a_run)
            && driver.position().is_some()
        {
            let plan = self.plan_run(driver).await?;
            let members = self.run_members(driver).await?;
            if let Some(stop) = super::dispatch::stop_etas(&plan.plan, &members)
                .into_iter()
                .find(|s| s.order_id == order.id)
            {
                view.set_run_position(stop.eta_minutes, stop.stops_before);
            }
        }
        Ok((view, on_a_run))
    }
}

/// Tokens are 22 characters; anything else cannot match and is not worth a lookup.
fn plausible_token(token: &str) -> bool {
    !token.is_empty() && token.len() <= 64
}
