//! Who may see and do what: the one place that decides. Use cases and transports ask here and
//! translate the answer; no other code branches on an actor's role.
//!
//! Two questions are asked in order. May this *role* ever do this (no: 403)? May this actor
//! touch *this record* (no: 404, so that nobody learns what exists beyond their reach)?
//!
//! A leaf module: it knows the model and nothing above it; its refusals are [`Denial`]s, which the
//! use cases' umbrella error turns into 403 and 404.

use crate::model::{Driver, DriverId, Order, Role, SessionId, User, UserId, Vendor, VendorId};
use crate::store::{DriverQuery, OrderQuery};

/// The authenticated caller of a use case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    /// The account.
    pub user_id: UserId,
    /// Its role.
    pub role: Role,
    /// For vendor accounts: their pharmacy.
    pub vendor_id: Option<VendorId>,
    /// For driver accounts: their driver profile.
    pub driver_id: Option<DriverId>,
    /// The session its token belongs to, when it came with one.
    pub session: Option<SessionId>,
}

impl Actor {
    /// The actor acting as this account.
    pub fn of(user: &User) -> Self {
        Self {
            user_id: user.id,
            role: user.role,
            vendor_id: user.vendor_id,
            driver_id: user.driver_id,
            session: None,
        }
    }

    /// Admins may do everything.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// This actor is staff of `vendor`.
    pub fn is_vendor(&self, vendor: VendorId) -> bool {
        self.role == Role::Vendor && self.vendor_id == Some(vendor)
    }

    /// This actor is the driver `driver`.
    pub fn is_driver(&self, driver: DriverId) -> bool {
        self.role == Role::Driver && self.driver_id == Some(driver)
    }
}

/// The capacities in which someone stands towards one order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Party {
    /// The account that placed it.
    Customer,
    /// Staff of its pharmacy.
    Vendor,
    /// The driver assigned to it now.
    AssignedDriver,
    /// A platform operator.
    Admin,
}

/// A small set of [`Party`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PartySet(u8);

impl PartySet {
    /// No party: the actor has nothing to do with the order.
    pub const NONE: PartySet = PartySet(0);

    fn bit(party: Party) -> u8 {
        match party {
            Party::Customer => 1,
            Party::Vendor => 2,
            Party::AssignedDriver => 4,
            Party::Admin => 8,
        }
    }

    /// The set plus `party`.
    pub fn with(self, party: Party) -> Self {
        PartySet(self.0 | Self::bit(party))
    }

    /// Whether `party` is in the set.
    pub fn contains(&self, party: Party) -> bool {
        self.0 & Self::bit(party) != 0
    }

    /// Whether the actor is no party at all.
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }
}

/// In which capacities `actor` stands towards `order`.
pub fn parties(actor: &Actor, order: &Order) -> PartySet {
    let mut set = PartySet::NONE;
    if actor.is_admin() {
        set = set.with(Party::Admin);
    }
    if actor.is_vendor(order.vendor_id) {
        set = set.with(Party::Vendor);
    }
    if order.status.has_driver_at_work() && order.driver_id.is_some_and(|d| actor.is_driver(d)) {
        set = set.with(Party::AssignedDriver);
    }
    // Only a customer account is "the customer": an admin who placed an order for someone
    // acts as admin.
    if actor.role == Role::User && order.user_id == actor.user_id {
        set = set.with(Party::Customer);
    }
    set
}

/// Something an actor wants to do.
#[derive(Debug, Clone, Copy)]
pub enum Permission<'a> {
    /// Read an order (and its history).
    ViewOrder(&'a Order),
    /// Place an order.
    CreateOrder,
    /// Set the delivery address of an order that arrived without one.
    EditOrderLocation(&'a Order),
    /// Upload proof of delivery for an order.
    UploadProof(&'a Order),
    /// See which drivers could take an order (its pharmacy; admins too).
    SuggestDrivers(&'a Order),
    /// List drivers of a fleet (`None`: all fleets).
    ListDrivers(Option<VendorId>),
    /// Read a driver's profile, earnings and deliveries.
    ViewDriver(&'a Driver),
    /// Change a driver's profile or availability.
    EditDriver(&'a Driver),
    /// Read the stops of a driver's run.
    ViewRun(&'a Driver),
    /// Fix the order of a driver's stops by hand (its pharmacy; admins too).
    ArrangeRun(&'a Driver),
    /// Take a driver out of (or back into) service.
    ChangeDriverActive(&'a Driver),
    /// Report the driver's own position.
    ReportLocation(&'a Driver),
    /// Add a driver to a fleet.
    RegisterDriver(VendorId),
    /// Read a pharmacy's public profile.
    ViewVendor(&'a Vendor),
    /// Run a pharmacy: its orders, reports, exports, profile and live fleet.
    ManageVendor(VendorId),
    /// A pharmacy's API keys and outgoing webhooks (its owner; admins too).
    ManageIntegrations(VendorId),
    /// Activate or deactivate a pharmacy.
    ChangeVendorActive,
    /// Accounts and system configuration.
    Administer,
}

/// The answer for one [`Permission`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Go ahead.
    Granted,
    /// The role may not do this at all (HTTP 403).
    Denied,
    /// The record is out of the actor's reach and must look absent (HTTP 404).
    Hidden,
}

/// A refused [`Permission`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    /// The role may not do this at all (HTTP 403).
    #[error("not allowed")]
    Forbidden,
    /// The record is out of the actor's reach and must look absent (HTTP 404).
    #[error("not found")]
    Hidden,
}

impl Access {
    /// `Ok` when granted, else the refusal.
    pub fn require(self) -> Result<(), Denial> {
        match self {
            Access::Granted => Ok(()),
            Access::Denied => Err(Denial::Forbidden),
            Access::Hidden => Err(Denial::Hidden),
        }
    }
}

fn granted_if(condition: bool, otherwise: Access) -> Access {
    if condition {
        Access::Granted
    } else {
        otherwise
    }
}

/// Decides one permission.
pub fn access(actor: &Actor, permission: Permission<'_>) -> Access {
    use Access::{Denied, Granted, Hidden};
    if actor.is_admin() {
        return Granted;
    }
    match permission {
        // A driver keeps seeing the orders it delivered (its delivery history), not only the
        // one it is working on.
        Permission::ViewOrder(order) => granted_if(
            !parties(actor, order).is_empty()
                || order.driver_id.is_some_and(|d| actor.is_driver(d)),
            Hidden,
        ),
        Permission::CreateOrder => granted_if(actor.role == Role::User, Denied),
        Permission::EditOrderLocation(order) => match actor.role {
            Role::Vendor => granted_if(actor.is_vendor(order.vendor_id), Hidden),
            _ => granted_if(parties(actor, order).is_empty(), Denied).hide_if_granted(),
        },
        Permission::UploadProof(order) => {
            let p = parties(actor, order);
            if p.contains(Party::AssignedDriver) || p.contains(Party::Vendor) {
                Granted
            } else if p.is_empty() {
                Hidden
            } else {
                Denied
            }
        }
        // The order's other parties know it exists: 403. Everyone else must not learn it: 404.
        Permission::SuggestDrivers(order) => {
            if parties(actor, order).contains(Party::Vendor) {
                Granted
            } else {
                match access(actor, Permission::ViewOrder(order)) {
                    Granted => Denied,
                    other => other,
                }
            }
        }
        Permission::ListDrivers(vendor) => match (actor.role, vendor) {
            (Role::Vendor, Some(v)) => granted_if(actor.is_vendor(v), Hidden),
            _ => Denied,
        },
        Permission::ViewDriver(driver)
        | Permission::EditDriver(driver)
        | Permission::ViewRun(driver) => match actor.role {
            Role::Vendor => granted_if(actor.is_vendor(driver.vendor_id), Hidden),
            Role::Driver => granted_if(actor.is_driver(driver.id), Hidden),
            Role::User | Role::Admin => Denied,
        },
        Permission::ChangeDriverActive(driver) | Permission::ArrangeRun(driver) => match actor.role
        {
            Role::Vendor => granted_if(actor.is_vendor(driver.vendor_id), Hidden),
            Role::Driver => granted_if(!actor.is_driver(driver.id), Denied).hide_if_granted(),
            Role::User | Role::Admin => Denied,
        },
        Permission::ReportLocation(driver) => match actor.role {
            Role::Driver => granted_if(actor.is_driver(driver.id), Hidden),
            Role::Vendor => {
                granted_if(!actor.is_vendor(driver.vendor_id), Denied).hide_if_granted()
            }
            _ => Denied,
        },
        Permission::RegisterDriver(vendor)
        | Permission::ManageVendor(vendor)
        | Permission::ManageIntegrations(vendor) => match actor.role {
            Role::Vendor => granted_if(actor.is_vendor(vendor), Hidden),
            _ => Denied,
        },
        Permission::ViewVendor(vendor) => {
            granted_if(vendor.is_active || actor.is_vendor(vendor.id), Hidden)
        }
        Permission::ChangeVendorActive | Permission::Administer => Denied,
    }
}

/// The fleet a new driver joins when `actor` registers one and names `asked` (or none): a vendor's
/// own (naming another pharmacy looks like naming none that exists), the one an admin names.
/// `Ok(None)`: an admin named none, which the caller reports as an invalid field.
pub fn fleet_for_new_driver(
    actor: &Actor,
    asked: Option<VendorId>,
) -> Result<Option<VendorId>, Denial> {
    match (actor.role, asked, actor.vendor_id) {
        (Role::Vendor, Some(asked), Some(own)) if asked != own => Err(Denial::Hidden),
        (Role::Vendor, _, Some(own)) => Ok(Some(own)),
        (Role::Admin, asked, _) => Ok(asked),
        _ => Err(Denial::Forbidden),
    }
}

/// Narrows a driver list to what `actor` may list: a vendor's own fleet unless it named one
/// (which [`Permission::ListDrivers`] then checks).
pub fn scope_driver_query(actor: &Actor, mut query: DriverQuery) -> Result<DriverQuery, Denial> {
    if actor.role == Role::Vendor {
        query.vendor_id = Some(
            query
                .vendor_id
                .or(actor.vendor_id)
                .ok_or(Denial::Forbidden)?,
        );
    }
    access(actor, Permission::ListDrivers(query.vendor_id)).require()?;
    Ok(query)
}

/// Narrows an order list to the orders `actor` may see: a vendor's, a driver's or a customer's
/// own. `None` when the actor asked for someone else's orders: the answer is then an empty list,
/// as if they did not exist.
pub fn scope_order_query(actor: &Actor, mut query: OrderQuery) -> Option<OrderQuery> {
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
    scoped.then_some(query)
}

/// The driver profile an actor connects to the driver socket as: its own; other roles may not.
pub fn own_driver(actor: &Actor) -> Result<DriverId, Denial> {
    match (actor.role, actor.driver_id) {
        (Role::Driver, Some(driver)) => Ok(driver),
        _ => Err(Denial::Forbidden),
    }
}

/// Which fields of an order an actor sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderFields {
    /// Everything, the handover code too: the ordering customer (who tells it to the driver at
    /// the door) and admins.
    WithHandoverCode,
    /// Everything but the handover code: the pharmacy's staff and the driver, who must get it
    /// from the recipient, not from MedEx.
    WithoutHandoverCode,
}

/// Which [`OrderFields`] `actor` sees of `order`. (The pharmacy's own outgoing webhooks act for
/// the shop rather than for an account, and read [`Order::handover_code`] directly.)
pub fn order_fields(actor: &Actor, order: &Order) -> OrderFields {
    let parties = parties(actor, order);
    if parties.contains(Party::Admin) || parties.contains(Party::Customer) {
        OrderFields::WithHandoverCode
    } else {
        OrderFields::WithoutHandoverCode
    }
}

/// How much of a pharmacy's record an actor sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VendorFields {
    /// Everything but secrets: its staff and admins.
    Full,
    /// What customers and drivers need to see.
    Public,
}

/// Which [`VendorFields`] `actor` sees of `vendor`.
pub fn vendor_fields(actor: &Actor, vendor: &Vendor) -> VendorFields {
    if actor.is_admin() || actor.is_vendor(vendor.id) {
        VendorFields::Full
    } else {
        VendorFields::Public
    }
}

impl Access {
    /// For checks phrased as "refuse the parties who could see it (403), hide it from the rest":
    /// turns a `Granted` (meaning "not a party") into `Hidden`.
    fn hide_if_granted(self) -> Access {
        match self {
            Access::Granted => Access::Hidden,
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::conformance::fixtures;
    use crate::model::*;

    fn uuid(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    struct World {
        admin: Actor,
        customer: Actor,
        other_customer: Actor,
        vendor: Actor,
        other_vendor: Actor,
        driver: Actor,
        other_driver: Actor,
        order: Order,
        driver_record: Driver,
        vendor_record: Vendor,
    }

    fn actor(n: u128, role: Role, vendor: Option<u128>, driver: Option<u128>) -> Actor {
        Actor {
            user_id: UserId::from_uuid(uuid(n)),
            role,
            vendor_id: vendor.map(|v| VendorId::from_uuid(uuid(v))),
            driver_id: driver.map(|d| DriverId::from_uuid(uuid(d))),
            session: None,
        }
    }

    fn world(status: OrderStatus) -> World {
        let vendor_id = VendorId::from_uuid(uuid(100));
        let driver_id = DriverId::from_uuid(uuid(200));
        let order = Order {
            driver_id: Some(driver_id),
            status,
            ..fixtures::order(
                OrderId::from_uuid(uuid(300)),
                vendor_id,
                UserId::from_uuid(uuid(2)),
            )
        };
        let driver_record = Driver {
            status: DriverStatus::Busy,
            ..fixtures::driver(driver_id, vendor_id, UserId::from_uuid(uuid(6)))
        };
        let vendor_record = Vendor {
            driver_ids: vec![driver_id],
            is_active: false,
            ..fixtures::vendor(vendor_id, UserId::from_uuid(uuid(4)))
        };
        World {
            admin: actor(1, Role::Admin, None, None),
            customer: actor(2, Role::User, None, None),
            other_customer: actor(3, Role::User, None, None),
            vendor: actor(4, Role::Vendor, Some(100), None),
            other_vendor: actor(5, Role::Vendor, Some(101), None),
            driver: actor(6, Role::Driver, None, Some(200)),
            other_driver: actor(7, Role::Driver, None, Some(201)),
            order,
            driver_record,
            vendor_record,
        }
    }

    fn check(who: &str, actor: &Actor, permission: Permission<'_>, expect: Access) {
        assert_eq!(access(actor, permission), expect, "{who} {permission:?}");
    }

    #[test]
    fn permission_matrix() {
        use Access::{Denied as D, Granted as G, Hidden as H};
        let w = world(OrderStatus::DriverAssigned);
        let o = &w.order;
        let d = &w.driver_record;
        let v = &w.vendor_record;
        let vid = v.id;
        #[rustfmt::skip]
        let rows: Vec<(Permission<'_>, [Access; 7])> = vec![
            //                                  admin cust other vend  ovend drv  odrv
            (Permission::ViewOrder(o),          [G,   G,   H,    G,    H,    G,   H]),
            (Permission::CreateOrder,           [G,   G,   G,    D,    D,    D,   D]),
            (Permission::EditOrderLocation(o),  [G,   D,   H,    G,    H,    D,   H]),
            (Permission::UploadProof(o),        [G,   D,   H,    G,    H,    G,   H]),
            (Permission::SuggestDrivers(o),     [G,   D,   H,    G,    H,    D,   H]),
            (Permission::ListDrivers(Some(vid)),[G,   D,   D,    G,    H,    D,   D]),
            (Permission::ListDrivers(None),     [G,   D,   D,    D,    D,    D,   D]),
            (Permission::ViewDriver(d),         [G,   D,   D,    G,    H,    G,   H]),
            (Permission::EditDriver(d),         [G,   D,   D,    G,    H,    G,   H]),
            (Permission::ChangeDriverActive(d), [G,   D,   D,    G,    H,    D,   H]),
            (Permission::ViewRun(d),            [G,   D,   D,    G,    H,    G,   H]),
            (Permission::ArrangeRun(d),         [G,   D,   D,    G,    H,    D,   H]),
            (Permission::ReportLocation(d),     [G,   D,   D,    D,    H,    G,   H]),
            (Permission::RegisterDriver(vid),   [G,   D,   D,    G,    H,    D,   D]),
            (Permission::ManageVendor(vid),     [G,   D,   D,    G,    H,    D,   D]),
            (Permission::ManageIntegrations(vid),[G,  D,   D,    G,    H,    D,   D]),
            (Permission::ViewVendor(v),         [G,   H,   H,    G,    H,    H,   H]),
            (Permission::ChangeVendorActive,    [G,   D,   D,    D,    D,    D,   D]),
            (Permission::Administer,            [G,   D,   D,    D,    D,    D,   D]),
        ];
        let actors = [
            ("admin", w.admin),
            ("customer", w.customer),
            ("other customer", w.other_customer),
            ("vendor", w.vendor),
            ("other vendor", w.other_vendor),
            ("driver", w.driver),
            ("other driver", w.other_driver),
        ];
        for (permission, expected) in rows {
            for ((who, actor), expect) in actors.iter().zip(expected) {
                check(who, actor, permission, expect);
            }
        }
    }

    #[test]
    fn a_driver_stops_being_a_party_when_the_order_ends_or_moves_on() {
        for status in [
            OrderStatus::Accepted,
            OrderStatus::Delivered,
            OrderStatus::Cancelled,
        ] {
            let w = world(status);
            assert!(
                !parties(&w.driver, &w.order).contains(Party::AssignedDriver),
                "{status:?}"
            );
        }
        let w = world(OrderStatus::OutForDelivery);
        assert!(parties(&w.driver, &w.order).contains(Party::AssignedDriver));
    }

    #[test]
    fn only_the_customer_and_admins_see_the_handover_code() {
        let w = world(OrderStatus::OutForDelivery);
        for (who, actor, expect) in [
            ("admin", w.admin, OrderFields::WithHandoverCode),
            ("customer", w.customer, OrderFields::WithHandoverCode),
            ("vendor", w.vendor, OrderFields::WithoutHandoverCode),
            ("driver", w.driver, OrderFields::WithoutHandoverCode),
            (
                "other customer",
                w.other_customer,
                OrderFields::WithoutHandoverCode,
            ),
        ] {
            assert_eq!(order_fields(&actor, &w.order), expect, "{who}");
        }
    }

    #[test]
    fn a_driver_stays_a_party_to_a_failed_attempt_but_not_after_the_return() {
        let w = world(OrderStatus::Failed);
        assert!(parties(&w.driver, &w.order).contains(Party::AssignedDriver));
        let w = world(OrderStatus::Returned);
        assert!(!parties(&w.driver, &w.order).contains(Party::AssignedDriver));
        assert_eq!(
            access(&w.driver, Permission::ViewOrder(&w.order)),
            Access::Granted,
            "it still reads the order it carried"
        );
    }

    #[test]
    fn active_vendors_are_visible_to_everyone() {
        let mut w = world(OrderStatus::Pending);
        w.vendor_record.is_active = true;
        check(
            "customer",
            &w.customer,
            Permission::ViewVendor(&w.vendor_record),
            Access::Granted,
        );
        check(
            "driver",
            &w.other_driver,
            Permission::ViewVendor(&w.vendor_record),
            Access::Granted,
        );
    }
}
