//! Stop sequencing of one run (DESIGN §14): the exact plan for 10 drop-offs and the heuristic for
//! 30, on great-circle tables, with the travel table computed outside the timed loop (the router
//! answers it once per read). Targets: 10 drop-offs ≤ 10 ms, 30 ≤ 50 ms. Also what one driver
//! costs a suggestion: its run sequenced with one more order and without it (`insertion`).

use std::hint::black_box;

use chrono::{Duration, TimeZone, Utc};
use criterion::Criterion;
use medex_core::config::SystemConfig;
use medex_core::model::{Coordinates, OrderId, VehicleType};
use medex_core::router::{GreatCircle, Profile};
use medex_core::sequencing::{Run, RunOrder, Window, insertion, sequence};

/// `n` drop-offs scattered over ~6 × 7 km around one pharmacy, a third of them with windows.
fn run(n: u64) -> Run {
    let now = Utc.with_ymd_and_hms(2026, 5, 1, 9, 0, 0).unwrap();
    let pharmacy = Coordinates::new(52.52, 13.40).unwrap();
    let orders = (0..n)
        .map(|i| {
            // A fixed scatter (a multiplicative hash), the same on every run.
            let a = (i.wrapping_mul(2_654_435_761) % 1000) as f64 / 1000.0;
            let b = (i.wrapping_mul(40_503) % 1000) as f64 / 1000.0;
            RunOrder {
                order_id: OrderId::from_uuid(uuid::Uuid::from_u64_pair(4, i)),
                pickup: pharmacy,
                dropoff: Coordinates::new(52.49 + a * 0.06, 13.35 + b * 0.1).unwrap(),
                on_board: i % 4 == 0,
                window: if i % 3 == 0 {
                    Window {
                        after: None,
                        before: Some(now + Duration::minutes(20 + 5 * i as i64)),
                    }
                } else {
                    Window::default()
                },
            }
        })
        .collect();
    Run {
        start: Coordinates::new(52.515, 13.41).unwrap(),
        now,
        orders,
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let profile = Profile::of(VehicleType::Scooter, &SystemConfig::default());
    let mut group = c.benchmark_group("sequencing");
    for n in [5u64, 10, 15, 30] {
        let run = run(n);
        let table = GreatCircle::compute(&run.points(), profile);
        group.bench_function(format!("{n}_dropoffs"), |b| {
            b.iter(|| sequence(black_box(&run), black_box(&table)).unwrap())
        });
    }
    group.finish();
    // A driver with `n - 1` orders, asked about an `n`th: both runs sequenced, one table.
    let mut group = c.benchmark_group("insertion");
    for n in [1u64, 5, 10, 30] {
        let longer = run(n);
        let table = GreatCircle::compute(&longer.points(), profile);
        let mut shorter = longer.clone();
        let joining = shorter.orders.pop().unwrap();
        group.bench_function(format!("{}_plus_1", n - 1), |b| {
            b.iter(|| {
                insertion(
                    black_box(&shorter),
                    black_box(joining.clone()),
                    black_box(&table),
                )
                .unwrap()
            })
        });
    }
    group.finish();
    c.final_summary();
}
