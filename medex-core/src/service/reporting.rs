//! Reports and exports: a pharmacy's daily report, its drivers' figures, a driver's earnings and the CSV export of orders.

use super::*;
use crate::reports::Period;

/// The orders that may have been delivered within `period`: placed from a week before it to its
/// end (see [`Period::earliest_placement`]).
fn delivered_within(period: Period) -> OrderQuery {
    OrderQuery {
        created_from: Some(period.earliest_placement()),
        created_before: Some(period.end()),
        ..Default::default()
    }
}

impl MedEx {
    pub(super) async fn all_orders(&self, query: &OrderQuery) -> Result<Vec<Order>> {
        let read = |p| self.store.orders(query, p);
        scan(whole(), usize::MAX, read, |o| o.id, |_| true).await
    }

    pub(super) async fn all_drivers(&self, vendor: VendorId) -> Result<Vec<Driver>> {
        let query = DriverQuery {
            vendor_id: Some(vendor),
            status: None,
        };
        let read = |p| self.store.drivers(&query, p);
        scan(whole(), usize::MAX, read, |d| d.id, |_| true).await
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
        let period = Period::between(from, to)?;
        let query = OrderQuery {
            vendor_id: Some(vendor),
            created_from: Some(period.start()),
            created_before: Some(period.end()),
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
        let query = OrderQuery {
            vendor_id: Some(vendor),
            ..delivered_within(Period::local_day(date, offset))
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
        let period = Period::local_days(from, to, offset)?;
        let query = OrderQuery {
            vendor_id: Some(vendor),
            ..delivered_within(period)
        };
        let orders = self.all_orders(&query).await?;
        let drivers = self.all_drivers(vendor).await?;
        Ok(reports::driver_figures(&orders, &drivers, period.bounds()))
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
        let period = Period::local_days(from, to, offset)?;
        let query = OrderQuery {
            driver_id: Some(driver.id),
            status: Some(OrderStatus::Delivered),
            ..delivered_within(period)
        };
        let orders = self.all_orders(&query).await?;
        Ok(reports::earnings(&orders, period.bounds(), offset))
    }
}
