//! The use cases: every operation of the API, as methods of [`MedEx`] taking the acting identity.
//!
//! Each write follows one pattern: read what is needed, decide with pure code (permissions,
//! lifecycle, pricing), commit all changed records at once guarded by their versions, then
//! publish events. Transports only translate requests into these calls and results back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, Utc};

use crate::auth::{PasswordHasher, TokenKeys, TokenType};
use crate::clock::{Clock, Entropy};
use crate::config::SystemConfig;
use crate::error::{AuthFailure, Conflict, Error, FieldError, Result};
use crate::events::{DriverLocation, Event, EventBus};
use crate::lifecycle::{self, Action, Signature, Verdict};
use crate::model::*;
use crate::permissions::{Access, Actor, Party, Permission, access, parties};
use crate::reports::{self, Earnings, VendorDailyReport};
use crate::routing;
use crate::store::{
    DriverQuery, OrderQuery, Page, RefreshSession, Store, StoreError, UniqueKey, UserQuery, Write,
};
use crate::tracking::TrackingView;

/// Longest page a list returns.
pub const MAX_PAGE: usize = 200;
/// Page length when none is asked for.
pub const DEFAULT_PAGE: usize = 50;
/// How many pages a use case reads at most when it needs "all" of something (reports, exports):
/// a bound on work per request.
const MAX_SCAN_PAGES: usize = 500;

/// A signed-in session: what login, register and refresh return.
#[derive(Debug, Clone)]
pub struct Session {
    /// Bearer token for API calls.
    pub access_token: String,
    /// Single-use token for a new pair.
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// The account.
    pub user: User,
}

/// A new customer account.
#[derive(Debug, Clone, Default)]
pub struct NewAccount {
    /// Login e-mail.
    pub email: String,
    /// At least 8 characters.
    pub password: String,
    /// Display name.
    pub full_name: String,
    /// Contact number.
    pub phone: Option<String>,
}

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
    /// Webhook secret; `Some(None)` removes it.
    pub woocommerce_webhook_secret: Option<Option<String>>,
    /// Admins only.
    pub is_active: Option<bool>,
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

/// A pharmacy's live fleet: what its dashboard shows first.
#[derive(Debug, Clone)]
pub struct LiveFleet {
    /// All its drivers with positions.
    pub drivers: Vec<Driver>,
    /// Its orders not yet in a terminal status, newest first.
    pub active_orders: Vec<Order>,
}

/// Where the service's dependencies come from.
pub struct Ports {
    /// The database.
    pub store: Arc<dyn Store>,
    /// Where events go.
    pub bus: Arc<dyn EventBus>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Ids, tokens and order numbers.
    pub entropy: Arc<dyn Entropy>,
    /// Password hashing.
    pub hasher: Arc<dyn PasswordHasher>,
    /// Token signing.
    pub tokens: TokenKeys,
}

/// The MedEx application service.
pub struct MedEx {
    store: Arc<dyn Store>,
    bus: Arc<dyn EventBus>,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
    hasher: Arc<dyn PasswordHasher>,
    tokens: TokenKeys,
    config: RwLock<Arc<SystemConfig>>,
    /// Set while a configuration change is being saved; a second change meanwhile conflicts.
    config_saving: AtomicBool,
    /// A real hash of a random password, verified against when an e-mail is unknown so that
    /// login takes as long for unknown accounts as for wrong passwords.
    decoy_hash: String,
}

// ---------------------------------------------------------------------------------------------
// Validation helpers: every message names the field as the client sent it.

fn text(errors: &mut Vec<FieldError>, field: &str, value: &str, max: usize) -> String {
    let value = value.trim();
    if value.is_empty() {
        errors.push(FieldError::new(field, "must not be empty"));
    } else if value.chars().count() > max {
        errors.push(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    } else if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        errors.push(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    value.to_owned()
}

fn optional_text(
    errors: &mut Vec<FieldError>,
    field: &str,
    value: Option<&str>,
    max: usize,
) -> Option<String> {
    let value = value.map(str::trim).filter(|v| !v.is_empty())?;
    Some(text(errors, field, value, max))
}

fn email(errors: &mut Vec<FieldError>, field: &str, value: &str) -> Option<Email> {
    match Email::parse(value) {
        Ok(email) => Some(email),
        Err(e) => {
            errors.push(FieldError::new(field, e.to_string()));
            None
        }
    }
}

fn password(errors: &mut Vec<FieldError>, value: &str) {
    let length = value.chars().count();
    if !(8..=128).contains(&length) {
        errors.push(FieldError::new(
            "password",
            "must be between 8 and 128 characters",
        ));
    }
}

fn coordinates(
    errors: &mut Vec<FieldError>,
    prefix: &str,
    latitude: f64,
    longitude: f64,
) -> Option<Coordinates> {
    match Coordinates::new(latitude, longitude) {
        Ok(c) => Some(c),
        Err(e) => {
            let which = if e == crate::error::ValueError::Latitude {
                "latitude"
            } else {
                "longitude"
            };
            errors.push(FieldError::new(format!("{prefix}{which}"), e.to_string()));
            None
        }
    }
}

fn items(errors: &mut Vec<FieldError>, items: &[NewItem]) -> Vec<OrderItem> {
    if items.is_empty() || items.len() > 100 {
        errors.push(FieldError::new(
            "items",
            "must have between 1 and 100 items",
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            if !(1..=1000).contains(&item.quantity) {
                errors.push(FieldError::new(
                    format!("items[{i}].quantity"),
                    "must be between 1 and 1000",
                ));
            }
            OrderItem {
                name: text(errors, &format!("items[{i}].name"), &item.name, 200),
                quantity: item.quantity.clamp(1, 1000) as u32,
                notes: optional_text(
                    errors,
                    &format!("items[{i}].notes"),
                    item.notes.as_deref(),
                    500,
                ),
            }
        })
        .collect()
}

fn done(errors: Vec<FieldError>) -> Result<()> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid(errors))
    }
}

fn clamp_page<C>(page: Page<C>) -> Page<C> {
    Page {
        limit: page.limit.clamp(1, MAX_PAGE),
        after: page.after,
    }
}

fn bump<T>(record: &mut T, version: impl FnOnce(&mut T) -> &mut u64) {
    *version(record) += 1;
}

/// Where reports start looking for orders: a week before `at` (orders placed that long before a
/// day can still be delivered on it), or the first instant there is.
fn week_before(at: DateTime<Utc>) -> DateTime<Utc> {
    at.checked_sub_signed(Duration::days(7))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn is_active_order(order: &Order) -> bool {
    !order.status.is_terminal()
}

impl MedEx {
    /// Builds the service and loads the persisted system configuration, falling back to
    /// `initial_config` (from the environment) on first start.
    pub async fn new(ports: Ports, initial_config: SystemConfig) -> Result<Self> {
        initial_config.validate()?;
        let config = match ports.store.system_config().await? {
            Some(saved) => saved,
            None => initial_config,
        };
        let mut decoy = [0u8; 16];
        ports.entropy.fill(&mut decoy);
        let decoy_hash = ports.hasher.hash(format!("{decoy:?}")).await;
        Ok(Self {
            store: ports.store,
            bus: ports.bus,
            clock: ports.clock,
            entropy: ports.entropy,
            hasher: ports.hasher,
            tokens: ports.tokens,
            config: RwLock::new(Arc::new(config)),
            config_saving: AtomicBool::new(false),
            decoy_hash,
        })
    }

    /// The store, for health checks and shutdown.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The clock in use.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<SystemConfig> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn new_id(&self) -> uuid::Uuid {
        self.entropy.uuid(self.clock.now())
    }

    async fn commit(&self, writes: Vec<Write>) -> Result<()> {
        Ok(self.store.commit(writes).await?)
    }

    // -----------------------------------------------------------------------------------------
    // Authentication

    async fn session(&self, user: User) -> Result<Session> {
        let now = self.clock.now();
        let (access_token, _) = self.tokens.issue(
            user.id,
            user.role,
            TokenType::Access,
            self.entropy.token(),
            now,
        );
        let (refresh_token, claims) = self.tokens.issue(
            user.id,
            user.role,
            TokenType::Refresh,
            self.entropy.token(),
            now,
        );
        let expires_at = DateTime::from_timestamp(claims.exp, 0).unwrap_or(now);
        self.store
            .put_refresh_session(RefreshSession {
                id: claims.jti,
                user_id: user.id,
                expires_at,
            })
            .await?;
        Ok(Session {
            access_token,
            refresh_token,
            expires_in: self.tokens.lifetimes().access.num_seconds(),
            user,
        })
    }

    /// Who holds this access token. Inactive or deleted accounts fail at once, whatever the
    /// token's expiry.
    pub async fn authenticate(&self, access_token: &str) -> Result<Actor> {
        let claims = self
            .tokens
            .verify(access_token, TokenType::Access, self.clock.now())
            .map_err(Error::Unauthenticated)?;
        let user = self
            .store
            .user(claims.sub)
            .await?
            .ok_or(Error::Unauthenticated(AuthFailure::InvalidToken))?;
        if !user.is_active {
            return Err(Error::Unauthenticated(AuthFailure::Deactivated));
        }
        Ok(Actor::of(&user))
    }

    async fn new_user(
        &self,
        errors: &mut Vec<FieldError>,
        account: &NewAccount,
        role: Role,
    ) -> Option<(User, String)> {
        let email = email(errors, "email", &account.email);
        password(errors, &account.password);
        let full_name = text(errors, "full_name", &account.full_name, 200);
        let phone = optional_text(errors, "phone", account.phone.as_deref(), 40);
        let email = email?;
        if !errors.is_empty() {
            return None;
        }
        let now = self.clock.now();
        let user = User {
            id: UserId::from_uuid(self.new_id()),
            email,
            full_name,
            phone,
            role,
            is_active: true,
            password_hash: String::new(),
            vendor_id: None,
            driver_id: None,
            created_at: now,
            updated_at: now,
            version: 1,
        };
        Some((user, account.password.clone()))
    }

    async fn hashed(&self, (mut user, password): (User, String)) -> User {
        user.password_hash = self.hasher.hash(password).await;
        user
    }

    /// Creates a customer account and signs it in. Only customers register themselves.
    pub async fn register_customer(&self, account: NewAccount) -> Result<Session> {
        let mut errors = Vec::new();
        let pending = self.new_user(&mut errors, &account, Role::User).await;
        done(errors)?;
        let user = self
            .hashed(pending.ok_or(Error::invalid("email", "invalid"))?)
            .await;
        self.commit(vec![Write::User(user.clone())]).await?;
        self.session(user).await
    }

    /// Signs in with e-mail and password.
    pub async fn login(&self, email: &str, password: &str) -> Result<Session> {
        let user = match Email::parse(email) {
            Ok(email) => self.store.user_by_email(email.as_str()).await?,
            Err(_) => None,
        };
        let hash = user
            .as_ref()
            .map_or_else(|| self.decoy_hash.clone(), |u| u.password_hash.clone());
        let matches = self.hasher.verify(password.to_owned(), hash).await;
        match user {
            Some(user) if matches && user.is_active => self.session(user).await,
            Some(user) if matches && !user.is_active => {
                Err(Error::Unauthenticated(AuthFailure::Deactivated))
            }
            _ => Err(Error::Unauthenticated(AuthFailure::BadCredentials)),
        }
    }

    /// Trades a refresh token for a new pair. The old refresh token stops working.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Session> {
        let claims = self
            .tokens
            .verify(refresh_token, TokenType::Refresh, self.clock.now())
            .map_err(Error::Unauthenticated)?;
        let live = self.store.take_refresh_session(&claims.jti).await?;
        if live.is_none_or(|s| s.user_id != claims.sub) {
            return Err(Error::Unauthenticated(AuthFailure::Revoked));
        }
        let user = self
            .store
            .user(claims.sub)
            .await?
            .ok_or(Error::Unauthenticated(AuthFailure::InvalidToken))?;
        if !user.is_active {
            return Err(Error::Unauthenticated(AuthFailure::Deactivated));
        }
        self.session(user).await
    }

    /// Revokes a refresh token. Revoking one already revoked is not an error.
    pub async fn logout(&self, refresh_token: &str) -> Result<()> {
        let claims = self
            .tokens
            .verify(refresh_token, TokenType::Refresh, self.clock.now())
            .map_err(Error::Unauthenticated)?;
        self.store.take_refresh_session(&claims.jti).await?;
        Ok(())
    }

    /// The actor's own account.
    pub async fn me(&self, actor: &Actor) -> Result<User> {
        self.store.user(actor.user_id).await?.ok_or(Error::NotFound)
    }

    /// Creates an admin account. For operators (first start, command line), not for the API.
    pub async fn create_admin(&self, email: &str, password: &str, full_name: &str) -> Result<User> {
        let mut errors = Vec::new();
        let account = NewAccount {
            email: email.into(),
            password: password.into(),
            full_name: full_name.into(),
            phone: None,
        };
        let pending = self.new_user(&mut errors, &account, Role::Admin).await;
        done(errors)?;
        let user = self
            .hashed(pending.ok_or(Error::invalid("email", "invalid"))?)
            .await;
        self.commit(vec![Write::User(user.clone())]).await?;
        Ok(user)
    }

    /// Creates the first admin unless an admin exists already. Returns the new account, if any.
    pub async fn ensure_admin(&self, email: &str, password: &str) -> Result<Option<User>> {
        let query = UserQuery {
            role: Some(Role::Admin),
            is_active: None,
        };
        if !self.store.users(&query, Page::first(1)).await?.is_empty() {
            return Ok(None);
        }
        self.create_admin(email, password, "Administrator")
            .await
            .map(Some)
    }

    // -----------------------------------------------------------------------------------------
    // Vendors

    /// Registers a pharmacy with its owner account (anyone may).
    pub async fn register_vendor(&self, new: NewVendor) -> Result<(Vendor, User)> {
        let mut errors = Vec::new();
        let business_name = text(&mut errors, "business_name", &new.business_name, 200);
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
        let address = text(&mut errors, "address", &new.address, 500);
        let location = coordinates(&mut errors, "", new.latitude, new.longitude);
        done(errors)?;
        let (Some(pending), Some(location)) = (pending, location) else {
            return Err(Error::invalid("email", "invalid"));
        };
        let mut user = self.hashed(pending).await;
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

    async fn load_vendor(&self, id: VendorId) -> Result<Vendor> {
        self.store.vendor(id).await?.ok_or(Error::NotFound)
    }

    /// Pharmacies: active ones for everyone, all of them for admins.
    pub async fn list_vendors(&self, actor: &Actor, page: Page<VendorId>) -> Result<Vec<Vendor>> {
        let page = clamp_page(page);
        let mut found = Vec::new();
        let mut after = page.after;
        for _ in 0..MAX_SCAN_PAGES {
            let batch = self
                .store
                .vendors(Page {
                    limit: page.limit,
                    after,
                })
                .await?;
            let exhausted = batch.len() < page.limit;
            after = batch.last().map(|v| v.id);
            found.extend(
                batch
                    .into_iter()
                    .filter(|v| access(actor, Permission::ViewVendor(v)) == Access::Granted),
            );
            if exhausted || found.len() >= page.limit {
                break;
            }
        }
        found.truncate(page.limit);
        Ok(found)
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
        let mut errors = Vec::new();
        if let Some(name) = &patch.business_name {
            vendor.business_name = text(&mut errors, "business_name", name, 200);
        }
        if let Some(phone) = &patch.phone {
            vendor.phone = optional_text(&mut errors, "phone", Some(phone), 40);
        }
        if let Some(address) = &patch.address {
            vendor.address = text(&mut errors, "address", address, 500);
        }
        if let Some((lat, lon)) = patch.location
            && let Some(location) = coordinates(&mut errors, "", lat, lon)
        {
            vendor.location = location;
        }
        if let Some(secret) = &patch.woocommerce_webhook_secret {
            vendor.woocommerce_webhook_secret = match secret.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(s) if s.len() < 16 || s.len() > 256 => {
                    errors.push(FieldError::new(
                        "woocommerce_webhook_secret",
                        "must be 16 to 256 characters",
                    ));
                    None
                }
                Some(s) => Some(s.to_owned()),
            };
        }
        done(errors)?;
        vendor.require_proof_photo = patch
            .require_proof_photo
            .unwrap_or(vendor.require_proof_photo);
        vendor.require_signature = patch.require_signature.unwrap_or(vendor.require_signature);
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

    async fn all_orders(&self, query: &OrderQuery) -> Result<Vec<Order>> {
        let mut all = Vec::new();
        let mut after = None;
        for _ in 0..MAX_SCAN_PAGES {
            let batch = self
                .store
                .orders(
                    query,
                    Page {
                        limit: MAX_PAGE,
                        after,
                    },
                )
                .await?;
            let exhausted = batch.len() < MAX_PAGE;
            after = batch.last().map(|o| o.id);
            all.extend(batch);
            if exhausted {
                break;
            }
        }
        Ok(all)
    }

    async fn all_drivers(&self, vendor: VendorId) -> Result<Vec<Driver>> {
        let query = DriverQuery {
            vendor_id: Some(vendor),
            status: None,
        };
        let mut all = Vec::new();
        let mut after = None;
        for _ in 0..MAX_SCAN_PAGES {
            let batch = self
                .store
                .drivers(
                    &query,
                    Page {
                        limit: MAX_PAGE,
                        after,
                    },
                )
                .await?;
            let exhausted = batch.len() < MAX_PAGE;
            after = batch.last().map(|d| d.id);
            all.extend(batch);
            if exhausted {
                break;
            }
        }
        Ok(all)
    }

    /// A pharmacy's orders created in `[from, to)` as CSV.
    pub async fn export_orders_csv(
        &self,
        actor: &Actor,
        vendor: VendorId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<String> {
        access(actor, Permission::ManageVendor(vendor)).require()?;
        self.load_vendor(vendor).await?;
        if from >= to || to - from > Duration::days(366) {
            return Err(Error::invalid(
                "to",
                "must be after from, at most 366 days later",
            ));
        }
        let query = OrderQuery {
            vendor_id: Some(vendor),
            created_from: Some(from),
            created_before: Some(to),
            ..Default::default()
        };
        let mut orders = self.all_orders(&query).await?;
        orders.reverse(); // oldest first reads naturally in a spreadsheet
        Ok(reports::orders_csv(&orders))
    }

    /// The daily report of a pharmacy for a local date. Orders placed up to a week before the day
    /// are considered, so deliveries that took longer than that do not count.
    pub async fn vendor_daily_report(
        &self,
        actor: &Actor,
        vendor: VendorId,
        date: NaiveDate,
        offset: FixedOffset,
    ) -> Result<VendorDailyReport> {
        access(actor, Permission::ManageVendor(vendor)).require()?;
        self.load_vendor(vendor).await?;
        let (start, end) = reports::day_bounds(date, offset);
        let query = OrderQuery {
            vendor_id: Some(vendor),
            created_from: Some(week_before(start)),
            created_before: Some(end),
            ..Default::default()
        };
        let orders = self.all_orders(&query).await?;
        let drivers = self.all_drivers(vendor).await?;
        Ok(reports::vendor_daily(&orders, &drivers, date, offset))
    }

    /// Per-driver statistics of a pharmacy's fleet over local dates `from..=to`.
    pub async fn driver_statistics(
        &self,
        actor: &Actor,
        vendor: VendorId,
        from: NaiveDate,
        to: NaiveDate,
        offset: FixedOffset,
    ) -> Result<Vec<reports::DriverFigures>> {
        access(actor, Permission::ManageVendor(vendor)).require()?;
        self.load_vendor(vendor).await?;
        if from > to || (to - from).num_days() > 366 {
            return Err(Error::invalid(
                "to",
                "must not be before from, at most 366 days later",
            ));
        }
        let bounds = reports::days_bounds(from, to, offset);
        let query = OrderQuery {
            vendor_id: Some(vendor),
            created_from: Some(week_before(bounds.0)),
            created_before: Some(bounds.1),
            ..Default::default()
        };
        let orders = self.all_orders(&query).await?;
        let drivers = self.all_drivers(vendor).await?;
        Ok(reports::driver_figures(&orders, &drivers, bounds))
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

    // -----------------------------------------------------------------------------------------
    // Drivers

    /// Adds a driver (and its login) to a fleet.
    pub async fn register_driver(&self, actor: &Actor, new: NewDriver) -> Result<(Driver, User)> {
        let vendor_id = match (actor.role, new.vendor_id, actor.vendor_id) {
            (Role::Vendor, Some(asked), Some(own)) if asked != own => return Err(Error::NotFound),
            (Role::Vendor, _, Some(own)) => own,
            (Role::Admin, Some(asked), _) => asked,
            (Role::Admin, None, _) => {
                return Err(Error::invalid("vendor_id", "an admin must name the fleet"));
            }
            _ => return Err(Error::Forbidden),
        };
        access(actor, Permission::RegisterDriver(vendor_id)).require()?;
        let mut errors = Vec::new();
        let account = NewAccount {
            email: new.email.clone(),
            password: new.password.clone(),
            full_name: new.full_name.clone(),
            phone: new.phone.clone(),
        };
        let pending = self.new_user(&mut errors, &account, Role::Driver).await;
        let vehicle_number = optional_text(
            &mut errors,
            "vehicle_number",
            new.vehicle_number.as_deref(),
            40,
        );
        let license_number = optional_text(
            &mut errors,
            "license_number",
            new.license_number.as_deref(),
            60,
        );
        done(errors)?;
        let mut vendor = self
            .load_vendor(vendor_id)
            .await
            .map_err(|_| Error::invalid("vendor_id", "no such pharmacy"))?;
        let mut user = self
            .hashed(pending.ok_or(Error::invalid("email", "invalid"))?)
            .await;
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

    async fn load_driver(&self, id: DriverId) -> Result<Driver> {
        self.store.driver(id).await?.ok_or(Error::NotFound)
    }

    /// Drivers: a vendor's own fleet, or any fleet for admins.
    pub async fn list_drivers(
        &self,
        actor: &Actor,
        mut query: DriverQuery,
        page: Page<DriverId>,
    ) -> Result<Vec<Driver>> {
        if actor.role == Role::Vendor {
            query.vendor_id = Some(
                query
                    .vendor_id
                    .or(actor.vendor_id)
                    .ok_or(Error::Forbidden)?,
            );
        }
        access(actor, Permission::ListDrivers(query.vendor_id)).require()?;
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
        if patch.is_active.is_some() && actor.role == Role::Driver {
            return Err(Error::Forbidden);
        }
        let mut errors = Vec::new();
        if let Some(name) = &patch.full_name {
            driver.full_name = text(&mut errors, "full_name", name, 200);
        }
        if let Some(phone) = &patch.phone {
            driver.phone = optional_text(&mut errors, "phone", Some(phone), 40);
        }
        if let Some(number) = &patch.vehicle_number {
            driver.vehicle_number = optional_text(&mut errors, "vehicle_number", Some(number), 40);
        }
        if let Some(number) = &patch.license_number {
            driver.license_number = optional_text(&mut errors, "license_number", Some(number), 60);
        }
        done(errors)?;
        driver.vehicle_type = patch.vehicle_type.unwrap_or(driver.vehicle_type);
        if let Some(active) = patch.is_active {
            if !active && driver.active_order_id.is_some() {
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
        if driver.active_order_id.is_some() {
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

    /// Records a position from the driver's device: validates it, appends it to the trail,
    /// computes the ETA of the order the driver is on, and publishes it.
    pub async fn record_location(
        &self,
        actor: &Actor,
        driver_id: DriverId,
        input: FixInput,
    ) -> Result<Arc<DriverLocation>> {
        // Cheap checks first: this runs for every fix of every driver.
        if !actor.is_driver(driver_id) && !actor.is_admin() {
            let driver = self.load_driver(driver_id).await?;
            access(actor, Permission::ReportLocation(&driver)).require()?;
        }
        let mut errors = Vec::new();
        coordinates(&mut errors, "", input.latitude, input.longitude);
        let in_range =
            |v: Option<f64>, max: f64| v.is_none_or(|v| v.is_finite() && (0.0..=max).contains(&v));
        if !in_range(input.speed, 400.0) {
            errors.push(FieldError::new("speed", "must be between 0 and 400 km/h"));
        }
        if !in_range(input.heading, 360.0) {
            errors.push(FieldError::new(
                "heading",
                "must be between 0 and 360 degrees",
            ));
        }
        if !in_range(input.accuracy, 100_000.0) {
            errors.push(FieldError::new(
                "accuracy",
                "must be between 0 and 100000 metres",
            ));
        }
        done(errors)?;
        let driver = self.load_driver(driver_id).await?;
        if !driver.is_active {
            return Err(Error::Forbidden);
        }
        let now = self.clock.now();
        // Devices' clocks drift: a time from the future or from long ago is replaced by ours.
        let recorded_at = input
            .recorded_at
            .filter(|t| *t <= now + Duration::seconds(30) && *t >= now - Duration::hours(1))
            .unwrap_or(now);
        let fix = LocationFix {
            driver_id,
            latitude: input.latitude,
            longitude: input.longitude,
            speed: input.speed,
            heading: input.heading,
            accuracy: input.accuracy,
            recorded_at,
        };
        self.store.append_fixes(&[fix]).await?;
        let order = match driver.active_order_id {
            Some(id) => self.store.order(id).await?.filter(is_active_order),
            None => None,
        };
        let here = fix.coordinates();
        let eta = match (&order, here) {
            (Some(order), Some(here)) => {
                routing::eta_minutes(order, here, driver.vehicle_type, &self.config())
            }
            _ => None,
        };
        let location = Arc::new(DriverLocation {
            driver_id,
            vendor_id: driver.vendor_id,
            fix,
            order_id: order.as_ref().map(|o| o.id),
            tracking_token: order.as_ref().map(|o| o.tracking_token.clone()),
            order_status: order.as_ref().map(|o| o.status),
            eta_minutes: eta.map(|m| (m * 10.0).round() / 10.0),
        });
        self.bus.publish(Event::DriverLocation(location.clone()));
        Ok(location)
    }

    /// A driver's earnings over local dates `from..=to`.
    pub async fn driver_earnings(
        &self,
        actor: &Actor,
        id: DriverId,
        from: NaiveDate,
        to: NaiveDate,
        offset: FixedOffset,
    ) -> Result<Earnings> {
        let driver = self.get_driver(actor, id).await?;
        if from > to || (to - from).num_days() > 366 {
            return Err(Error::invalid(
                "to",
                "must not be before from, at most 366 days later",
            ));
        }
        let bounds = reports::days_bounds(from, to, offset);
        let query = OrderQuery {
            driver_id: Some(driver.id),
            status: Some(OrderStatus::Delivered),
            created_from: Some(week_before(bounds.0)),
            created_before: Some(bounds.1),
            ..Default::default()
        };
        let orders = self.all_orders(&query).await?;
        Ok(reports::earnings(&orders, bounds, offset))
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

    // -----------------------------------------------------------------------------------------
    // Orders

    async fn insert_order(&self, mut order: Order) -> Result<Order> {
        // Order numbers and tracking tokens are random; on the rare collision, draw again.
        for _ in 0..5 {
            match self.store.commit(vec![Write::Order(order.clone())]).await {
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

    fn draft_order(
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
        Order {
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
            accepted_at: None,
            driver_accepted_at: None,
            picked_up_at: None,
            out_for_delivery_at: None,
            delivered_at: None,
            cancelled_at: None,
            cancel_reason: None,
            reject_reason: None,
            status_history: vec![StatusChange {
                status: OrderStatus::Pending,
                at: now,
                actor_id: placed_by.actor_id,
                actor_role: placed_by.actor_role,
                reason: None,
            }],
            external_ref: None,
            created_at: now,
            updated_at: now,
            version: 1,
        }
    }

    /// Places an order. Pickup comes from the pharmacy; distance, fee, number and tracking token
    /// are computed here.
    pub async fn create_order(&self, actor: &Actor, new: NewOrder) -> Result<Order> {
        access(actor, Permission::CreateOrder).require()?;
        let mut errors = Vec::new();
        let delivery_address = text(&mut errors, "delivery_address", &new.delivery_address, 500);
        let destination = coordinates(
            &mut errors,
            "delivery_",
            new.delivery_latitude,
            new.delivery_longitude,
        );
        let customer_name = text(&mut errors, "customer_name", &new.customer_name, 200);
        let customer_phone = text(&mut errors, "customer_phone", &new.customer_phone, 40);
        let items = items(&mut errors, &new.items);
        let notes = optional_text(&mut errors, "notes", new.notes.as_deref(), 2000);
        let vendor = self
            .store
            .vendor(new.vendor_id)
            .await?
            .filter(|v| v.is_active);
        if vendor.is_none() {
            errors.push(FieldError::new("vendor_id", "no such pharmacy"));
        }
        done(errors)?;
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
            .order_by_external_ref(vendor.id, &new.source, &new.external_id)
            .await?
        {
            return Ok((existing, false));
        }
        let mut errors = Vec::new();
        let external_id = text(&mut errors, "id", &new.external_id, 100);
        let customer_name = text(&mut errors, "customer_name", &new.customer_name, 200);
        let customer_phone =
            optional_text(&mut errors, "customer_phone", Some(&new.customer_phone), 40)
                .unwrap_or_default();
        let delivery_address = text(&mut errors, "delivery_address", &new.delivery_address, 500);
        let items = items(&mut errors, &new.items);
        let notes = optional_text(&mut errors, "notes", new.notes.as_deref(), 2000);
        done(errors)?;
        let by = Signature {
            actor_id: vendor.user_id,
            actor_role: Role::Vendor,
        };
        let mut order = self.draft_order(&vendor, by, new.delivery);
        order.delivery_address = delivery_address;
        order.customer_name = customer_name;
        order.customer_phone = customer_phone;
        order.items = items;
        order.notes = notes;
        order.external_ref = Some(ExternalRef {
            source: new.source.clone(),
            id: external_id,
        });
        match self.insert_order(order).await {
            Ok(order) => Ok((order, true)),
            // A concurrent delivery of the same webhook got there first.
            Err(Error::Storage(StoreError::Duplicate(UniqueKey::ExternalOrder))) => {
                let existing = self
                    .store
                    .order_by_external_ref(vendor.id, &new.source, &new.external_id)
                    .await?;
                existing
                    .map(|o| (o, false))
                    .ok_or(Error::Conflict(Conflict::ConcurrentUpdate))
            }
            Err(e) => Err(e),
        }
    }

    async fn load_order(&self, actor: &Actor, id: OrderId) -> Result<Order> {
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
        mut query: OrderQuery,
        page: Page<OrderId>,
    ) -> Result<Vec<Order>> {
        /// The actor's own id when it asked for none or for its own; `None` when it asked for
        /// someone else's.
        fn own<T: PartialEq + Copy>(asked: Option<T>, own: Option<T>) -> Option<T> {
            match asked {
                Some(asked) if Some(asked) != own => None,
                _ => own,
            }
        }
        let scoped = match actor.role {
            Role::Admin => true,
            Role::Vendor => {
                query.vendor_id = own(query.vendor_id, actor.vendor_id);
                query.vendor_id.is_some()
            }
            Role::Driver => {
                query.driver_id = own(query.driver_id, actor.driver_id);
                query.driver_id.is_some()
            }
            Role::User => {
                query.user_id = Some(actor.user_id);
                true
            }
        };
        // Asking for someone else's orders finds none, as if they did not exist.
        if !scoped {
            return Ok(vec![]);
        }
        Ok(self.store.orders(&query, clamp_page(page)).await?)
    }

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

    /// Sets the destination of a pending order that arrived without one (external shops).
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
        let mut errors = Vec::new();
        let destination = coordinates(&mut errors, "delivery_", latitude, longitude);
        let address = optional_text(&mut errors, "delivery_address", address.as_deref(), 500);
        done(errors)?;
        let destination = destination.ok_or(Error::NotFound)?;
        let vendor = self.load_vendor(order.vendor_id).await?;
        let km = (routing::distance_km(vendor.location, destination) * 100.0).round() / 100.0;
        let mut next = order;
        if let Some(address) = address {
            next.delivery_address = address;
        }
        next.delivery_latitude = Some(destination.latitude());
        next.delivery_longitude = Some(destination.longitude());
        next.estimated_distance_km = Some(km);
        next.delivery_fee = self.config().tariff.fee(km);
        next.updated_at = self.clock.now().max(next.updated_at);
        bump(&mut next, |o| &mut o.version);
        self.commit(vec![Write::Order(next.clone())]).await?;
        Ok(next)
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

    fn signature(&self, actor: &Actor) -> Signature {
        Signature {
            actor_id: actor.user_id,
            actor_role: actor.role,
        }
    }

    fn rule(
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
    async fn release(
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

    fn publish_driver_status(&self, driver: &Driver) {
        self.bus.publish(Event::DriverStatusChanged {
            driver_id: driver.id,
            vendor_id: driver.vendor_id,
            status: driver.status,
        });
    }

    /// Every lifecycle move except assignment: decide, apply, update the driver, commit, publish.
    async fn perform(
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

    // -----------------------------------------------------------------------------------------
    // Public tracking

    /// The public view of an order by its tracking token. `with_trail` adds the driver's recent
    /// path while the order is on its way (for maps; costs a trail read).
    pub async fn tracking_view(&self, token: &str, with_trail: bool) -> Result<TrackingView> {
        // Tokens are 22 characters; anything else cannot match and is not worth a lookup.
        if token.is_empty() || token.len() > 64 {
            return Err(Error::NotFound);
        }
        let order = self
            .store
            .order_by_tracking_token(token)
            .await?
            .ok_or(Error::NotFound)?;
        let vendor = self.store.vendor(order.vendor_id).await?;
        let driver = match order.driver_id {
            Some(id) if order.status.has_driver_at_work() => self.store.driver(id).await?,
            _ => None,
        };
        let mut view = TrackingView::new(&order, vendor.as_ref(), driver.as_ref(), &self.config());
        if with_trail
            && let (Some(driver), Some(at)) = (&driver, order.entered(OrderStatus::DriverAssigned))
        {
            let now = self.clock.now();
            let from = at.max(now - Duration::hours(2));
            let trail = self
                .store
                .trail(driver.id, from, now + Duration::seconds(1), 2000)
                .await?;
            view.set_trail(&trail);
        }
        Ok(view)
    }

    // -----------------------------------------------------------------------------------------
    // Administration

    /// All accounts (admins only).
    pub async fn list_users(
        &self,
        actor: &Actor,
        query: UserQuery,
        page: Page<UserId>,
    ) -> Result<Vec<User>> {
        access(actor, Permission::Administer).require()?;
        Ok(self.store.users(&query, clamp_page(page)).await?)
    }

    /// Activates or deactivates an account (admins only). A deactivated account's tokens stop
    /// working on their next use.
    pub async fn set_user_active(&self, actor: &Actor, id: UserId, active: bool) -> Result<User> {
        access(actor, Permission::Administer).require()?;
        if id == actor.user_id && !active {
            return Err(Error::invalid(
                "is_active",
                "an admin cannot deactivate itself",
            ));
        }
        let mut user = self.store.user(id).await?.ok_or(Error::NotFound)?;
        if user.is_active == active {
            return Ok(user);
        }
        user.is_active = active;
        user.updated_at = self.clock.now();
        bump(&mut user, |u| &mut u.version);
        self.commit(vec![Write::User(user.clone())]).await?;
        Ok(user)
    }

    /// The configuration in force (admins only).
    pub fn system_config(&self, actor: &Actor) -> Result<Arc<SystemConfig>> {
        access(actor, Permission::Administer).require()?;
        Ok(self.config())
    }

    /// Replaces the configuration (admins only), persisting it first. Conflicts with a change
    /// being saved at the same time, as [`MedEx::update_system_config_from`].
    pub async fn update_system_config(
        &self,
        actor: &Actor,
        config: SystemConfig,
    ) -> Result<Arc<SystemConfig>> {
        let base = self.config();
        self.update_system_config_from(actor, &base, config).await
    }

    /// Replaces `base`, the configuration the caller read and derived `config` from (a merge
    /// patch, say), persisting it first (admins only). If the configuration changed since
    /// `base` was read, or another change is being saved, nothing is written and the answer is
    /// [`Conflict::ConcurrentUpdate`]: of two changes at once one wins and the other is retried,
    /// instead of one silently undoing the other.
    pub async fn update_system_config_from(
        &self,
        actor: &Actor,
        base: &Arc<SystemConfig>,
        config: SystemConfig,
    ) -> Result<Arc<SystemConfig>> {
        /// Clears the flag however the change ends: saved, failed, or abandoned mid-save.
        struct Saving<'a>(&'a AtomicBool);
        impl Drop for Saving<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        access(actor, Permission::Administer).require()?;
        config.validate()?;
        if self.config_saving.swap(true, Ordering::Acquire) {
            return Err(Conflict::ConcurrentUpdate.into());
        }
        let _saving = Saving(&self.config_saving);
        if !Arc::ptr_eq(&self.config(), base) {
            return Err(Conflict::ConcurrentUpdate.into());
        }
        self.store.save_system_config(&config).await?;
        let config = Arc::new(config);
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = config.clone();
        Ok(config)
    }

    /// Whether storage works now.
    pub async fn health(&self) -> Result<()> {
        Ok(self.store.check().await?)
    }
}

#[cfg(test)]
mod tests;
