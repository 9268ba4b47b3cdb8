//! Delivery: every lifecycle move (accept, assign, pick up, deliver, cancel …) with its effects on drivers, and proofs of delivery.

use super::*;

/// The driver's answer to an assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignmentResponse {
    /// "I'm on it."
    Accept,
    /// "I can't": the order goes back to the pharmacy.
    Decline,
}

/// Which proof an upload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofKind {
    /// A photo of the handover.
    Photo,
    /// The recipient's signature.
    Signature,
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
        let Some(action) = Action::for_target(status) else {
            return Err(Error::invalid(
                "status",
                "cannot be set directly; use assign-driver for driver_assigned",
            ));
        };
        self.perform(actor, id, action, reason).await
    }

    /// Cancels an order (`DELETE /orders/{id}`).
    pub async fn cancel_order(
        &self,
        actor: &Actor,
        id: OrderId,
        reason: Option<String>,
    ) -> Result<Order> {
        self.perform(actor, id, Action::Cancel, reason).await
    }

    /// Assigns a driver of the pharmacy's fleet, or re-assigns before pickup.
    pub async fn assign_driver(
        &self,
        actor: &Actor,
        id: OrderId,
        driver_id: DriverId,
    ) -> Result<Order> {
        let order = self.load_order(actor, id).await?;
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
        if !driver.is_active
            || driver.status != DriverStatus::Available
            || driver.active_order_id.is_some()
        {
            return Err(Conflict::DriverNotAvailable.into());
        }
        let now = self.clock.now();
        let mut next = lifecycle::apply(&order, rule, self.signature(actor), None, now)?;
        next.driver_id = Some(driver_id);
        bump(&mut next, |o| &mut o.version);
        driver.status = DriverStatus::Busy;
        driver.active_order_id = Some(order.id);
        driver.updated_at = now;
        bump(&mut driver, |d| &mut d.version);
        let mut writes = vec![Write::Order(next.clone()), Write::Driver(driver.clone())];
        let previous = match order.driver_id {
            Some(old) => Some(self.release(old, order.id, now).await?),
            None => None,
        };
        writes.extend(previous.iter().cloned().map(Write::Driver));
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
                self.perform(actor, id, Action::DeclineAssignment, reason)
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

    /// Records an uploaded proof (its URL) on an order on its way.
    pub async fn attach_proof(
        &self,
        actor: &Actor,
        id: OrderId,
        kind: ProofKind,
        url: String,
    ) -> Result<Order> {
        let order = self.load_order(actor, id).await?;
        access(actor, Permission::UploadProof(&order)).require()?;
        if !order.status.has_driver_at_work() {
            return Err(Conflict::NotInDelivery.into());
        }
        let mut next = order;
        match kind {
            ProofKind::Photo => next.proof_photo_url = Some(url),
            ProofKind::Signature => next.signature_url = Some(url),
        }
        next.updated_at = self.clock.now().max(next.updated_at);
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

    /// The driver record freed from `order`, ready to commit.
    pub(super) async fn release(
        &self,
        driver: DriverId,
        order: OrderId,
        now: DateTime<Utc>,
    ) -> Result<Driver> {
        let mut driver = self.load_driver(driver).await?;
        if driver.active_order_id == Some(order) {
            driver.active_order_id = None;
            if driver.status == DriverStatus::Busy {
                driver.status = DriverStatus::Available;
            }
        }
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

    /// Every lifecycle move except assignment: decide, apply, update the driver, commit, publish.
    pub(super) async fn perform(
        &self,
        actor: &Actor,
        id: OrderId,
        action: Action,
        reason: Option<String>,
    ) -> Result<Order> {
        let order = self.load_order(actor, id).await?;
        let rule = self.rule(actor, &order, action)?;
        let now = self.clock.now();
        let mut next =
            lifecycle::apply(&order, rule, self.signature(actor), reason.as_deref(), now)?;
        if action == Action::Accept && order.delivery_location().is_none() {
            return Err(Conflict::LocationMissing.into());
        }
        let mut driver_write = None;
        let working_driver = order
            .driver_id
            .filter(|_| order.status.has_driver_at_work());
        match (action, working_driver) {
            (Action::Deliver, Some(driver_id)) => {
                let vendor = self.load_vendor(order.vendor_id).await?;
                let mut missing = Vec::new();
                if vendor.require_proof_photo && order.proof_photo_url.is_none() {
                    missing.push("proof_photo");
                }
                if vendor.require_signature && order.signature_url.is_none() {
                    missing.push("signature");
                }
                if !missing.is_empty() {
                    return Err(Conflict::ProofMissing(missing).into());
                }
                if let Some(picked_up) = order.picked_up_at {
                    let trail = self
                        .store
                        .trail(driver_id, picked_up, now + Duration::seconds(1), 100_000)
                        .await?;
                    if trail.len() >= 2 {
                        next.actual_distance_km =
                            Some((routing::trail_km(&trail) * 1000.0).round() / 1000.0);
                    }
                }
                let mut driver = self.release(driver_id, order.id, now).await?;
                driver.total_deliveries += 1;
                driver.total_earnings = driver.total_earnings.saturating_add(order.delivery_fee);
                driver_write = Some(driver);
            }
            (Action::DeclineAssignment | Action::Cancel | Action::Reject, Some(driver_id)) => {
                driver_write = Some(self.release(driver_id, order.id, now).await?);
            }
            _ => {}
        }
        bump(&mut next, |o| &mut o.version);
        let mut writes = vec![Write::Order(next.clone())];
        writes.extend(driver_write.iter().cloned().map(Write::Driver));
        self.commit(writes).await?;
        self.bus.publish(Event::OrderStatusChanged {
            order: Arc::new(next.clone()),
            previous: order.status,
        });
        if let Some(driver) = &driver_write {
            self.publish_driver_status(driver);
        }
        Ok(next)
    }
}
