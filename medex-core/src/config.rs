//! The system configuration in force: tariff, vehicle speeds, road factor and proof defaults.
//! Admins change it at run time; the store keeps it.

use serde::{Deserialize, Serialize};

use crate::fields::{FieldErrors, Invalid};
use crate::model::{Money, VehicleType};

/// How delivery fees are computed: `max(min_fee, base_fee + per_km × km)`, rounded to the cent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Tariff {
    /// Charged on every order.
    pub base_fee: Money,
    /// Charged per estimated kilometre.
    pub per_km: Money,
    /// The least any order costs.
    pub min_fee: Money,
}

impl Default for Tariff {
    /// The seed system's rule: 2.50 per km, nothing else.
    fn default() -> Self {
        Self {
            base_fee: Money::ZERO,
            per_km: Money::from_cents(250),
            min_fee: Money::ZERO,
        }
    }
}

impl Tariff {
    /// The fee for an estimated distance. Negative or non-finite distances count as zero.
    ///
    /// The distance is taken to the metre and the rest is integer arithmetic, so the rounding to
    /// the cent (half up) is exact rather than at the mercy of binary floating point.
    pub fn fee(&self, distance_km: f64) -> Money {
        // `as` saturates: an absurd distance cannot wrap around to a negative fee.
        let metres = if distance_km.is_finite() {
            (distance_km.max(0.0) * 1000.0).round() as i128
        } else {
            0
        };
        let per_km = i128::from(self.per_km.cents().max(0));
        let distance_cents = (per_km * metres + 500) / 1000;
        let cents = i128::from(self.base_fee.cents()) + distance_cents;
        Money::from_cents(cents.clamp(0, i128::from(i64::MAX)) as i64).max(self.min_fee)
    }
}

/// Average speeds in km/h by vehicle type, used for ETAs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct VehicleSpeeds {
    /// Bicycle.
    pub bike: f64,
    /// Scooter.
    pub scooter: f64,
    /// Car.
    pub car: f64,
    /// Van.
    pub van: f64,
}

impl Default for VehicleSpeeds {
    fn default() -> Self {
        Self {
            bike: 15.0,
            scooter: 25.0,
            car: 30.0,
            van: 25.0,
        }
    }
}

impl VehicleSpeeds {
    /// The speed of one vehicle type.
    pub fn of(&self, vehicle: VehicleType) -> f64 {
        match vehicle {
            VehicleType::Bike => self.bike,
            VehicleType::Scooter => self.scooter,
            VehicleType::Car => self.car,
            VehicleType::Van => self.van,
        }
    }
}

/// The delivery radii a pharmacy may have, km.
pub const DELIVERY_RADIUS_KM: std::ops::RangeInclusive<f64> = 0.5..=1000.0;

/// Everything an admin can tune at run time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemConfig {
    /// Delivery fees.
    pub tariff: Tariff,
    /// ETA speeds.
    pub vehicle_speeds: VehicleSpeeds,
    /// Roads are longer than great circles: path length = great-circle × this.
    pub road_factor: f64,
    /// Proof photo required by default for new pharmacies.
    pub default_require_proof_photo: bool,
    /// Signature required by default for new pharmacies.
    pub default_require_signature: bool,
    /// How far from a pharmacy it delivers unless it says otherwise, km.
    #[serde(default = "default_delivery_radius_km")]
    pub default_delivery_radius_km: f64,
    /// How long a tracking link keeps working after its order ended, days.
    #[serde(default = "default_tracking_link_days")]
    pub tracking_link_days: u32,
}

fn default_delivery_radius_km() -> f64 {
    30.0
}

fn default_tracking_link_days() -> u32 {
    7
}

impl Default for SystemConfig {
    fn default() -> Self {
        Self {
            tariff: Tariff::default(),
            vehicle_speeds: VehicleSpeeds::default(),
            road_factor: 1.3,
            default_require_proof_photo: false,
            default_require_signature: false,
            default_delivery_radius_km: default_delivery_radius_km(),
            tracking_link_days: default_tracking_link_days(),
        }
    }
}

impl SystemConfig {
    /// Checks the values make sense: fees not negative, speeds in (0, 300], road factor in [1, 5].
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut errors = FieldErrors::new();
        for (field, money) in [
            ("tariff.base_fee", self.tariff.base_fee),
            ("tariff.per_km", self.tariff.per_km),
            ("tariff.min_fee", self.tariff.min_fee),
        ] {
            if money < Money::ZERO || money > Money::from_cents(10_000_000) {
                errors.push(field, "must be between 0 and 100000");
            }
        }
        let s = &self.vehicle_speeds;
        for (field, speed) in [
            ("vehicle_speeds.bike", s.bike),
            ("vehicle_speeds.scooter", s.scooter),
            ("vehicle_speeds.car", s.car),
            ("vehicle_speeds.van", s.van),
        ] {
            if !(speed.is_finite() && speed > 0.0 && speed <= 300.0) {
                errors.push(field, "must be a speed in km/h above 0 and at most 300");
            }
        }
        if !(self.road_factor.is_finite() && (1.0..=5.0).contains(&self.road_factor)) {
            errors.push("road_factor", "must be between 1 and 5");
        }
        if !DELIVERY_RADIUS_KM.contains(&self.default_delivery_radius_km) {
            errors.push(
                "default_delivery_radius_km",
                "must be between 0.5 and 1000 km",
            );
        }
        if !(1..=3650).contains(&self.tracking_link_days) {
            errors.push("tracking_link_days", "must be between 1 and 3650 days");
        }
        errors.finish()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn seed_rule_is_two_fifty_per_km() {
        let t = Tariff::default();
        assert_eq!(t.fee(0.0), Money::ZERO);
        assert_eq!(t.fee(4.0), Money::from_cents(1000));
        assert_eq!(t.fee(1.234), Money::from_cents(309)); // 308.5 cents rounds half up
        assert_eq!(t.fee(-3.0), Money::ZERO);
        assert_eq!(t.fee(f64::NAN), Money::ZERO);
    }

    #[test]
    fn minimum_fee_applies() {
        let t = Tariff {
            base_fee: Money::from_cents(100),
            per_km: Money::from_cents(50),
            min_fee: Money::from_cents(500),
        };
        assert_eq!(t.fee(1.0), Money::from_cents(500));
        assert_eq!(t.fee(10.0), Money::from_cents(600));
    }

    #[test]
    fn validation_names_each_bad_field() {
        let mut c = SystemConfig::default();
        c.vehicle_speeds.car = 0.0;
        c.road_factor = f64::NAN;
        c.tariff.per_km = Money::from_cents(-1);
        let Err(Invalid(errors)) = c.validate() else {
            panic!("expected invalid")
        };
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["tariff.per_km", "vehicle_speeds.car", "road_factor"]
        );
        assert!(SystemConfig::default().validate().is_ok());
    }

    fn tariffs() -> impl Strategy<Value = Tariff> {
        (0i64..10_000, 0i64..10_000, 0i64..10_000).prop_map(|(b, k, m)| Tariff {
            base_fee: Money::from_cents(b),
            per_km: Money::from_cents(k),
            min_fee: Money::from_cents(m),
        })
    }

    proptest! {
        #[test]
        fn fee_is_never_negative_and_never_below_minimum(t in tariffs(), km in -1e6f64..1e6) {
            let fee = t.fee(km);
            prop_assert!(fee >= Money::ZERO);
            prop_assert!(fee >= t.min_fee);
        }

        #[test]
        fn fee_is_monotone_in_distance(t in tariffs(), a in 0f64..1e4, b in 0f64..1e4) {
            let (near, far) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(t.fee(near) <= t.fee(far));
        }

        #[test]
        fn fee_is_exact_to_the_cent(t in tariffs(), metres in 0u32..1_000_000) {
            // per_km × km in cents, computed exactly with integers, rounded half up.
            let exact_tenths_of_milli = t.per_km.cents() as i128 * metres as i128; // cents × m
            let cents = (exact_tenths_of_milli + 500) / 1000; // round half up (non-negative)
            let expected = Money::from_cents(t.base_fee.cents() + cents as i64).max(t.min_fee);
            prop_assert_eq!(t.fee(metres as f64 / 1000.0), expected);
        }
    }
}
