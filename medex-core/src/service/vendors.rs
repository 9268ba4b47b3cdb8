//! Pharmacies: registration, profiles and proof policy, their order lists and the live state of their fleet.

use super::*;

/// A new pharmacy with its owner account.
#[derive(Debug, Clone, Default)]
pub struct NewVendor {
    /// Owner login (and contact) e-mail.
    pub email: String,
    /// Owner password.
    pub password: String,
    /// Owner's name; defaults to the business name.
    pub full_name: Option<String>,
    /// Pharmacy name.
    pub business_name: String,
    /// Contact number.
    pub phone: Option<String>,
    /// Pickup address.
    pub address: String,
    /// Pickup point.
    pub latitude: f64,
    /// Pickup point.
    pub longitude: f64,
}

/// Changes to a pharmacy; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct VendorPatch {
    /// Name.
    pub business_name: Option<String>,
    /// Contact number.
    pub phone: Option<String>,
    /// Pickup address.
    pub address: Option<String>,
    /// Pickup point (both or neither).
    pub location: Option<(f64, f64)>,
    /// Proof policy.
    pub require_proof_photo: Option<bool>,
    /// Proof policy.
    pub require_signature: Option<bool>,
    /// Handover policy: new orders need the recipient's code.
    pub require_handover_code: Option<bool>,
    /// How far from its pickup point it delivers, km (0.5 to 1000).
    pub delivery_radius_km: Option<f64>,
    /// How many active orders one driver may hold at once (1 to 30).
    pub max_active_orders: Option<u32>,
    /// Assign accepted orders at once to the best suggested driver.
    pub auto_assign: Option<bool>,
    /// Webhook secret; `Some(None)` removes it.
    pub woocommerce_webhook_secret: Option<Option<String>>,
    /// Admins only.
    pub is_active: Option<bool>,
}

/// A pharmacy's live fleet: what its dashboard shows first.
#[derive(Debug, Clone)]
pub struct LiveFleet {
    /// All its drivers with positions.
    pub drivers: Vec<Driver>,
    /// Its orders not yet in a terminal status, newest first.
    pub active_orders: Vec<Order>,
}

impl MedEx {
    /// Registers a pharmacy with its owner account (anyone may).
    pub async fn register_vendor(&self, new: NewVendor) -> Result<(Vendor, User)> {
        let mut errors = FieldErrors::new();
        let business_name = errors.text("business_name", &new.business_name, 200);
        let full_name = new
            .full_name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or(business_name.clone());
        let account = NewAccount {
            email: new.email.clone(),
            password: new.password.clone(),
            full_name,
            phone: new.phone.clone(),
        };
        let pending = self.new_user(&mut errors, &account, Role::Vendor).await;
        let address = errors.text("address", &new.address, 500);
        let location = errors.coordinates("", new.latitude, new.longitude);
        errors.finish()?;
        let (Some(pending), Some(location)) = (pending, location) else {
            return Err(Error::invalid("email", "invalid"));
        };
        let mut user = self.hashed(pending).await?;
        let now = self.clock.now();
        let config = self.config();
        let vendor = Vendor {
            id: VendorId::from_uuid(self.new_id()),
            user_id: user.id,
            business_name,
            email: user.email.clone(),
            phone: user.phone.clone(),
            address,
            location,
            driver_ids: vec![],
            is_active: true,
            require_proof_photo: config.default_require_proof_photo,
            require_signature: config.default_require_signature,
            require_handover_code: false,
            delivery_radius_km: None,
            max_active_orders: 1,
            auto_assign: false,
            woocommerce_webhook_secret: None,
            created_at: now,
            updated_at: now,
            version: 1,
        };
        user.vendor_id = Some(vendor.id);
        self.commit(vec![
            Write::User(user.clone()),
            Write::Vendor(vendor.clone()),
        ])
        .await?;
        Ok((vendor, user))
    }

    pub(super) async fn load_vendor(&self, id: VendorId) -> Result<Vendor> {
        self.store.vendor(id).await?.ok_or(Error::NotFound)
    }

    /// Pharmacies: active ones for everyone, all of them for admins.
    pub async fn list_vendors(&self, actor: &Actor, page: Page<VendorId>) -> Result<Vec<Vendor>> {
        let page = clamp_page(page);
        scan(
            page,
            page.limit,
            |p| self.store.vendors(p),
            |v| v.id,
            |v| access(actor, Permission::ViewVendor(v)) == Access::Granted,
        )
        .await
    }

    /// One pharmacy.
    pub async fn get_vendor(&self, actor: &Actor, id: VendorId) -> Result<Vendor> {
        let vendor = self.load_vendor(id).await?;
        access(actor, Permission::ViewVendor(&vendor)).require()?;
        Ok(vendor)
    }

    /// Changes a pharmacy's profile or proof policy; only admins change `is_active`.
    pub async fn update_vendor(
        &self,
        actor: &Actor,
        id: VendorId,
        patch: VendorPatch,
    ) -> Result<Vendor> {
        access(actor, Permission::ManageVendor(id)).require()?;
        if patch.is_active.is_some() {
            access(actor, Permission::ChangeVendorActive).require()?;
        }
        let mut vendor = self.load_vendor(id).await?;
        let mut errors = FieldErrors::new();
        if let Some(name) = &patch.business_name {
            vendor.business_name = errors.text("business_name", name, 200);
        }
        if let Some(phone) = &patch.phone {
            vendor.phone = errors.optional_text("phone", Some(phone), 40);
        }
        if let Some(address) = &patch.address {
            vendor.address = errors.text("address", address, 500);
        }
        if let Some((lat, lon)) = patch.location
            && let Some(location) = errors.coordinates("", lat, lon)
        {
            vendor.location = location;
        }
        if let Some(secret) = &patch.woocommerce_webhook_secret {
            vendor.woocommerce_webhook_secret = match secret.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(s) if !(16..=256).contains(&s.chars().count()) => {
                    errors.push("woocommerce_webhook_secret", "must be 16 to 256 characters");
                    None
                }
                Some(s) if crate::auth::looks_guessable(s.as_bytes()) => {
                    errors.push(
                        "woocommerce_webhook_secret",
                        "is too easy to guess: use the random secret WooCommerce generates",
                    );
                    None
                }
                Some(s) => Some(s.to_owned()),
            };
        }
        if let Some(km) = patch.delivery_radius_km {
            if crate::config::DELIVERY_RADIUS_KM.contains(&km) {
                vendor.delivery_radius_km = Some(km);
            } else {
                errors.push("delivery_radius_km", "must be between 0.5 and 1000 km");
            }
        }
        if let Some(n) = patch.max_active_orders {
            if crate::model::MAX_ACTIVE_ORDERS.contains(&n) {
                vendor.max_active_orders = n;
            } else {
                errors.push(
                    "max_active_orders",
                    format!(
                        "must be between {} and {}",
                        crate::model::MAX_ACTIVE_ORDERS.start(),
                        crate::model::MAX_ACTIVE_ORDERS.end()
                    ),
                );
            }
        }
        errors.finish()?;
        vendor.require_proof_photo = patch
            .require_proof_photo
            .unwrap_or(vendor.require_proof_photo);
        vendor.require_signature = patch.require_signature.unwrap_or(vendor.require_signature);
        vendor.require_handover_code = patch
            .require_handover_code
            .unwrap_or(vendor.require_handover_code);
        vendor.auto_assign = patch.auto_assign.unwrap_or(vendor.auto_assign);
        vendor.is_active = patch.is_active.unwrap_or(vendor.is_active);
        vendor.updated_at = self.clock.now();
        bump(&mut vendor, |v| &mut v.version);
        self.commit(vec![Write::Vendor(vendor.clone())]).await?;
        Ok(vendor)
    }

    /// A pharmacy's orders, newest first.
    pub async fn vendor_orders(
        &self,
        actor: &Actor,
        vendor: VendorId,
        mut query: OrderQuery,
        page: Page<OrderId>,
    ) -> Result<Vec<Order>> {
        access(actor, Permission::ManageVendor(vendor)).require()?;
        self.load_vendor(vendor).await?;
        query.vendor_id = Some(vendor);
        Ok(self.store.orders(&query, clamp_page(page)).await?)
    }

    /// Looks a pharmacy up for an incoming webhook (no actor: the caller proves itself with the
    /// pharmacy's secret).
    pub async fn vendor_for_webhook(&self, id: VendorId) -> Result<Vendor> {
        let vendor = self.load_vendor(id).await?;
        if !vendor.is_active {
            return Err(Error::NotFound);
        }
        Ok(vendor)
    }

    /// What a pharmacy's dashboard starts from.
    pub async fn vendor_live_state(&self, actor: &Actor, vendor: VendorId) -> Result<LiveFleet> {
        access(actor, Permission::ManageVendor(vendor)).require()?;
        self.load_vendor(vendor).await?;
        let drivers = self.all_drivers(vendor).await?;
        // One query per active status, so an old order still on its way is not crowded out by
        // newer finished ones.
        let mut active_orders = Vec::new();
        for status in OrderStatus::ALL.into_iter().filter(|s| !s.is_terminal()) {
            let query = OrderQuery {
                vendor_id: Some(vendor),
                status: Some(status),
                ..Default::default()
            };
            active_orders.extend(self.store.orders(&query, Page::first(MAX_PAGE)).await?);
        }
        active_orders.sort_by_key(|o| std::cmp::Reverse(o.id));
        Ok(LiveFleet {
            drivers,
            active_orders,
        })
    }
}
