//! The `Router` port: travel times and distances between the points of a run, which
//! [`crate::sequencing`] orders. [`GreatCircle`], the default, is DESIGN §2's ETA model
//! (great-circle distance × road factor at the vehicle's speed) and needs nothing else; a
//! program may plug in a road router (the example server's OSRM client) that answers from real
//! streets and falls back to great circles itself when its server is away.

use async_trait::async_trait;

use crate::config::SystemConfig;
use crate::model::{Coordinates, VehicleType};
use crate::routing::distance_km;
use crate::sequencing::TravelTable;

/// How a vehicle travels where no road router knows better.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    /// Average speed, km/h.
    pub speed_kmh: f64,
    /// Road distance per great-circle distance.
    pub road_factor: f64,
}

impl Profile {
    /// The configured profile of `vehicle`.
    pub fn of(vehicle: VehicleType, config: &SystemConfig) -> Self {
        Self {
            speed_kmh: config.vehicle_speeds.of(vehicle),
            road_factor: config.road_factor,
        }
    }
}

/// Travel times between points.
///
/// Contract: the answer has one row and one column per point, in the order given, with zero on
/// the diagonal and finite non-negative values elsewhere. It never fails: an implementation
/// that depends on a service answers with [`GreatCircle`] when that service does not.
#[async_trait]
pub trait Router: Send + Sync {
    /// Travel from every point to every other for a vehicle of `profile`.
    async fn table(&self, points: &[Coordinates], profile: Profile) -> TravelTable;
}

/// Great-circle distance × road factor, at the profile's speed: the model of DESIGN §2.
#[derive(Debug, Clone, Copy, Default)]
pub struct GreatCircle;

impl GreatCircle {
    /// The table, computed at once.
    pub fn compute(points: &[Coordinates], profile: Profile) -> TravelTable {
        TravelTable::from_fn(points.len(), |from, to| {
            let km = distance_km(points[from], points[to]) * profile.road_factor;
            let minutes = if profile.speed_kmh > 0.0 {
                km / profile.speed_kmh * 60.0
            } else {
                0.0
            };
            (minutes, km)
        })
    }
}

#[async_trait]
impl Router for GreatCircle {
    async fn table(&self, points: &[Coordinates], profile: Profile) -> TravelTable {
        Self::compute(points, profile)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::travel_minutes;

    #[test]
    fn great_circles_are_the_eta_model_of_the_design() {
        let config = SystemConfig::default();
        let points = [
            Coordinates::new(52.50, 13.40).unwrap(),
            Coordinates::new(52.53, 13.40).unwrap(),
        ];
        let table = GreatCircle::compute(&points, Profile::of(VehicleType::Scooter, &config));
        let km = distance_km(points[0], points[1]);
        assert!((table.km(0, 1) - km * config.road_factor).abs() < 1e-9);
        let minutes = travel_minutes(km, VehicleType::Scooter, &config);
        assert!((table.minutes(1, 0) - minutes).abs() < 1e-9);
        assert_eq!((table.minutes(0, 0), table.km(1, 1)), (0.0, 0.0));
    }
}
