//! Orders: placing them (API and external shops), reading and listing them, and setting the destination of one that arrived without it.

use super::*;

/// One line of a new order.
#[derive(Debug, Clone)]
pub struct NewItem {
    /// Product.
    pub name: String,
    /// 1 to 1000.
    pub quantity: i64,
    /// Free text.
    pub notes: Option<String>,
}

/// What delivering an order takes beyond the handover itself. An order starts from its
/// pharmacy's policy; the one placing it may ask for more, never for less.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Requirements {
    /// A proof photo.
    pub proof_photo: bool,
    /// The recipient's signature.
    pub signature: bool,
    /// The recipient's handover code.
    pub handover_code: bool,
}

/// When an order should be handed over and dispatched (DESIGN §14); all optional, UTC.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Schedule {
    /// Not handed over before.
    pub deliver_after: Option<DateTime<Utc>>,
    /// Handed over by.
    pub deliver_before: Option<DateTime<Utc>>,
    /// Not dispatched before.
    pub scheduled_for: Option<DateTime<Utc>>,
}

/// How far ahead an order may be scheduled.
const MAX_SCHEDULE_DAYS: i64 = 30;

impl Schedule {
    /// Checks the times against `now`: the window's start before its end, the dispatch time
    /// before the window's end, nothing more than [`MAX_SCHEDULE_DAYS`] ahead, the window's end
    /// not already past.
    fn check(&self, errors: &mut FieldErrors, now: DateTime<Utc>) {
        let horizon = now + Duration::days(MAX_SCHEDULE_DAYS);
        for (field, at) in [
            ("deliver_after", self.deliver_after),
            ("deliver_before", self.deliver_before),
            ("scheduled_for", self.scheduled_for),
        ] {
            if at.is_some_and(|t| t > horizon) {
                errors.push(field, format!("must be within {MAX_SCHEDULE_DAYS} days"));
            }
        }
        if let (Some(after), Some(before)) = (self.deliver_after, self.deliver_before)
            && after >= before
        {
            errors.push("deliver_before", "must be after deliver_after");
        }
        if let Some(before) = self.deliver_before {
            if before <= now {
                errors.push("deliver_before", "must be in the future");
            }
            if self.scheduled_for.is_some_and(|s| s >= before) {
                errors.push("scheduled_for", "must be before deliver_before");
            }
        }
    }
}

/// A new order placed through the API.
#[derive(Debug, Clone)]
pub struct NewOrder {
    /// The pharmacy.
    pub vendor_id: VendorId,
    /// Street address.
    pub delivery_address: String,
    /// Destination.
    pub delivery_latitude: f64,
    /// Destination.
    pub delivery_longitude: f64,
    /// Recipient.
    pub customer_name: String,
    /// Recipient's number.
    pub customer_phone: String,
    /// Lines, 1 to 100.
    pub items: Vec<NewItem>,
    /// Free text.
    pub notes: Option<String>,
    /// Raised requirements; what the pharmacy requires holds anyway.
    pub requirements: Requirements,
    /// Its window and dispatch time.
    pub schedule: Schedule,
}

/// An order taken in from an external shop (WooCommerce).
#[derive(Debug, Clone)]
pub struct ExternalOrder {
    /// The system, e.g. `woocommerce`.
    pub source: String,
    /// Its id there.
    pub external_id: String,
    /// Recipient.
    pub customer_name: String,
    /// Recipient's number.
    pub customer_phone: String,
    /// Street address.
    pub delivery_address: String,
    /// Destination, when the shop knows it; otherwise the vendor sets it before accepting.
    pub delivery: Option<Coordinates>,
    /// Lines.
    pub items: Vec<NewItem>,
    /// Free text.
    pub notes: Option<String>,
    /// The delivery window the shop asked for. One the pharmacy cannot keep (already past,
    /// beyond the scheduling horizon, ending before it starts) is dropped: the order is taken
    /// in without it rather than refused, since a shop gives up on a refused webhook.
    pub schedule: Schedule,
}

/// The lines of a new order: 1 to 100, each with a name and a quantity of 1 to 1000.
fn items(errors: &mut FieldErrors, items: &[NewItem]) -> Vec<OrderItem> {
    if items.is_empty() || items.len() > 100 {
        errors.push("items", "must have between 1 and 100 items");
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            if !(1..=1000).contains(&item.quantity) {
                errors.push(format!("items[{i}].quantity"), "must be between 1 and 1000");
            }
            OrderItem {
                name: errors.text(&format!("items[{i}].name"), &item.name, 200),
                quantity: item.quantity.clamp(1, 1000) as u32,
                notes: errors.optional_text(
                    &format!("items[{i}].notes"),
                    item.notes.as_deref(),
                    500,
                ),
            }
        })
        .collect()
}

/// Refuses a destination outside the pharmacy's delivery radius (so a customer cannot set the
/// fee by picking a point on the other side of the earth).
fn within_radius(
    errors: &mut FieldErrors,
    vendor: &Vendor,
    destination: Option<Coordinates>,
    config: &SystemConfig,
) {
    let Some(to) = destination else {
        return;
    };
    let radius = vendor
        .delivery_radius_km
        .unwrap_or(config.default_delivery_radius_km);
    if routing::distance_km(vendor.location, to) > radius {
        errors.push(
            "delivery_latitude",
            format!("is outside the pharmacy's delivery radius of {radius} km"),
        );
    }
}

impl MedEx {
    pub(super) async fn insert_order(&self, mut order: Order) -> Result<Order> {
        // Order numbers and tracking tokens are random; on the rare collision, draw again.
        for _ in 0..5 {
            let mut writes = vec![Write::Order(order.clone())];
            writes.extend(self.outbox(None, &order).await?);
            match self.store.commit(writes).await {
                Ok(()) => {
                    self.bus
                        .publish(Event::OrderCreated(Arc::new(order.clone())));
                    return Ok(order);
                }
                Err(StoreError::Duplicate(UniqueKey::OrderNumber | UniqueKey::TrackingToken)) => {
                    order.order_number = self.entropy.order_number();
                    order.tracking_token = self.entropy.token();
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Storage(StoreError::Duplicate(
            UniqueKey::OrderNumber,
        )))
    }

    pub(super) fn draft_order(
        &self,
        vendor: &Vendor,
        placed_by: Signature,
        destination: Option<Coordinates>,
    ) -> Order {
        let now = self.clock.now();
        let distance = destination
            .map(|to| (routing::distance_km(vendor.location, to) * 100.0).round() / 100.0);
        let fee = distance
            .map(|km| self.config().tariff.fee(km))
            .unwrap_or(Money::ZERO);
        let mut order = Order {
            id: OrderId::from_uuid(self.new_id()),
            order_number: self.entropy.order_number(),
            user_id: placed_by.actor_id,
            vendor_id: vendor.id,
            driver_id: None,
            tracking_token: self.entropy.token(),
            status: OrderStatus::Pending,
            pickup_address: vendor.address.clone(),
            pickup_latitude: vendor.location.latitude(),
            pickup_longitude: vendor.location.longitude(),
            delivery_address: String::new(),
            delivery_latitude: destination.map(|c| c.latitude()),
            delivery_longitude: destination.map(|c| c.longitude()),
            customer_name: String::new(),
            customer_phone: String::new(),
            items: vec![],
            notes: None,
            estimated_distance_km: distance,
            actual_distance_km: None,
            delivery_fee: fee,
            proof_photo_url: None,
            signature_url: None,
            proofs: vec![],
            require_proof_photo: vendor.require_proof_photo,
            require_signature: vendor.require_signature,
            require_handover_code: vendor.require_handover_code,
            handover_code: Some(self.entropy.handover_code()),
            handover_failures: 0,
            attempt: 1,
            failure_reason: None,
            accepted_at: None,
            driver_accepted_at: None,
            picked_up_at: None,
            out_for_delivery_at: None,
            delivered_at: None,
            cancelled_at: None,
            cancel_reason: None,
            reject_reason: None,
            status_history: vec![],
            custody_seal: None,
            external_ref: None,
            deliver_after: None,
            deliver_before: None,
            scheduled_for: None,
            late_risk_at: None,
            driver_arriving_at: None,
            driver_arrived_at: None,
            created_at: now,
            updated_at: now,
            version: 1,
        };
        let placed = StatusChange::new(
            OrderStatus::Pending,
            now,
            placed_by.actor_id,
            placed_by.actor_role,
        );
        crate::custody::append(&mut order, placed, &self.custody);
        order
    }

    /// Places an order. Pickup comes from the pharmacy; distance, fee, number and tracking token
    /// are computed here.
    pub async fn create_order(&self, actor: &Actor, new: NewOrder) -> Result<Order> {
        access(actor, Permission::CreateOrder).require()?;
        let mut errors = FieldErrors::new();
        let delivery_address = errors.text("delivery_address", &new.delivery_address, 500);
        let destination =
            errors.coordinates("delivery_", new.delivery_latitude, new.delivery_longitude);
        let customer_name = errors.text("customer_name", &new.customer_name, 200);
        let customer_phone = errors.text("customer_phone", &new.customer_phone, 40);
        let items = items(&mut errors, &new.items);
        let notes = errors.optional_text("notes", new.notes.as_deref(), 2000);
        new.schedule.check(&mut errors, self.clock.now());
        let vendor = self
            .store
            .vendor(new.vendor_id)
            .await?
            .filter(|v| v.is_active);
        match &vendor {
            None => errors.push("vendor_id", "no such pharmacy"),
            Some(vendor) => within_radius(&mut errors, vendor, destination, &self.config()),
        }
        errors.finish()?;
        let vendor = vendor.ok_or(Error::NotFound)?;
        let by = Signature {
            actor_id: actor.user_id,
            actor_role: actor.role,
        };
        let mut order = self.draft_order(&vendor, by, destination);
        order.delivery_address = delivery_address;
        order.customer_name = customer_name;
        order.customer_phone = customer_phone;
        order.items = items;
        order.notes = notes;
        // Raised, never lowered: a `false` keeps what the pharmacy asks for.
        order.require_proof_photo |= new.requirements.proof_photo;
        order.require_signature |= new.requirements.signature;
        order.require_handover_code |= new.requirements.handover_code;
        order.deliver_after = new.schedule.deliver_after;
        order.deliver_before = new.schedule.deliver_before;
        order.scheduled_for = new.schedule.scheduled_for;
        self.insert_order(order).await
    }

    /// Takes in an order from an external shop, idempotently: the same external id for the same
    /// pharmacy returns the order already taken in, with `false`.
    pub async fn intake_external_order(
        &self,
        vendor: VendorId,
        new: ExternalOrder,
    ) -> Result<(Order, bool)> {
        let vendor = self.vendor_for_webhook(vendor).await?;
        if let Some(existing) = self
            .store
            .order_by_external_ref(ShopOrder::new(vendor.id, &new.source, &new.external_id))
            .await?
        {
            return Ok((existing, false));
        }
        let mut errors = FieldErrors::new();
        let external_id = errors.text("id", &new.external_id, 100);
        let customer_name = errors.text("customer_name", &new.customer_name, 200);
        let customer_phone = errors
            .optional_text("customer_phone", Some(&new.customer_phone), 40)
            .unwrap_or_default();
        let delivery_address = errors.text("delivery_address", &new.delivery_address, 500);
        let items = items(&mut errors, &new.items);
        let notes = errors.optional_text("notes", new.notes.as_deref(), 2000);
        errors.finish()?;
        let by = Signature {
            actor_id: vendor.user_id,
            actor_role: Role::Vendor,
        };
        // A shop's point outside the delivery radius is dropped, as an unusable one is: the
        // pharmacy sets (or refuses) the destination before accepting.
        let mut outside = FieldErrors::new();
        within_radius(&mut outside, &vendor, new.delivery, &self.config());
        let destination = new.delivery.filter(|_| outside.is_empty());
        let mut order = self.draft_order(&vendor, by, destination);
        order.delivery_address = delivery_address;
        order.customer_name = customer_name;
        order.customer_phone = customer_phone;
        order.items = items;
        order.notes = notes;
        order.external_ref = Some(ExternalRef {
            source: new.source.clone(),
            id: external_id,
        });
        let mut unusable = FieldErrors::new();
        new.schedule.check(&mut unusable, self.clock.now());
        if unusable.is_empty() {
            order.deliver_after = new.schedule.deliver_after;
            order.deliver_before = new.schedule.deliver_before;
            order.scheduled_for = new.schedule.scheduled_for;
        }
        match self.insert_order(order).await {
            Ok(order) => Ok((order, true)),
            // A concurrent delivery of the same webhook got there first.
            Err(Error::Storage(StoreError::Duplicate(UniqueKey::ExternalOrder))) => {
                let existing = self
                    .store
                    .order_by_external_ref(ShopOrder::new(vendor.id, &new.source, &new.external_id))
                    .await?;
                existing
                    .map(|o| (o, false))
                    .ok_or(Error::Conflict(Conflict::ConcurrentUpdate))
            }
            Err(e) => Err(e),
        }
    }

    pub(super) async fn load_order(&self, actor: &Actor, id: OrderId) -> Result<Order> {
        let order = self.store.order(id).await?.ok_or(Error::NotFound)?;
        access(actor, Permission::ViewOrder(&order)).require()?;
        Ok(order)
    }

    /// One order with its history, for the parties of the order.
    pub async fn get_order(&self, actor: &Actor, id: OrderId) -> Result<Order> {
        self.load_order(actor, id).await
    }

    /// Orders visible to the actor, narrowed by `query`, newest first.
    pub async fn list_orders(
        &self,
        actor: &Actor,
        query: OrderQuery,
        page: Page<OrderId>,
    ) -> Result<Vec<Order>> {
        // Asking for someone else's orders finds none, as if they did not exist.
        let Some(query) = permissions::scope_order_query(actor, query) else {
            return Ok(vec![]);
        };
        Ok(self.store.orders(&query, clamp_page(page)).await?)
    }

    /// Sets the destination of a pending order that arrived without one (external shops), within
    /// the pharmacy's delivery radius. A destination once set is the customer's: a pharmacy
    /// cannot move it. The change is recorded in the order's history and announced.
    pub async fn set_delivery_location(
        &self,
        actor: &Actor,
        id: OrderId,
        address: Option<String>,
        latitude: f64,
        longitude: f64,
    ) -> Result<Order> {
        let order = self.load_order(actor, id).await?;
        access(actor, Permission::EditOrderLocation(&order)).require()?;
        if order.status != OrderStatus::Pending {
            return Err(Conflict::NotEditable.into());
        }
        if order.delivery_location().is_some() {
            return Err(Conflict::DestinationSet.into());
        }
        let vendor = self.load_vendor(order.vendor_id).await?;
        let mut errors = FieldErrors::new();
        let destination = errors.coordinates("delivery_", latitude, longitude);
        let address = errors.optional_text("delivery_address", address.as_deref(), 500);
        within_radius(&mut errors, &vendor, destination, &self.config());
        errors.finish()?;
        let destination = destination.ok_or(Error::NotFound)?;
        let km = (routing::distance_km(vendor.location, destination) * 100.0).round() / 100.0;
        let now = self.clock.now();
        let mut next = order;
        if let Some(address) = address {
            next.delivery_address = address;
        }
        next.delivery_latitude = Some(destination.latitude());
        next.delivery_longitude = Some(destination.longitude());
        next.estimated_distance_km = Some(km);
        next.delivery_fee = self.config().tariff.fee(km);
        next.updated_at = now.max(next.updated_at);
        // The chain of custody records who gave the destination, as it records every move.
        let entry = StatusChange {
            reason: Some("delivery location set".into()),
            ..StatusChange::new(next.status, next.updated_at, actor.user_id, actor.role)
        };
        crate::custody::append(&mut next, entry, &self.custody);
        bump(&mut next, |o| &mut o.version);
        self.commit(vec![Write::Order(next.clone())]).await?;
        self.bus
            .publish(Event::OrderUpdated(Arc::new(next.clone())));
        Ok(next)
    }
}
