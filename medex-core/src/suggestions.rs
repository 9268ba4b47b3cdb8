//! Which of a pharmacy's drivers to suggest for an order (DESIGN §14): those with room in their
//! run, ranked by the minutes the order would add to it. A pure function of candidates whose
//! insertion the caller has already computed ([`crate::sequencing::insertion`] through the
//! `Router`); it decides who fits and in which order they come.

use crate::model::{DriverId, DriverStatus};

/// Whether a driver can take one more order now: active, and either free (`available` with no
/// order) or `busy` with fewer than `capacity` (its pharmacy's `max_active_orders`) orders in
/// its run. Offline drivers and drivers on a break take none.
pub fn has_room(status: DriverStatus, is_active: bool, run_size: usize, capacity: u32) -> bool {
    is_active
        && match status {
            DriverStatus::Available => run_size == 0,
            DriverStatus::Busy => run_size < capacity as usize,
            DriverStatus::Offline | DriverStatus::OnBreak => false,
        }
}

/// What an order does to one driver's run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Added {
    /// Minutes the order adds to the whole run.
    pub minutes: f64,
    /// Minutes from now to the order's drop-off, through the stops before it.
    pub eta_minutes: f64,
    /// Kilometres from the driver to the order's drop-off, through the stops before it.
    pub km: f64,
}

/// One driver of the pharmacy, as the ranking sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Who.
    pub driver_id: DriverId,
    /// Its full name, for the pharmacy's screen.
    pub full_name: String,
    /// Its availability.
    pub status: DriverStatus,
    /// Whether the driver and its account are active.
    pub is_active: bool,
    /// How many orders its run holds.
    pub run_size: usize,
    /// What the order would add to its run; `None` when not worked out (no room, or no
    /// stops to sequence).
    pub added: Option<Added>,
}

/// A driver suggested for an order.
#[derive(Debug, Clone, PartialEq)]
pub struct DriverSuggestion {
    /// Who.
    pub driver_id: DriverId,
    /// Its full name.
    pub full_name: String,
    /// `available` or `busy`.
    pub status: DriverStatus,
    /// How many orders its run holds now.
    pub run_size: usize,
    /// Minutes the order adds to its run.
    pub added_minutes: f64,
    /// Minutes from now to the order's drop-off in the run with it.
    pub eta_minutes: f64,
    /// Kilometres from the driver to the order's drop-off in the run with it.
    pub distance_km: f64,
}

/// The candidates that can take the order (see [`has_room`]; `capacity` is the pharmacy's
/// `max_active_orders`) and whose insertion is known, fewest added minutes first, ties by
/// driver id.
pub fn rank(
    candidates: impl IntoIterator<Item = Candidate>,
    capacity: u32,
) -> Vec<DriverSuggestion> {
    let mut ranked: Vec<DriverSuggestion> = candidates
        .into_iter()
        .filter(|c| has_room(c.status, c.is_active, c.run_size, capacity))
        .filter_map(|c| {
            let added = c.added?;
            Some(DriverSuggestion {
                driver_id: c.driver_id,
                full_name: c.full_name,
                status: c.status,
                run_size: c.run_size,
                added_minutes: added.minutes,
                eta_minutes: added.eta_minutes,
                distance_km: added.km,
            })
        })
        .collect();
    ranked.sort_by(|a, b| {
        a.added_minutes
            .total_cmp(&b.added_minutes)
            .then(a.driver_id.cmp(&b.driver_id))
    });
    ranked
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn driver(n: u64) -> DriverId {
        DriverId::from_uuid(uuid::Uuid::from_u64_pair(7, n))
    }

    fn candidate(n: u64, status: DriverStatus, run_size: usize, minutes: f64) -> Candidate {
        Candidate {
            driver_id: driver(n),
            full_name: format!("Driver {n}"),
            status,
            is_active: true,
            run_size,
            added: Some(Added {
                minutes,
                eta_minutes: minutes + 1.0,
                km: minutes / 2.0,
            }),
        }
    }

    fn order_of(ranked: &[DriverSuggestion]) -> Vec<DriverId> {
        ranked.iter().map(|s| s.driver_id).collect()
    }

    #[test]
    fn who_has_room() {
        use DriverStatus::*;
        #[rustfmt::skip]
        let rows = [
            // status,  active, run, capacity, room
            (Available, true,  0, 1, true),
            (Available, false, 0, 1, false),
            (Available, true,  1, 3, false),
            (Busy,      true,  1, 1, false),
            (Busy,      true,  2, 3, true),
            (Busy,      true,  3, 3, false),
            (Busy,      false, 1, 3, false),
            (Offline,   true,  0, 3, false),
            (OnBreak,   true,  0, 3, false),
        ];
        for (status, active, run, capacity, room) in rows {
            assert_eq!(
                has_room(status, active, run, capacity),
                room,
                "{status:?} active {active} run {run} of {capacity}"
            );
        }
    }

    #[test]
    fn fewest_added_minutes_first_ties_by_id_full_and_offline_left_out() {
        let ranked = rank(
            [
                candidate(3, DriverStatus::Available, 0, 12.0),
                candidate(1, DriverStatus::Busy, 1, 4.0),
                candidate(2, DriverStatus::Available, 0, 12.0),
                candidate(4, DriverStatus::Busy, 2, 0.5),
                candidate(5, DriverStatus::Offline, 0, 0.1),
                Candidate {
                    is_active: false,
                    ..candidate(6, DriverStatus::Available, 0, 0.2)
                },
                Candidate {
                    added: None,
                    ..candidate(7, DriverStatus::Available, 0, 0.3)
                },
            ],
            2,
        );
        assert_eq!(order_of(&ranked), vec![driver(1), driver(2), driver(3)]);
        assert_eq!(ranked[0].eta_minutes, 5.0);
        assert_eq!(ranked[0].distance_km, 2.0);
        assert_eq!(ranked[0].run_size, 1);
        assert!(rank([], 1).is_empty());
    }

    fn status() -> impl Strategy<Value = DriverStatus> {
        prop_oneof![
            Just(DriverStatus::Available),
            Just(DriverStatus::Busy),
            Just(DriverStatus::Offline),
            Just(DriverStatus::OnBreak),
        ]
    }

    proptest! {
        #[test]
        fn the_ranking_is_sorted_and_holds_only_drivers_with_room(
            drivers in prop::collection::vec(
                (status(), any::<bool>(), 0..5usize, prop::option::weighted(0.9, 0.0..120.0f64)),
                0..12,
            ),
            capacity in 1..5u32,
        ) {
            let candidates: Vec<Candidate> = drivers
                .iter()
                .enumerate()
                .map(|(n, &(status, is_active, run_size, minutes))| Candidate {
                    is_active,
                    added: minutes.map(|m| Added { minutes: m, eta_minutes: m, km: m }),
                    ..candidate(n as u64, status, run_size, 0.0)
                })
                .collect();
            let ranked = rank(candidates.clone(), capacity);
            for pair in ranked.windows(2) {
                prop_assert!(
                    pair[0].added_minutes < pair[1].added_minutes
                        || (pair[0].added_minutes == pair[1].added_minutes
                            && pair[0].driver_id < pair[1].driver_id)
                );
            }
            for s in &ranked {
                let c = candidates.iter().find(|c| c.driver_id == s.driver_id).unwrap();
                prop_assert!(c.is_active);
                prop_assert!(matches!(c.status, DriverStatus::Available | DriverStatus::Busy));
                prop_assert!(c.run_size < capacity as usize);
                prop_assert!(c.status != DriverStatus::Available || c.run_size == 0);
            }
            let fitting = candidates
                .iter()
                .filter(|c| c.added.is_some() && has_room(c.status, c.is_active, c.run_size, capacity))
                .count();
            prop_assert_eq!(ranked.len(), fitting, "nobody who fits is left out");
        }
    }
}
