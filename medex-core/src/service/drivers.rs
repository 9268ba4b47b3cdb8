//! Drivers: joining a fleet, profiles, availability and their delivery history.

use super::*;

/// A new driver with its login account.
#[derive(Debug, Clone)]
pub struct NewDriver {
    /// The fleet: a vendor's own is implied; an admin must say.
    pub vendor_id: Option<VendorId>,
    /// Login e-mail.
    pub email: String,
    /// Password.
    pub password: String,
    /// Full name.
    pub full_name: String,
    /// Contact number.
    pub phone: Option<String>,
    /// Vehicle.
    pub vehicle_type: VehicleType,
    /// Plate.
    pub vehicle_number: Option<String>,
    /// Licence.
    pub license_number: Option<String>,
}

/// Changes to a driver profile; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct DriverPatch {
    /// Name.
    pub full_name: Option<String>,
    /// Contact number.
    pub phone: Option<String>,
    /// Vehicle.
    pub vehicle_type: Option<VehicleType>,
    /// Plate.
    pub vehicle_number: Option<String>,
    /// Licence.
    pub license_number: Option<String>,
    /// Vendor or admin only: take the driver out of (or back into) service.
    pub is_active: Option<bool>,
}

impl MedEx {
    /// Adds a driver (and its login) to a fleet.
    pub async fn register_driver(&self, actor: &Actor, new: NewDriver) -> Result<(Driver, User)> {
        let vendor_id = permissions::fleet_for_new_driver(actor, new.vendor_id)?
            .ok_or_else(|| Error::invalid("vendor_id", "an admin must name the fleet"))?;
        access(actor, Permission::RegisterDriver(vendor_id)).require()?;
        let mut errors = FieldErrors::new();
        let account = NewAccount {
            email: new.email.clone(),
            password: new.password.clone(),
            full_name: new.full_name.clone(),
            phone: new.phone.clone(),
        };
        let pending = self.new_user(&mut errors, &account, Role::Driver).await;
        let vehicle_number =
            errors.optional_text("vehicle_number", new.vehicle_number.as_deref(), 40);
        let license_number =
            errors.optional_text("license_number", new.license_number.as_deref(), 60);
        errors.finish()?;
        let mut vendor = self
            .load_vendor(vendor_id)
            .await
            .map_err(|_| Error::invalid("vendor_id", "no such pharmacy"))?;
        let mut user = self
            .hashed(pending.ok_or(Error::invalid("email", "invalid"))?)
            .await?;
        let now = self.clock.now();
        let driver = Driver {
            id: DriverId::from_uuid(self.new_id()),
            user_id: user.id,
            vendor_id,
            full_name: user.full_name.clone(),
            email: user.email.clone(),
            phone: user.phone.clone(),
            vehicle_type: new.vehicle_type,
            vehicle_number,
            license_number,
            status: DriverStatus::Offline,
            active_order_id: None,
            active_order_ids: Vec::new(),
            manual_stop_order: Vec::new(),
            current_latitude: None,
            current_longitude: None,
            last_location_update: None,
            total_deliveries: 0,
            total_earnings: Money::ZERO,
            is_active: true,
            created_at: now,
            updated_at: now,
            version: 1,
        };
        user.driver_id = Some(driver.id);
        // The fleet list is the only shared record here: when another registration for the
        // same pharmacy commits first, re-read the pharmacy and try again rather than refuse.
        for attempt in 0..5 {
            if attempt > 0 {
                vendor = self.load_vendor(vendor_id).await?;
            }
            let mut fleet = vendor.clone();
            fleet.driver_ids.push(driver.id);
            fleet.updated_at = now.max(fleet.updated_at);
            bump(&mut fleet, |v| &mut v.version);
            let writes = vec![
                Write::User(user.clone()),
                Write::Driver(driver.clone()),
                Write::Vendor(fleet),
            ];
            match self.store.commit(writes).await {
                Ok(()) => return Ok((driver, user)),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Conflict::ConcurrentUpdate.into())
    }

    pub(super) async fn load_driver(&self, id: DriverId) -> Result<Driver> {
        self.store.driver(id).await?.ok_or(Error::NotFound)
    }

    /// Drivers: a vendor's own fleet, or any fleet for admins.
    pub async fn list_drivers(
        &self,
        actor: &Actor,
        query: DriverQuery,
        page: Page<DriverId>,
    ) -> Result<Vec<Driver>> {
        let query = permissions::scope_driver_query(actor, query)?;
        Ok(self.store.drivers(&query, clamp_page(page)).await?)
    }

    /// One driver.
    pub async fn get_driver(&self, actor: &Actor, id: DriverId) -> Result<Driver> {
        let driver = self.load_driver(id).await?;
        access(actor, Permission::ViewDriver(&driver)).require()?;
        Ok(driver)
    }

    /// Changes a driver's profile. Only its vendor or an admin changes `is_active`.
    pub async fn update_driver(
        &self,
        actor: &Actor,
        id: DriverId,
        patch: DriverPatch,
    ) -> Result<Driver> {
        let mut driver = self.load_driver(id).await?;
        access(actor, Permission::EditDriver(&driver)).require()?;
        if patch.is_active.is_some() {
            access(actor, Permission::ChangeDriverActive(&driver)).require()?;
        }
        let mut errors = FieldErrors::new();
        if let Some(name) = &patch.full_name {
            driver.full_name = errors.text("full_name", name, 200);
        }
        if let Some(phone) = &patch.phone {
            driver.phone = errors.optional_text("phone", Some(phone), 40);
        }
        if let Some(number) = &patch.vehicle_number {
            driver.vehicle_number = errors.optional_text("vehicle_number", Some(number), 40);
        }
        if let Some(number) = &patch.license_number {
            driver.license_number = errors.optional_text("license_number", Some(number), 60);
        }
        errors.finish()?;
        driver.vehicle_type = patch.vehicle_type.unwrap_or(driver.vehicle_type);
        if let Some(active) = patch.is_active {
            if !active && driver.is_on_run() {
                return Err(Conflict::DriverHasActiveOrder.into());
            }
            driver.is_active = active;
        }
        driver.updated_at = self.clock.now();
        bump(&mut driver, |d| &mut d.version);
        self.commit(vec![Write::Driver(driver.clone())]).await?;
        Ok(driver)
    }

    /// Sets a driver's availability: `available`, `offline` or `on_break` (`busy` belongs to the
    /// lifecycle). A driver on an active order cannot change it.
    pub async fn set_driver_status(
        &self,
        actor: &Actor,
        id: DriverId,
        status: DriverStatus,
    ) -> Result<Driver> {
        let mut driver = self.load_driver(id).await?;
        access(actor, Permission::EditDriver(&driver)).require()?;
        if status == DriverStatus::Busy {
            return Err(Error::invalid(
                "status",
                "must be available, offline or on_break",
            ));
        }
        if driver.is_on_run() {
            return Err(Conflict::DriverHasActiveOrder.into());
        }
        if driver.status == status {
            return Ok(driver);
        }
        driver.status = status;
        driver.updated_at = self.clock.now();
        bump(&mut driver, |d| &mut d.version);
        self.commit(vec![Write::Driver(driver.clone())]).await?;
        self.bus.publish(Event::DriverStatusChanged {
            driver_id: driver.id,
            vendor_id: driver.vendor_id,
            status,
        });
        Ok(driver)
    }

    /// A driver's delivered orders, newest first.
    pub async fn driver_deliveries(
        &self,
        actor: &Actor,
        id: DriverId,
        page: Page<OrderId>,
    ) -> Result<Vec<Order>> {
        let driver = self.get_driver(actor, id).await?;
        let query = OrderQuery {
            driver_id: Some(driver.id),
            status: Some(OrderStatus::Delivered),
            ..Default::default()
        };
        Ok(self.store.orders(&query, clamp_page(page)).await?)
    }
}
