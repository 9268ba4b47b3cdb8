//! Arrivals at a driver's next stop (DESIGN §14): `arriving` once when the ETA drops under
//! [`ARRIVING_MINUTES`], `arrived` after [`ARRIVED_DWELL_SECONDS`] within [`ARRIVED_RADIUS_M`],
//! `departed` beyond [`DEPARTED_RADIUS_M`] — a state machine fed by fixes, taking each fix's
//! time as its `now`, doing no IO.
//!
//! GPS jitters by tens of metres, so one line would be crossed many times by a driver standing
//! still. Two radii give hysteresis: entering means coming within 75 m, leaving means going
//! beyond 150 m, and the ring between changes nothing. A stop is arrived at once and departed
//! from once; a fix older than the last one seen is ignored (batches and retries arrive out of
//! order).

use chrono::{DateTime, Duration, Utc};

use crate::model::Coordinates;
use crate::routing::distance_km;

/// `arriving` when the ETA to the stop drops under this many minutes.
pub const ARRIVING_MINUTES: f64 = 2.0;
/// Within this many metres of the stop counts as there.
pub const ARRIVED_RADIUS_M: f64 = 75.0;
/// This long there (without leaving) is an arrival.
pub const ARRIVED_DWELL_SECONDS: i64 = 20;
/// Beyond this many metres the driver has left.
pub const DEPARTED_RADIUS_M: f64 = 150.0;

/// What a fix tells about the stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arrival {
    /// The driver is about to arrive.
    Arriving,
    /// The driver is at the stop.
    Arrived,
    /// The driver left the stop after arriving.
    Departed,
}

impl Arrival {
    /// The name of its live message: `driver_arriving`, `driver_arrived`, `driver_departed`.
    pub fn message_type(self) -> &'static str {
        match self {
            Arrival::Arriving => "driver_arriving",
            Arrival::Arrived => "driver_arrived",
            Arrival::Departed => "driver_departed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not at the stop.
    Away,
    /// Within the radius since then, not yet long enough.
    Entered(DateTime<Utc>),
    /// Arrived.
    There,
    /// Left after arriving: nothing more for this stop.
    Gone,
}

/// The approach of one driver to one stop.
#[derive(Debug, Clone, PartialEq)]
pub struct Approach {
    stop: Coordinates,
    announced: bool,
    phase: Phase,
    last_seen: Option<DateTime<Utc>>,
}

impl Approach {
    /// Heading for `stop`.
    pub fn new(stop: Coordinates) -> Self {
        Self {
            stop,
            announced: false,
            phase: Phase::Away,
            last_seen: None,
        }
    }

    /// The stop.
    pub fn stop(&self) -> Coordinates {
        self.stop
    }

    /// Takes a fix at `at`, recorded at `recorded_at`, with the ETA to the stop if known, and
    /// answers what it newly tells, in order (at most `arriving` then `arrived`).
    pub fn observe(
        &mut self,
        at: Coordinates,
        recorded_at: DateTime<Utc>,
        eta_minutes: Option<f64>,
    ) -> Vec<Arrival> {
        if self.last_seen.is_some_and(|last| recorded_at < last) {
            return Vec::new();
        }
        self.last_seen = Some(recorded_at);
        let metres = distance_km(at, self.stop) * 1000.0;
        let mut told = Vec::new();
        let near = metres <= ARRIVED_RADIUS_M;
        if !self.announced
            && matches!(self.phase, Phase::Away | Phase::Entered(_))
            && (near || eta_minutes.is_some_and(|m| m < ARRIVING_MINUTES))
        {
            self.announced = true;
            told.push(Arrival::Arriving);
        }
        self.phase = match self.phase {
            Phase::Away if near => Phase::Entered(recorded_at),
            Phase::Away => Phase::Away,
            Phase::Entered(_) if metres > DEPARTED_RADIUS_M => Phase::Away,
            Phase::Entered(since)
                if recorded_at - since >= Duration::seconds(ARRIVED_DWELL_SECONDS) =>
            {
                told.push(Arrival::Arrived);
                Phase::There
            }
            Phase::Entered(since) => Phase::Entered(since),
            Phase::There if metres > DEPARTED_RADIUS_M => {
                told.push(Arrival::Departed);
                Phase::Gone
            }
            Phase::There => Phase::There,
            Phase::Gone => Phase::Gone,
        };
        told
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;

    const STOP: (f64, f64) = (52.52, 13.40);

    fn stop() -> Coordinates {
        Coordinates::new(STOP.0, STOP.1).unwrap()
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap()
    }

    /// `metres` north and east of the stop.
    fn offset(north: f64, east: f64) -> Coordinates {
        let lat = STOP.0 + north / 111_320.0;
        let lon = STOP.1 + east / (111_320.0 * STOP.0.to_radians().cos());
        Coordinates::new(lat, lon).unwrap()
    }

    /// A deterministic jitter in [-amplitude, amplitude] metres per axis.
    struct Jitter(u64);

    impl Jitter {
        fn next(&mut self, amplitude: f64) -> f64 {
            // xorshift64*: enough scatter for a trace, the same for a seed.
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11;
            (x as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * amplitude
        }
    }

    /// One fix per second: approach from 1 km south at `kmh`, `parked` seconds at the stop,
    /// then away north; positions jittered by ±`jitter` m, ETAs from the true distance.
    fn trace(
        seed: u64,
        jitter: f64,
        parked: i64,
        kmh: f64,
    ) -> Vec<(Coordinates, DateTime<Utc>, f64)> {
        let speed = kmh / 3.6; // m/s
        let mut j = Jitter(seed | 1);
        let mut fixes = Vec::new();
        let mut t = 0i64;
        let mut north = -1000.0;
        while north < 0.0 {
            fixes.push((north, t));
            north += speed;
            t += 1;
        }
        for _ in 0..parked {
            fixes.push((0.0, t));
            t += 1;
        }
        north = 0.0;
        while north < 600.0 {
            north += speed;
            fixes.push((north, t));
            t += 1;
        }
        fixes
            .into_iter()
            .map(|(n, t)| {
                let eta = n.abs() / speed / 60.0;
                let at = offset(n + j.next(jitter), j.next(jitter));
                (
                    at,
                    t0() + Duration::seconds(t),
                    if n < 0.0 { eta } else { 0.0 },
                )
            })
            .collect()
    }

    fn replay(fixes: &[(Coordinates, DateTime<Utc>, f64)]) -> Vec<Arrival> {
        let mut approach = Approach::new(stop());
        fixes
            .iter()
            .flat_map(|(at, t, eta)| approach.observe(*at, *t, Some(*eta)))
            .collect()
    }

    proptest! {
        #[test]
        fn a_noisy_stop_of_minutes_is_one_arrival_and_one_departure(seed in any::<u64>()) {
            let told = replay(&trace(seed, 30.0, 180, 25.0));
            prop_assert_eq!(told, vec![Arrival::Arriving, Arrival::Arrived, Arrival::Departed]);
        }

        #[test]
        fn jitter_across_the_inner_line_never_repeats_an_arrival(seed in any::<u64>()) {
            // Parked 70 m from the stop, ±30 m of noise: in and out of 75 m, never beyond 150 m.
            let mut j = Jitter(seed | 1);
            let mut approach = Approach::new(stop());
            let mut told = Vec::new();
            for s in 0..600 {
                let at = offset(70.0 + j.next(30.0), j.next(30.0));
                told.extend(approach.observe(at, t0() + Duration::seconds(s), Some(0.5)));
            }
            prop_assert_eq!(told, vec![Arrival::Arriving, Arrival::Arrived]);
        }
    }

    #[test]
    fn driving_past_without_stopping_is_no_arrival() {
        // Through the stop at 40 km/h: 13.5 s within 75 m.
        let told = replay(&trace(7, 0.0, 0, 40.0));
        assert_eq!(told, vec![Arrival::Arriving]);
    }

    #[test]
    fn arriving_comes_from_the_eta_before_the_radius_and_old_fixes_are_ignored() {
        let mut approach = Approach::new(stop());
        let far = offset(-900.0, 0.0);
        assert_eq!(approach.observe(far, t0(), Some(3.0)), vec![]);
        assert_eq!(
            approach.observe(far, t0() + Duration::seconds(1), Some(1.9)),
            vec![Arrival::Arriving]
        );
        let here = offset(0.0, 0.0);
        assert_eq!(
            approach.observe(here, t0() + Duration::seconds(2), Some(0.0)),
            vec![]
        );
        // A fix from before is late news: it changes nothing.
        assert_eq!(approach.observe(far, t0(), Some(3.0)), vec![]);
        assert_eq!(
            approach.observe(here, t0() + Duration::seconds(22), Some(0.0)),
            vec![Arrival::Arrived]
        );
        // Between 75 and 150 m: still there.
        let ring = offset(120.0, 0.0);
        assert_eq!(
            approach.observe(ring, t0() + Duration::seconds(40), None),
            vec![]
        );
        let gone = offset(200.0, 0.0);
        assert_eq!(
            approach.observe(gone, t0() + Duration::seconds(50), None),
            vec![Arrival::Departed]
        );
        assert_eq!(
            approach.observe(here, t0() + Duration::seconds(60), None),
            vec![]
        );
    }
}
