//! Reports: pure functions over orders (and drivers) handed in by the caller, plus their CSV form.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::fields::FieldError;
use crate::model::{Driver, DriverId, FailureReason, Money, Order, OrderStatus};

/// The span a report, a statistic or an export covers: the UTC instants `[start, end)`, at most
/// [`Period::MAX_DAYS`] days long, so that one request cannot ask for unbounded work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl Period {
    /// The longest period a request may ask for.
    pub const MAX_DAYS: i64 = 366;

    /// Local days `from..=to` at `offset`. Refused (naming the field `to`) when `to` is before
    /// `from` or more than [`Period::MAX_DAYS`] days later.
    pub fn local_days(
        from: NaiveDate,
        to: NaiveDate,
        offset: FixedOffset,
    ) -> Result<Self, FieldError> {
        if from > to || (to - from).num_days() > Self::MAX_DAYS {
            return Err(FieldError::new(
                "to",
                "must not be before from, at most 366 days later",
            ));
        }
        let (start, end) = days_bounds(from, to, offset);
        Ok(Self { start, end })
    }

    /// One local day at `offset`.
    pub fn local_day(date: NaiveDate, offset: FixedOffset) -> Self {
        let (start, end) = day_bounds(date, offset);
        Self { start, end }
    }

    /// The instants `[from, to)`. Refused (naming the field `to`) when `to` is not after `from`
    /// or more than [`Period::MAX_DAYS`] days later.
    pub fn between(from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Self, FieldError> {
        if from >= to || to - from > Duration::days(Self::MAX_DAYS) {
            return Err(FieldError::new(
                "to",
                "must be after from, at most 366 days later",
            ));
        }
        Ok(Self {
            start: from,
            end: to,
        })
    }

    /// The first instant.
    pub fn start(&self) -> DateTime<Utc> {
        self.start
    }

    /// The first instant after it.
    pub fn end(&self) -> DateTime<Utc> {
        self.end
    }

    /// `(start, end)`.
    pub fn bounds(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        (self.start, self.end)
    }

    /// Where to start looking for orders that may have been delivered within the period: a week
    /// before it (orders placed that long before can still be delivered in it), or the first
    /// instant there is. Deliveries that took longer than a week do not count.
    pub fn earliest_placement(&self) -> DateTime<Utc> {
        self.start
            .checked_sub_signed(Duration::days(7))
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }
}

/// The UTC instants `[start, end)` of local day `date` at `offset`.
pub fn day_bounds(date: NaiveDate, offset: FixedOffset) -> (DateTime<Utc>, DateTime<Utc>) {
    days_bounds(date, date, offset)
}

/// The UTC instants `[start of from, end of to)` of local days at `offset`. At the ends of
/// chrono's calendar, instants that cannot be represented are clamped to the first or last one.
pub fn days_bounds(
    from: NaiveDate,
    to: NaiveDate,
    offset: FixedOffset,
) -> (DateTime<Utc>, DateTime<Utc>) {
    // With a fixed offset a local midnight is one instant, or none when it falls before the
    // first representable one (the first day, at a positive offset).
    let midnight = |date: NaiveDate| {
        offset
            .from_local_datetime(&date.and_hms_opt(0, 0, 0).unwrap_or_default())
            .single()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    };
    let end = to.succ_opt().map_or(DateTime::<Utc>::MAX_UTC, midnight);
    (midnight(from), end)
}

fn within(at: Option<DateTime<Utc>>, (start, end): (DateTime<Utc>, DateTime<Utc>)) -> bool {
    at.is_some_and(|t| t >= start && t < end)
}

/// One driver's figures over a period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriverFigures {
    /// Whose.
    pub driver_id: DriverId,
    /// Name, when the driver record was at hand.
    pub driver_name: String,
    /// Orders delivered in the period.
    pub deliveries: u64,
    /// Kilometres driven on them (from fixes; estimated distance where no trail was recorded).
    pub distance_km: f64,
    /// Earned on them.
    pub earnings: Money,
    /// Mean minutes from pickup to delivery, when there were deliveries.
    pub average_delivery_minutes: Option<f64>,
    /// Delivery attempts it reported failed in the period.
    pub failed_attempts: u64,
    /// Parcels the pharmacy took back from it in the period.
    pub returns: u64,
}

/// A pharmacy's day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VendorDailyReport {
    /// The local date.
    pub date: NaiveDate,
    /// The UTC offset it was computed in, e.g. `+02:00`.
    pub utc_offset: String,
    /// Orders placed that day.
    pub orders_created: u64,
    /// Orders delivered that day.
    pub orders_delivered: u64,
    /// Orders cancelled that day.
    pub orders_cancelled: u64,
    /// Orders rejected that day.
    pub orders_rejected: u64,
    /// Delivery attempts that failed that day.
    pub failed_attempts: u64,
    /// Parcels that came back to the pharmacy that day.
    pub returns: u64,
    /// Delivery fees of the orders delivered that day.
    pub revenue: Money,
    /// Orders delivered that day that had a `deliver_before` and kept it.
    #[serde(default)]
    pub delivered_on_time: u64,
    /// Orders delivered that day after their `deliver_before`.
    #[serde(default)]
    pub delivered_late: u64,
    /// Per driver who delivered that day, by driver id.
    pub drivers: Vec<DriverFigures>,
}

/// A failed attempt or a return in an order's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setback {
    Failed,
    Returned,
}

/// Every failed attempt and return within `bounds` in the histories of `orders`, with the driver
/// who held the parcel: the one who reported the failure (found among `drivers` by its account),
/// for a return the one of the failure before it.
fn setbacks<'a>(
    orders: &'a [Order],
    drivers: &'a [Driver],
    bounds: (DateTime<Utc>, DateTime<Utc>),
) -> impl Iterator<Item = (Setback, Option<DriverId>)> + 'a {
    orders.iter().flat_map(move |order| {
        let mut holder = None;
        order.status_history.iter().filter_map(move |entry| {
            let setback = match entry.status {
                OrderStatus::Failed => {
                    holder = drivers
                        .iter()
                        .find(|d| d.user_id == entry.actor_id)
                        .map(|d| d.id);
                    Setback::Failed
                }
                OrderStatus::Returned => Setback::Returned,
                _ => return None,
            };
            within(Some(entry.at), bounds).then_some((setback, holder))
        })
    })
}

/// Per-driver figures over the orders delivered within `bounds`.
pub fn driver_figures(
    orders: &[Order],
    drivers: &[Driver],
    bounds: (DateTime<Utc>, DateTime<Utc>),
) -> Vec<DriverFigures> {
    let mut by_driver: BTreeMap<DriverId, (u64, f64, Money, f64, u64)> = BTreeMap::new();
    for order in orders
        .iter()
        .filter(|o| o.status == OrderStatus::Delivered && within(o.delivered_at, bounds))
    {
        let Some(driver) = order.driver_id else {
            continue;
        };
        let entry = by_driver.entry(driver).or_default();
        entry.0 += 1;
        entry.1 += order
            .actual_distance_km
            .or(order.estimated_distance_km)
            .unwrap_or(0.0);
        entry.2 = entry.2.saturating_add(order.delivery_fee);
        if let (Some(picked), Some(delivered)) = (order.picked_up_at, order.delivered_at) {
            entry.3 += (delivered - picked).num_seconds() as f64 / 60.0;
            entry.4 += 1;
        }
    }
    // Drivers without deliveries still appear when their records were given.
    for driver in drivers {
        by_driver.entry(driver.id).or_default();
    }
    let mut setbacks_of: BTreeMap<DriverId, (u64, u64)> = BTreeMap::new();
    for (setback, driver) in setbacks(orders, drivers, bounds) {
        let Some(driver) = driver else { continue };
        by_driver.entry(driver).or_default();
        let counts = setbacks_of.entry(driver).or_default();
        match setback {
            Setback::Failed => counts.0 += 1,
            Setback::Returned => counts.1 += 1,
        }
    }
    by_driver
        .into_iter()
        .map(
            |(driver_id, (deliveries, km, earnings, minutes, timed))| DriverFigures {
                driver_id,
                driver_name: drivers
                    .iter()
                    .find(|d| d.id == driver_id)
                    .map(|d| d.full_name.clone())
                    .unwrap_or_default(),
                deliveries,
                distance_km: (km * 1000.0).round() / 1000.0,
                earnings,
                average_delivery_minutes: (timed > 0)
                    .then(|| (minutes / timed as f64 * 10.0).round() / 10.0),
                failed_attempts: setbacks_of.get(&driver_id).map_or(0, |c| c.0),
                returns: setbacks_of.get(&driver_id).map_or(0, |c| c.1),
            },
        )
        .collect()
}

/// The daily report of one pharmacy from its orders around that day (orders outside the day are
/// ignored, so the caller may over-fetch) and its fleet.
pub fn vendor_daily(
    orders: &[Order],
    drivers: &[Driver],
    date: NaiveDate,
    offset: FixedOffset,
) -> VendorDailyReport {
    let day = day_bounds(date, offset);
    let count = |pick: fn(&Order) -> Option<DateTime<Utc>>, status: Option<OrderStatus>| {
        orders
            .iter()
            .filter(|o| status.is_none_or(|s| o.status == s) && within(pick(o), day))
            .count() as u64
    };
    let revenue = orders
        .iter()
        .filter(|o| o.status == OrderStatus::Delivered && within(o.delivered_at, day))
        .fold(Money::ZERO, |sum, o| sum.saturating_add(o.delivery_fee));
    let (mut delivered_on_time, mut delivered_late) = (0, 0);
    for order in orders
        .iter()
        .filter(|o| o.status == OrderStatus::Delivered && within(o.delivered_at, day))
    {
        match (order.deliver_before, order.delivered_at) {
            (Some(by), Some(at)) if at <= by => delivered_on_time += 1,
            (Some(_), Some(_)) => delivered_late += 1,
            _ => {}
        }
    }
    let (mut failed_attempts, mut returns) = (0, 0);
    for (setback, _) in setbacks(orders, drivers, day) {
        match setback {
            Setback::Failed => failed_attempts += 1,
            Setback::Returned => returns += 1,
        }
    }
    VendorDailyReport {
        date,
        utc_offset: offset.to_string(),
        orders_created: count(|o| Some(o.created_at), None),
        orders_delivered: count(|o| o.delivered_at, Some(OrderStatus::Delivered)),
        orders_cancelled: count(|o| o.cancelled_at, Some(OrderStatus::Cancelled)),
        orders_rejected: count(
            |o| o.entered(OrderStatus::Rejected),
            Some(OrderStatus::Rejected),
        ),
        failed_attempts,
        returns,
        revenue,
        delivered_on_time,
        delivered_late,
        drivers: driver_figures(orders, drivers, day),
    }
}

/// Earnings of one driver per local day over a period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Earnings {
    /// Deliveries in the period.
    pub total_deliveries: u64,
    /// Earned in the period.
    pub total_earnings: Money,
    /// Kilometres driven on them.
    pub total_distance_km: f64,
    /// Per local day with deliveries, oldest first.
    pub days: Vec<DayEarnings>,
}

/// One day of [`Earnings`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DayEarnings {
    /// Local date.
    pub date: NaiveDate,
    /// Deliveries.
    pub deliveries: u64,
    /// Earned.
    pub earnings: Money,
}

/// A driver's earnings from its delivered orders within `bounds`, per day at `offset`.
pub fn earnings(
    orders: &[Order],
    bounds: (DateTime<Utc>, DateTime<Utc>),
    offset: FixedOffset,
) -> Earnings {
    let mut days: BTreeMap<NaiveDate, (u64, Money)> = BTreeMap::new();
    let mut total = Earnings {
        total_deliveries: 0,
        total_earnings: Money::ZERO,
        total_distance_km: 0.0,
        days: vec![],
    };
    for order in orders
        .iter()
        .filter(|o| o.status == OrderStatus::Delivered && within(o.delivered_at, bounds))
    {
        let Some(at) = order.delivered_at else {
            continue;
        };
        let day = days
            .entry(at.with_timezone(&offset).date_naive())
            .or_default();
        day.0 += 1;
        day.1 = day.1.saturating_add(order.delivery_fee);
        total.total_deliveries += 1;
        total.total_earnings = total.total_earnings.saturating_add(order.delivery_fee);
        total.total_distance_km += order
            .actual_distance_km
            .or(order.estimated_distance_km)
            .unwrap_or(0.0);
    }
    total.total_distance_km = (total.total_distance_km * 1000.0).round() / 1000.0;
    total.days = days
        .into_iter()
        .map(|(date, (deliveries, earnings))| DayEarnings {
            date,
            deliveries,
            earnings,
        })
        .collect();
    total
}

/// One row of the orders CSV export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderRow {
    /// Order number.
    pub order_number: String,
    /// Status name.
    pub status: OrderStatus,
    /// When placed, RFC 3339.
    pub created_at: DateTime<Utc>,
    /// When delivered, RFC 3339.
    pub delivered_at: Option<DateTime<Utc>>,
    /// Recipient.
    pub customer_name: String,
    /// Destination.
    pub delivery_address: String,
    /// Items as `2 x Name; 1 x Other`.
    pub items: String,
    /// Driver id, if any.
    pub driver_id: Option<DriverId>,
    /// Estimated km.
    pub estimated_distance_km: Option<f64>,
    /// Driven km.
    pub actual_distance_km: Option<f64>,
    /// Fee, two decimals.
    pub delivery_fee: String,
    /// The delivery attempt, from 1.
    pub attempt: u32,
    /// Why the latest failed attempt failed, if one did.
    pub failure_reason: Option<FailureReason>,
}

impl From<&Order> for OrderRow {
    fn from(o: &Order) -> Self {
        Self {
            order_number: o.order_number.clone(),
            status: o.status,
            created_at: o.created_at,
            delivered_at: o.delivered_at,
            customer_name: o.customer_name.clone(),
            delivery_address: o.delivery_address.clone(),
            items: o
                .items
                .iter()
                .map(|i| format!("{} x {}", i.quantity, i.name))
                .collect::<Vec<_>>()
                .join("; "),
            driver_id: o.driver_id,
            estimated_distance_km: o.estimated_distance_km,
            actual_distance_km: o.actual_distance_km,
            delivery_fee: o.delivery_fee.to_string(),
            attempt: o.attempt,
            failure_reason: o.failure_reason,
        }
    }
}

/// A text cell no spreadsheet will run as a formula (CSV injection): `'` goes before every `=`,
/// `+`, `-` or `@` that starts the cell or follows a character a spreadsheet may split cells on
/// (`,` `;` `|` tab, line breaks; spaces in between are skipped), and before a leading tab or
/// carriage return. `Ann;=1+1;Patient` becomes `Ann;'=1+1;Patient`, harmless however the
/// spreadsheet splits it.
fn inert(cell: &str) -> String {
    let mut out = String::with_capacity(cell.len() + 1);
    let mut cell_starts = true;
    for c in cell.chars() {
        let formula = matches!(c, '=' | '+' | '-' | '@');
        if cell_starts && (formula || (out.is_empty() && matches!(c, '\t' | '\r'))) {
            out.push('\'');
        }
        out.push(c);
        cell_starts = match c {
            ',' | ';' | '|' | '\t' | '\n' | '\r' => true,
            ' ' => cell_starts,
            _ => false,
        };
    }
    out
}

/// Every field quoted, so that no spreadsheet splits a cell on a character inside it.
fn write_csv<R: Serialize>(rows: impl IntoIterator<Item = R>) -> String {
    let mut writer = csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::Always)
        .from_writer(Vec::new());
    for row in rows {
        // Writing plain structs into memory cannot fail.
        let _ = writer.serialize(row);
    }
    String::from_utf8(writer.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// Orders as CSV, one row per order, with a header.
pub fn orders_csv(orders: &[Order]) -> String {
    write_csv(orders.iter().map(OrderRow::from).map(|mut row| {
        row.customer_name = inert(&row.customer_name);
        row.delivery_address = inert(&row.delivery_address);
        row.items = inert(&row.items);
        row
    }))
}

#[derive(Serialize)]
struct DriverCsvRow {
    date: String,
    driver_id: DriverId,
    driver_name: String,
    deliveries: u64,
    distance_km: f64,
    earnings: String,
    average_delivery_minutes: Option<f64>,
    failed_attempts: u64,
    returns: u64,
}

/// Per-driver figures as CSV, each row labelled with `period` (a date or `from..to`).
pub fn drivers_csv(period: &str, figures: &[DriverFigures]) -> String {
    write_csv(figures.iter().map(|f| DriverCsvRow {
        date: period.to_owned(),
        driver_id: f.driver_id,
        driver_name: inert(&f.driver_name),
        deliveries: f.deliveries,
        distance_km: f.distance_km,
        earnings: f.earnings.to_string(),
        average_delivery_minutes: f.average_delivery_minutes,
        failed_attempts: f.failed_attempts,
        returns: f.returns,
    }))
}

/// The daily report as CSV: a summary row, then one row per driver.
pub fn vendor_daily_csv(report: &VendorDailyReport) -> String {
    #[derive(Serialize)]
    struct Summary<'a> {
        date: NaiveDate,
        utc_offset: &'a str,
        orders_created: u64,
        orders_delivered: u64,
        orders_cancelled: u64,
        orders_rejected: u64,
        failed_attempts: u64,
        returns: u64,
        revenue: String,
        delivered_on_time: u64,
        delivered_late: u64,
    }
    let summary = write_csv([Summary {
        date: report.date,
        utc_offset: &report.utc_offset,
        orders_created: report.orders_created,
        orders_delivered: report.orders_delivered,
        orders_cancelled: report.orders_cancelled,
        orders_rejected: report.orders_rejected,
        failed_attempts: report.failed_attempts,
        returns: report.returns,
        revenue: report.revenue.to_string(),
        delivered_on_time: report.delivered_on_time,
        delivered_late: report.delivered_late,
    }]);
    format!(
        "{summary}\n{}",
        drivers_csv(&report.date.to_string(), &report.drivers)
    )
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use proptest::prelude::*;

    use super::*;
    use crate::conformance::fixtures;
    use crate::model::*;

    fn order(n: u128, created: DateTime<Utc>) -> Order {
        let id = |n: u128| uuid::Uuid::from_u128(n);
        Order {
            items: vec![OrderItem {
                name: "Aspirin".into(),
                quantity: 2,
                notes: None,
            }],
            delivery_fee: Money::from_cents(275),
            estimated_distance_km: Some(1.1),
            created_at: created,
            updated_at: created,
            ..fixtures::order(
                OrderId::from_uuid(id(n)),
                VendorId::from_uuid(id(1 << 64)),
                UserId::from_uuid(id(2 << 64)),
            )
        }
    }

    fn delivered(
        mut o: Order,
        driver: u128,
        picked: DateTime<Utc>,
        minutes: i64,
        km: f64,
    ) -> Order {
        o.status = OrderStatus::Delivered;
        o.driver_id = Some(DriverId::from_uuid(uuid::Uuid::from_u128(driver)));
        o.picked_up_at = Some(picked);
        o.delivered_at = Some(picked + Duration::minutes(minutes));
        o.actual_distance_km = Some(km);
        o
    }

    fn utc(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 10, h, 0, 0).unwrap()
    }

    #[test]
    fn deliveries_with_a_window_count_as_on_time_or_late() {
        let with_window = |n, by: u32| Order {
            deliver_before: Some(utc(by)),
            ..delivered(order(n, utc(8)), 9, utc(9), 30, 1.0)
        };
        // Delivered at 09:30: before 10:00 on time, after 09:00 late; no window counts neither.
        let orders = [
            with_window(1, 10),
            with_window(2, 9),
            delivered(order(3, utc(8)), 9, utc(9), 30, 1.0),
        ];
        let date = NaiveDate::from_ymd_opt(2026, 3, 10).unwrap();
        let r = vendor_daily(&orders, &[], date, FixedOffset::east_opt(0).unwrap());
        assert_eq!((r.delivered_on_time, r.delivered_late), (1, 1));
        let csv = vendor_daily_csv(&r);
        let header = csv.lines().next().unwrap();
        assert!(
            header.ends_with(r#""revenue","delivered_on_time","delivered_late""#),
            "{csv}"
        );
    }

    #[test]
    fn daily_report_counts_in_the_local_day() {
        let plus2 = FixedOffset::east_opt(2 * 3600).unwrap();
        let date = NaiveDate::from_ymd_opt(2026, 3, 10).unwrap();
        // Local day 2026-03-10 at +02:00 is 2026-03-09T22:00Z .. 2026-03-10T22:00Z.
        let mut cancelled = order(3, utc(21));
        cancelled.status = OrderStatus::Cancelled;
        cancelled.cancelled_at = Some(utc(21));
        let orders = vec![
            delivered(order(1, utc(8)), 9, utc(9), 30, 4.0),
            delivered(order(2, utc(10)), 9, utc(11), 20, 2.0),
            cancelled,
            order(4, utc(23)), // the next local day
        ];
        let r = vendor_daily(&orders, &[], date, plus2);
        assert_eq!(
            (
                r.orders_created,
                r.orders_delivered,
                r.orders_cancelled,
                r.orders_rejected
            ),
            (3, 2, 1, 0)
        );
        assert_eq!(r.revenue, Money::from_cents(550));
        assert_eq!(r.drivers.len(), 1);
        let d = &r.drivers[0];
        assert_eq!(
            (d.deliveries, d.distance_km, d.earnings),
            (2, 6.0, Money::from_cents(550))
        );
        assert_eq!(d.average_delivery_minutes, Some(25.0));
        assert_eq!(r.utc_offset, "+02:00");
    }

    #[test]
    fn bounds_at_the_ends_of_the_calendar_are_clamped() {
        let east = FixedOffset::east_opt(14 * 3600).unwrap();
        let west = FixedOffset::west_opt(14 * 3600).unwrap();
        let (first, last) = (NaiveDate::MIN, NaiveDate::MAX);
        assert_eq!(days_bounds(last, last, west).1, DateTime::<Utc>::MAX_UTC);
        let (start, end) = days_bounds(first, first, east);
        assert_eq!(start, DateTime::<Utc>::MIN_UTC);
        assert_eq!(end, first.and_hms_opt(10, 0, 0).unwrap().and_utc());
        let day = NaiveDate::from_ymd_opt(2026, 3, 10).unwrap();
        let (start, end) = days_bounds(day, day, east);
        assert_eq!(end - start, Duration::days(1));
        assert_eq!(
            start,
            day.and_hms_opt(0, 0, 0).unwrap().and_utc() - Duration::hours(14)
        );
    }

    #[test]
    fn earnings_group_by_local_day() {
        let orders = vec![
            delivered(order(1, utc(1)), 9, utc(1), 10, 1.0),
            delivered(order(2, utc(23)), 9, utc(23), 10, 1.0),
        ];
        let plus2 = FixedOffset::east_opt(2 * 3600).unwrap();
        let e = earnings(&orders, (utc(0), utc(0) + Duration::days(2)), plus2);
        assert_eq!(e.total_deliveries, 2);
        // 23:10Z is already the next day at +02:00.
        let days: Vec<_> = e
            .days
            .iter()
            .map(|d| (d.date.to_string(), d.deliveries))
            .collect();
        assert_eq!(
            days,
            [("2026-03-10".to_owned(), 1), ("2026-03-11".to_owned(), 1)]
        );
        assert_eq!(e.total_earnings, Money::from_cents(550));
    }

    #[test]
    fn csv_neutralises_formulas() {
        let mut o = order(1, utc(1));
        o.customer_name = "=HYPERLINK(\"http://evil\")".into();
        let csv = orders_csv(&[o]);
        assert!(csv.contains("'=HYPERLINK"), "{csv}");
        assert!(csv.starts_with("\"order_number\",\"status\",\"created_at\""));
    }

    #[test]
    fn formulas_are_neutralised_after_any_delimiter() {
        let check = |cell: &str, expect: &str| assert_eq!(inert(cell), expect, "{cell:?}");
        check("Ann;=1+1;Patient", "Ann;'=1+1;Patient");
        check("=SUM(A1)", "'=SUM(A1)");
        check("a, +1", "a, '+1");
        check("x|@cmd", "x|'@cmd");
        check("line\n-2+3", "line\n'-2+3");
        check("\tTab", "'\tTab");
        check("Main St - Apt 3", "Main St - Apt 3");
        check("e-mail@example.com", "e-mail@example.com");
        check("", "");
    }

    proptest! {
        #[test]
        fn orders_csv_round_trips(names in proptest::collection::vec("[a-zA-Z ,\"\n;]{0,20}", 1..20)) {
            let orders: Vec<Order> = names.iter().enumerate().map(|(i, name)| {
                let mut o = order(i as u128, utc(1));
                o.customer_name = name.clone();
                o.delivery_address = format!("{name}, flat {i}");
                o
            }).collect();
            let text = orders_csv(&orders);
            let mut reader = csv::Reader::from_reader(text.as_bytes());
            let rows: Vec<OrderRow> = reader.deserialize().collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(rows.len(), orders.len());
            for (row, order) in rows.iter().zip(&orders) {
                prop_assert_eq!(row, &OrderRow::from(order));
            }
        }
    }
}
