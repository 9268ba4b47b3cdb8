//! Distances and ETAs on the great circle, with the `geo` crate.

use chrono::{DateTime, Utc};
use geo::{Distance, Haversine, Point};

use crate::config::SystemConfig;
use crate::model::{Coordinates, LocationFix, Order, OrderStatus, VehicleType};

/// Fixes less precise than this (metres) are left out of driven distances.
pub const MAX_ACCURACY_M: f64 = 100.0;
/// A pair of fixes implying a faster speed than this (km/h) is a GPS jump, not driving.
pub const MAX_PLAUSIBLE_SPEED_KMH: f64 = 200.0;

fn point(c: Coordinates) -> Point<f64> {
    Point::new(c.longitude(), c.latitude())
}

/// Great-circle distance in kilometres.
pub fn distance_km(a: Coordinates, b: Coordinates) -> f64 {
    Haversine.distance(point(a), point(b)) / 1000.0
}

/// The path still to travel for `order` from the driver's position, along great circles:
/// before pickup driver → pickup → destination, after pickup driver → destination.
/// `None` when the order has no destination yet or is not on its way.
pub fn remaining_km(order: &Order, driver_at: Coordinates) -> Option<f64> {
    let destination = order.delivery_location()?;
    match order.status {
        OrderStatus::Accepted | OrderStatus::DriverAssigned => {
            let pickup = order.pickup_location()?;
            Some(distance_km(driver_at, pickup) + distance_km(pickup, destination))
        }
        OrderStatus::PickedUp | OrderStatus::OutForDelivery => {
            Some(distance_km(driver_at, destination))
        }
        _ => None,
    }
}

/// Minutes to travel `km` of great circle by `vehicle`: km × road factor / speed.
pub fn travel_minutes(km: f64, vehicle: VehicleType, config: &SystemConfig) -> f64 {
    km * config.road_factor / config.vehicle_speeds.of(vehicle) * 60.0
}

/// ETA in minutes for `order` with its driver at `driver_at`, or `None` when not on its way.
pub fn eta_minutes(
    order: &Order,
    driver_at: Coordinates,
    vehicle: VehicleType,
    config: &SystemConfig,
) -> Option<f64> {
    remaining_km(order, driver_at).map(|km| travel_minutes(km, vehicle, config))
}

/// Kilometres driven along a trail (oldest first), ignoring fixes with accuracy worse than
/// [`MAX_ACCURACY_M`] and fixes that would imply a speed above [`MAX_PLAUSIBLE_SPEED_KMH`] from
/// the last kept fix.
pub fn trail_km(trail: &[LocationFix]) -> f64 {
    let mut total = 0.0;
    let mut last: Option<(Coordinates, DateTime<Utc>)> = None;
    for fix in trail {
        // NaN accuracy counts as imprecise too.
        if fix
            .accuracy
            .is_some_and(|a| a.is_nan() || a > MAX_ACCURACY_M)
        {
            continue;
        }
        let Some(here) = fix.coordinates() else {
            continue;
        };
        match last {
            None => last = Some((here, fix.recorded_at)),
            Some((there, then)) => {
                let km = distance_km(there, here);
                let hours = (fix.recorded_at - then).num_milliseconds() as f64 / 3_600_000.0;
                let plausible = if hours > 0.0 {
                    km / hours <= MAX_PLAUSIBLE_SPEED_KMH
                } else {
                    km < 1e-3
                };
                if plausible {
                    total += km;
                    last = Some((here, fix.recorded_at));
                }
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};
    use proptest::prelude::*;

    use super::*;
    use crate::model::DriverId;

    fn at(lat: f64, lon: f64) -> Coordinates {
        Coordinates::new(lat, lon).unwrap()
    }

    fn fix(seconds: i64, lat: f64, lon: f64, accuracy: Option<f64>) -> LocationFix {
        LocationFix {
            driver_id: DriverId::from_uuid(uuid::Uuid::nil()),
            latitude: lat,
            longitude: lon,
            speed: None,
            heading: None,
            accuracy,
            recorded_at: Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap()
                + Duration::seconds(seconds),
        }
    }

    #[test]
    fn one_degree_of_latitude_is_about_111_km() {
        let d = distance_km(at(0.0, 0.0), at(1.0, 0.0));
        assert!((d - 111.19).abs() < 0.1, "{d}");
    }

    #[test]
    fn eta_uses_speed_and_road_factor() {
        let config = SystemConfig::default();
        // 10 km by car at 30 km/h with factor 1.3: 26 minutes.
        assert!((travel_minutes(10.0, VehicleType::Car, &config) - 26.0).abs() < 1e-9);
        assert!((travel_minutes(10.0, VehicleType::Bike, &config) - 52.0).abs() < 1e-9);
    }

    #[test]
    fn trail_skips_imprecise_fixes_and_jumps() {
        // ~0.111 km steps every 10 s (40 km/h), one imprecise fix, one jump 1 degree away.
        let trail = [
            fix(0, 0.0, 0.0, Some(5.0)),
            fix(10, 0.001, 0.0, Some(5.0)),
            fix(20, 0.5, 0.5, Some(500.0)),
            fix(30, 1.0, 0.0, None),
            fix(40, 0.002, 0.0, None),
        ];
        let km = trail_km(&trail);
        assert!((km - 0.2224).abs() < 0.001, "{km}");
        assert_eq!(trail_km(&[]), 0.0);
        assert_eq!(trail_km(&trail[..1]), 0.0);
    }

    proptest! {
        #[test]
        fn eta_is_monotone_in_distance(a in 0f64..20_000.0, b in 0f64..20_000.0) {
            let config = SystemConfig::default();
            let (near, far) = if a <= b { (a, b) } else { (b, a) };
            for vehicle in [VehicleType::Bike, VehicleType::Scooter, VehicleType::Car, VehicleType::Van] {
                prop_assert!(travel_minutes(near, vehicle, &config) <= travel_minutes(far, vehicle, &config));
            }
        }

        #[test]
        fn eta_is_zero_at_the_destination(lat in -89.0f64..89.0, lon in -179.0f64..179.0) {
            let here = at(lat, lon);
            prop_assert!(distance_km(here, here).abs() < 1e-9);
            prop_assert_eq!(travel_minutes(0.0, VehicleType::Car, &SystemConfig::default()), 0.0);
        }

        #[test]
        fn coordinates_accept_exactly_the_valid_ranges(lat in proptest::num::f64::ANY, lon in proptest::num::f64::ANY) {
            let valid = lat.is_finite() && lon.is_finite() && lat.abs() <= 90.0 && lon.abs() <= 180.0;
            prop_assert_eq!(Coordinates::new(lat, lon).is_ok(), valid);
        }
    }
}
