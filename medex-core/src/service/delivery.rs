//! Delivery: every lifecycle move (accept, assign, pick up, deliver, fail, return, cancel …) with
//! its effects on drivers, the handover code, and proofs of delivery.

use super::*;
pub use crate::model::ProofKind;

/// The driver's answer to an assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignmentResponse {
    /// "I'm on it."
    Accept,
    /// "I can't": the order goes back to the pharmacy.
    Decline,
}

/// A status change as a client asks for it (`PATCH /orders/{id}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The status wanted.
    pub status: OrderStatus,
    /// Why; for `failed`, one of the [`FailureReason`] codes.
    pub reason: Option<String>,
    /// The driver's note on a failed attempt; required with reason `other`.
    pub note: Option<String>,
    /// The recipient's code, for `delivered` when the order requires it.
    pub handover_code: Option<String>,
}

impl Transition {
    /// To `status`, with nothing else said.
    pub fn to(status: OrderStatus) -> Self {
        Self {
            status,
            reason: None,
            note: None,
            handover_code: None,
        }
    }
}

/// The most proofs one order keeps: uploads are kept for good, so they are bounded.
pub const MAX_PROOFS: usize = 20;

/// How often a wrong handover code is re-counted after losing a race with another write of the
/// order, before the caller is told to retry: more than the tries that can race meaningfully.
const HANDOVER_COUNT_RETRIES: usize = 64;

/// How often a move is decided again when only its driver's record changed meanwhile (another
/// order of the same run moved at the same moment).
const DRIVER_RETRIES: usize = 8;

/// What a move asks for: an action, or a status by name (resolved against the order's status).
#[derive(Debug, Clone, Copy)]
pub(super) enum Target {
    Action(Action),
    Status(OrderStatus),
}

/// The details of a move, read once before the order is loaded.
#[derive(Debug, Clone, Default)]
pub(super) struct Details {
    reason: Option<String>,
    note: Option<String>,
    failure: Option<FailureReason>,
    handover_code: Option<HandoverCode>,
}

impl Details {
    /// A free-text reason (a rejection's, a cancellation's): at most 500 characters, no
    /// control characters.
    pub(super) fn reason(reason: Option<String>) -> Result<Self> {
        let mut errors = FieldErrors::new();
        let reason = errors.optional_text("reason", reason.as_deref(), 500);
        errors.finish()?;
        Ok(Self {
            reason,
            ..Self::default()
        })
    }

    /// Reads a client's status change: a failed attempt needs a known reason code (and a note
    /// for `other`); a handover code must be six digits.
    fn read(t: Transition) -> Result<Self> {
        let mut errors = FieldErrors::new();
        let note = errors.optional_text("note", t.note.as_deref(), 500);
        // A failed attempt's reason is a code, read below; any other is free text.
        let free_reason = if t.status == OrderStatus::Failed {
            None
        } else {
            errors.optional_text("reason", t.reason.as_deref(), 500)
        };
        let mut failure = None;
        if t.status == OrderStatus::Failed {
            match t.reason.as_deref().map(str::trim).filter(|r| !r.is_empty()) {
                None => errors.push(
                    "reason",
                    format!("is required: {}", ValueError::FailureReason),
                ),
                Some(code) => match code.parse::<FailureReason>() {
                    Ok(reason) => failure = Some(reason),
                    Err(e) => errors.push("reason", e.to_string()),
                },
            }
            if failure == Some(FailureReason::Other) && note.is_none() {
                errors.push("note", "is required with reason other");
            }
        }
        let handover_code = match t.handover_code.as_deref() {
            None => None,
            Some(raw) => match HandoverCode::parse(raw.trim()) {
                Ok(code) => Some(code),
                Err(e) => {
                    errors.push("handover_code", e.to_string());
                    None
                }
            },
        };
        errors.finish()?;
        Ok(Self {
            reason: failure.map(|r| r.as_str().to_owned()).or(free_reason),
            note,
            failure,
            handover_code,
        })
    }
}

fn not_by_name() -> Error {
    Error::invalid(
        "status",
        "cannot be set directly; use assign-driver for driver_assigned",
    )
}

impl MedEx {
    /// Moves an order to `status` as the lifecycle allows (`PATCH /orders/{id}`).
    pub async fn change_status(
        &self,
        actor: &Actor,
        id: OrderId,
        status: OrderStatus,
        reason: Option<String>,
    ) -> Result<Order> {
        self.transition(
            actor,
            id,
            Transition {
                reason,
                ..Transition::to(status)
            },
        )
        .await
    }

    /// Moves an order as a client asks (`PATCH /orders/{id}`): the status wanted, with the reason
    /// and note of a failed attempt or the handover code of a delivery.
    pub async fn transition(&self, actor: &Actor, id: OrderId, t: Transition) -> Result<Order> {
        // No row leads there from anywhere: say so before looking the order up.
        if Action::toward(OrderStatus::Pending, t.status).is_none() {
            return Err(not_by_name());
        }
        let target = Target::Status(t.status);
        let details = Details::read(t)?;
        self.perform(actor, id, target, details).await
    }

    /// Cancels an order (`DELETE /orders/{id}`).
    pub async fn cancel_order(
        &self,
        actor: &Actor,
        id: OrderId,
        reason: Option<String>,
    ) -> Result<Order> {
        self.perform(
            actor,
            id,
            Target::Action(Action::Cancel),
            Details::reason(reason)?,
        )
        .await
    }

    /// Assigns a driver of the pharmacy's fleet, or re-assigns before pickup.
    pub async fn assign_driver(
        &self,
        actor: &Actor,
        id: OrderId,
        driver_id: DriverId,
    ) -> Result<Order> {
        let mut retries = 0;
        loop {
            let order = self.load_order(actor, id).await?;
            let version = order.version;
            match self.assign(actor, order, driver_id).await {
                // The driver's record changed, not the order (one of its stops was done, or
                // another order joined its run): decide again on the driver as it is now.
                Err(Error::Conflict(Conflict::ConcurrentUpdate))
                    if retries < DRIVER_RETRIES
                        && self
                            .store
                            .order(id)
                            .await?
                            .is_some_and(|o| o.version == version) =>
                {
                    retries += 1;
                }
                answer => return answer,
            }
        }
    }

    /// Assigns `driver_id` to `order` as read (the commit fails as a concurrent update when the
    /// order changed since).
    pub(super) async fn assign(
        &self,
        actor: &Actor,
        order: Order,
        driver_id: DriverId,
    ) -> Result<Order> {
        let rule = self.rule(actor, &order, Action::AssignDriver)?;
        let driver = self
            .store
            .driver(driver_id)
            .await?
            .filter(|d| d.vendor_id == order.vendor_id);
        let Some(mut driver) = driver else {
            return Err(Error::invalid(
                "driver_id",
                "no such driver in this pharmacy's fleet",
            ));
        };
        if order.driver_id == Some(driver_id) {
            return Ok(order); // Assigning the same driver again changes nothing.
        }
        if order.scheduled_for.is_some_and(|at| self.clock.now() < at) {
            return Err(Conflict::NotYetScheduled.into());
        }
        // A free driver starts a run; a busy one takes another order of its pharmacy while its
        // run has room. Two assignments racing for the last place both write this driver record
        // from the version read here: the store lets one commit through.
        let vendor = self.load_vendor(order.vendor_id).await?;
        let has_room = crate::suggestions::has_room(
            driver.status,
            driver.is_active,
            driver.run().len(),
            vendor.max_active_orders,
        );
        if !has_room {
            return Err(Conflict::DriverNotAvailable.into());
        }
        // A driver whose account was deactivated cannot sign in to take the order.
        let signed_in = self.store.user(driver.user_id).await?;
        if !signed_in.is_some_and(|u| u.is_active) {
            return Err(Conflict::DriverNotAvailable.into());
        }
        let now = self.clock.now();
        let mut next = lifecycle::apply(
            &order,
            rule,
            Move::by(self.signature(actor)),
            now,
            &self.custody,
        )?;
        next.driver_id = Some(driver_id);
        bump(&mut next, |o| &mut o.version);
        driver.join_run(order.id);
        driver.updated_at = now;
        bump(&mut driver, |d| &mut d.version);
        let mut writes = vec![Write::Order(next.clone()), Write::Driver(driver.clone())];
        let previous = match order.driver_id {
            Some(old) => Some(self.release(old, order.id, now).await?),
            None => None,
        };
        writes.extend(previous.iter().cloned().map(Write::Driver));
        writes.extend(self.outbox(Some(&order), &next).await?);
        self.commit(writes).await?;
        let next_arc = Arc::new(next.clone());
        self.bus.publish(Event::OrderStatusChanged {
            order: next_arc.clone(),
            previous: order.status,
        });
        self.bus.publish(Event::DriverAssigned {
            order: next_arc,
            previous_driver: order.driver_id,
        });
        self.publish_driver_status(&driver);
        if let Some(previous) = &previous {
            self.publish_driver_status(previous);
        }
        Ok(next)
    }

    /// The assigned driver accepts (acknowledges) or declines its assignment.
    pub async fn respond_to_assignment(
        &self,
        actor: &Actor,
        id: OrderId,
        response: AssignmentResponse,
        reason: Option<String>,
    ) -> Result<Order> {
        match response {
            AssignmentResponse::Decline => {
                self.perform(
                    actor,
                    id,
                    Target::Action(Action::DeclineAssignment),
                    Details::reason(reason)?,
                )
                .await
            }
            AssignmentResponse::Accept => {
                let order = self.load_order(actor, id).await?;
                if !parties(actor, &order).contains(Party::AssignedDriver) {
                    return Err(if order.status == OrderStatus::DriverAssigned {
                        Error::Forbidden
                    } else {
                        Conflict::Transition(lifecycle::TransitionError::NotAllowed {
                            from: order.status,
                            action: Action::PickUp,
                        })
                        .into()
                    });
                }
                if order.status != OrderStatus::DriverAssigned || order.driver_accepted_at.is_some()
                {
                    return Ok(order);
                }
                let mut next = order;
                next.driver_accepted_at = Some(self.clock.now().max(next.updated_at));
                next.updated_at = self.clock.now().max(next.updated_at);
                bump(&mut next, |o| &mut o.version);
                self.commit(vec![Write::Order(next.clone())]).await?;
                Ok(next)
            }
        }
    }

    /// Records an uploaded proof on an order on its way: kept with its digest next to every
    /// earlier one (nothing is replaced), and the latest of its kind in `proof_photo_url` or
    /// `signature_url`.
    pub async fn attach_proof(
        &self,
        actor: &Actor,
        id: OrderId,
        kind: ProofKind,
        url: String,
        sha256: Sha256,
    ) -> Result<Order> {
        let order = self.load_order(actor, id).await?;
        access(actor, Permission::UploadProof(&order)).require()?;
        if !order.status.has_driver_at_work() {
            return Err(Conflict::NotInDelivery.into());
        }
        if order.proofs.len() >= MAX_PROOFS {
            return Err(Conflict::TooManyProofs.into());
        }
        let mut next = order;
        let now = self.clock.now().max(next.updated_at);
        match kind {
            ProofKind::Photo => next.proof_photo_url = Some(url.clone()),
            ProofKind::Signature => next.signature_url = Some(url.clone()),
        }
        next.proofs.push(Proof {
            kind,
            url,
            sha256,
            uploaded_at: now,
        });
        next.updated_at = now;
        bump(&mut next, |o| &mut o.version);
        self.commit(vec![Write::Order(next.clone())]).await?;
        Ok(next)
    }

    /// Whether the actor may read files attached to the order (proofs).
    pub async fn may_read_attachments(&self, actor: &Actor, id: OrderId) -> Result<()> {
        self.load_order(actor, id).await.map(drop)
    }

    pub(super) fn signature(&self, actor: &Actor) -> Signature {
        Signature {
            actor_id: actor.user_id,
            actor_role: actor.role,
        }
    }

    pub(super) fn rule(
        &self,
        actor: &Actor,
        order: &Order,
        action: Action,
    ) -> Result<&'static lifecycle::Rule> {
        match lifecycle::decide(order.status, parties(actor, order), action) {
            Verdict::Allowed(rule) => Ok(rule),
            Verdict::NotNow => Err(lifecycle::TransitionError::NotAllowed {
                from: order.status,
                action,
            }
            .into()),
            // Nothing moves a finished order: say so rather than blaming the actor's role.
            Verdict::NeverByThem if order.status.is_terminal() => {
                Err(lifecycle::TransitionError::NotAllowed {
                    from: order.status,
                    action,
                }
                .into())
            }
            Verdict::NeverByThem => Err(Error::Forbidden),
        }
    }

    /// The driver record with `order` gone from its run (available again when it was the last),
    /// ready to commit.
    pub(super) async fn release(
        &self,
        driver: DriverId,
        order: OrderId,
        now: DateTime<Utc>,
    ) -> Result<Driver> {
        let mut driver = self.load_driver(driver).await?;
        driver.leave_run(order);
        driver.updated_at = now;
        bump(&mut driver, |d| &mut d.version);
        Ok(driver)
    }

    pub(super) fn publish_driver_status(&self, driver: &Driver) {
        self.bus.publish(Event::DriverStatusChanged {
            driver_id: driver.id,
            vendor_id: driver.vendor_id,
            status: driver.status,
        });
    }

    /// Where the acting driver was: its last reported position, for the chain of custody.
    async fn custody_location(&self, actor: &Actor) -> Result<Option<CustodyLocation>> {
        let Some(driver) = actor.driver_id.filter(|_| actor.role == Role::Driver) else {
            return Ok(None);
        };
        let driver = self.store.driver(driver).await?;
        Ok(driver.and_then(|d| Some(CustodyLocation::new(d.position()?, d.last_location_update?))))
    }

    /// Counts a wrong handover code on the order; `Ok(None)` when the order changed meanwhile
    /// (the caller decides again on the new state).
    async fn count_wrong_code(&self, order: &Order) -> Result<Option<u32>> {
        let mut next = order.clone();
        next.handover_failures = order.handover_failures.saturating_add(1);
        next.updated_at = self.clock.now().max(order.updated_at);
        bump(&mut next, |o| &mut o.version);
        match self.commit(vec![Write::Order(next.clone())]).await {
            Ok(()) => Ok(Some(
                MAX_HANDOVER_FAILURES.saturating_sub(next.handover_failures),
            )),
            Err(Error::Conflict(Conflict::ConcurrentUpdate)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every lifecycle move except assignment: decide, apply, update the driver, commit, publish.
    pub(super) async fn perform(
        &self,
        actor: &Actor,
        id: OrderId,
        target: Target,
        details: Details,
    ) -> Result<Order> {
        let (mut recounts, mut driver_retries) = (0, 0);
        loop {
            let order = self.load_order(actor, id).await?;
            let action = match target {
                Target::Action(action) => action,
                Target::Status(status) => {
                    Action::toward(order.status, status).ok_or_else(not_by_name)?
                }
            };
            let rule = self.rule(actor, &order, action)?;
            let working_driver = order
                .driver_id
                .filter(|_| order.status.has_driver_at_work());
            match action {
                Action::Accept if order.delivery_location().is_none() => {
                    return Err(Conflict::LocationMissing.into());
                }
                Action::Deliver => {
                    if order.handover_locked() {
                        return Err(Conflict::HandoverLocked.into());
                    }
                    let mut missing = Vec::new();
                    if order.require_proof_photo && order.proof_photo_url.is_none() {
                        missing.push("proof_photo");
                    }
                    if order.require_signature && order.signature_url.is_none() {
                        missing.push("signature");
                    }
                    if !missing.is_empty() {
                        return Err(Conflict::ProofMissing(missing).into());
                    }
                    if order.require_handover_code {
                        let Some(given) = &details.handover_code else {
                            return Err(Error::Handover(HandoverRefusal::Required));
                        };
                        let right = order
                            .handover_code
                            .as_ref()
                            .is_some_and(|code| code.matches(given));
                        if !right {
                            match self.count_wrong_code(&order).await? {
                                Some(remaining) => {
                                    return Err(Error::Handover(HandoverRefusal::Invalid {
                                        remaining,
                                    }));
                                }
                                // Another write won: count this try on the order as it is now.
                                None if recounts < HANDOVER_COUNT_RETRIES => {
                                    recounts += 1;
                                    continue;
                                }
                                None => return Err(Conflict::ConcurrentUpdate.into()),
                            }
                        }
                    }
                }
                Action::Fail
                    if order.handover_locked()
                        && details.failure != Some(FailureReason::HandoverCodeFailed) =>
                {
                    return Err(Conflict::HandoverLocked.into());
                }
                _ => {}
            }
            let now = self.clock.now();
            let with = Move {
                location: self.custody_location(actor).await?,
                note: details.note.clone().filter(|_| action == Action::Fail),
                ..Move::by(self.signature(actor)).because(details.reason.as_deref())
            };
            let mut next = lifecycle::apply(&order, rule, with, now, &self.custody)?;
            let mut driver_write = None;
            match (action, working_driver) {
                (Action::Deliver, Some(driver_id)) => {
                    if let Some(picked_up) = order.picked_up_at {
                        let trail = self
                            .store
                            .trail(TrailQuery::new(
                                driver_id,
                                picked_up,
                                now + Duration::seconds(1),
                                100_000,
                            ))
                            .await?;
                        if trail.len() >= 2 {
                            next.actual_distance_km =
                                Some((routing::trail_km(&trail) * 1000.0).round() / 1000.0);
                        }
                    }
                    let mut driver = self.release(driver_id, order.id, now).await?;
                    driver.total_deliveries += 1;
                    driver.total_earnings =
                        driver.total_earnings.saturating_add(order.delivery_fee);
                    driver_write = Some(driver);
                }
                // The parcel is back at the pharmacy (or the order ends before pickup): the
                // driver is free, and earns nothing for it.
                (
                    Action::DeclineAssignment
                    | Action::Cancel
                    | Action::Reject
                    | Action::ConfirmReturn,
                    Some(driver_id),
                ) => {
                    driver_write = Some(self.release(driver_id, order.id, now).await?);
                }
                _ => {}
            }
            bump(&mut next, |o| &mut o.version);
            let mut writes = vec![Write::Order(next.clone())];
            writes.extend(driver_write.iter().cloned().map(Write::Driver));
            writes.extend(self.outbox(Some(&order), &next).await?);
            match self.commit(writes).await {
                Ok(()) => {}
                // Not this order but its driver's record changed (another stop of the run was
                // done at the same moment): decide again on both as they are now.
                Err(Error::Conflict(Conflict::ConcurrentUpdate))
                    if driver_write.is_some()
                        && driver_retries < DRIVER_RETRIES
                        && self
                            .store
                            .order(id)
                            .await?
                            .is_some_and(|o| o.version == order.version) =>
                {
                    driver_retries += 1;
                    continue;
                }
                Err(e) => return Err(e),
            }
            self.bus.publish(Event::OrderStatusChanged {
                order: Arc::new(next.clone()),
                previous: order.status,
            });
            if let Some(driver) = &driver_write {
                self.publish_driver_status(driver);
            }
            // The acceptance is committed whatever happens next.
            if action == Action::Accept
                && let Some(assigned) = self.auto_assign(actor, &next).await
            {
                return Ok(assigned);
            }
            return Ok(next);
        }
    }
}
