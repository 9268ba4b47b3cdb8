//! Sequencing against brute force: every permutation of a small run's stops that keeps the
//! precedences, with the same cost rules, and the exact plan must be as good as the best.

use chrono::TimeZone;
use proptest::prelude::*;

use super::*;
use crate::routing::distance_km;

fn at(lat: f64, lon: f64) -> Coordinates {
    Coordinates::new(lat, lon).unwrap()
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap()
}

fn order_id(n: u64) -> OrderId {
    OrderId::from_uuid(uuid::Uuid::from_u64_pair(4, n))
}

/// Great circle × 1.3 at 25 km/h: the default ETA model for a scooter.
fn table_for(run: &Run) -> TravelTable {
    let points = run.points();
    TravelTable::from_fn(points.len(), |a, b| {
        let km = distance_km(points[a], points[b]) * 1.3;
        (km / 25.0 * 60.0, km)
    })
}

/// The best cost over every node order that keeps precedences.
fn brute_force(problem: &Problem<'_>) -> Cost {
    fn permute(
        problem: &Problem<'_>,
        rest: &mut Vec<usize>,
        done: &mut Vec<usize>,
        best: &mut Option<Cost>,
    ) {
        if rest.is_empty() {
            if let Some(cost) = problem.evaluate(done)
                && best.is_none_or(|b| cost.better_than(&b))
            {
                *best = Some(cost);
            }
            return;
        }
        for i in 0..rest.len() {
            let node = rest.remove(i);
            done.push(node);
            permute(problem, rest, done, best);
            done.pop();
            rest.insert(i, node);
        }
    }
    let mut rest: Vec<usize> = (0..problem.layout.nodes()).collect();
    let mut best = None;
    permute(problem, &mut rest, &mut Vec::new(), &mut best);
    best.expect("a run always has a feasible order")
}

/// Every order dropped once, after its pickup unless on board; ETAs never go back.
fn check_stops(run: &Run, plan: &Plan) {
    for order in &run.orders {
        let dropoffs: Vec<usize> = (0..plan.stops.len())
            .filter(|&i| {
                plan.stops[i].order_id == order.order_id && plan.stops[i].kind == StopKind::Dropoff
            })
            .collect();
        assert_eq!(dropoffs.len(), 1, "one drop-off per order");
        let pickups: Vec<usize> = (0..plan.stops.len())
            .filter(|&i| {
                plan.stops[i].order_id == order.order_id && plan.stops[i].kind == StopKind::Pickup
            })
            .collect();
        if order.on_board {
            assert!(pickups.is_empty(), "no pickup for a parcel on board");
        } else {
            assert_eq!(pickups.len(), 1);
            assert!(pickups[0] < dropoffs[0], "pickup before drop-off");
        }
    }
    assert!(plan.stops.windows(2).all(|w| w[0].eta <= w[1].eta));
}

prop_compose! {
    fn small_run(max_orders: usize)(
        start in (52.45..52.55f64, 13.30..13.50f64),
        pharmacies in prop::collection::vec((52.45..52.55f64, 13.30..13.50f64), 1..3),
        orders in prop::collection::vec(
            ((52.45..52.55f64, 13.30..13.50f64), any::<bool>(), 0..2usize,
             prop::option::weighted(0.3, 0..60i64), prop::option::weighted(0.3, 5..90i64)),
            1..=max_orders,
        ),
    ) -> Run {
        let orders = orders
            .into_iter()
            .enumerate()
            .map(|(i, (drop, on_board, pharmacy, after, before))| RunOrder {
                order_id: order_id(i as u64),
                pickup: {
                    let p = pharmacies[pharmacy % pharmacies.len()];
                    at(p.0, p.1)
                },
                dropoff: at(drop.0, drop.1),
                on_board,
                window: Window {
                    after: after.map(|m| now() + Duration::minutes(m)),
                    before: before.map(|m| now() + Duration::minutes(m)),
                },
            })
            .collect();
        Run { start: at(start.0, start.1), now: now(), orders }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn the_exact_plan_is_as_good_as_every_other_order(run in small_run(6)) {
        let table = table_for(&run);
        let problem = problem(&run, &table).unwrap();
        let best = brute_force(&problem);
        let plan = sequence(&run, &table).unwrap();
        check_stops(&run, &plan);
        let got = Cost { late: plan.late_minutes, minutes: plan.total_minutes };
        prop_assert!(
            !best.better_than(&got) && !got.better_than(&best),
            "exact {got:?}, brute force {best:?}"
        );
    }

    #[test]
    fn the_heuristic_keeps_every_precedence_and_is_never_better_than_exact(run in small_run(7)) {
        let table = table_for(&run);
        let problem = problem(&run, &table).unwrap();
        let order = heuristic(&problem);
        let cost = problem.evaluate(&order).expect("a feasible order");
        prop_assert_eq!(order.len(), problem.layout.nodes());
        let plan = problem.plan(&run, &order);
        check_stops(&run, &plan);
        let exact = problem.evaluate(&exact(&problem)).unwrap();
        prop_assert!(!cost.better_than(&exact), "heuristic {cost:?} beats exact {exact:?}");
    }

    #[test]
    fn a_manual_order_is_followed_and_must_name_the_run(run in small_run(6), seed in any::<u64>()) {
        let table = table_for(&run);
        let mut ids: Vec<OrderId> = run.orders.iter().map(|o| o.order_id).collect();
        let len = ids.len();
        ids.rotate_left((seed as usize) % len);
        let plan = in_order(&run, &table, &ids).unwrap();
        check_stops(&run, &plan);
        prop_assert_eq!(plan.dropoff_order(), ids.clone());
        let exact = sequence(&run, &table).unwrap();
        let (manual, best) = (
            Cost { late: plan.late_minutes, minutes: plan.total_minutes },
            Cost { late: exact.late_minutes, minutes: exact.total_minutes },
        );
        prop_assert!(!manual.better_than(&best));
        let mut missing = ids.clone();
        missing.pop();
        prop_assert_eq!(in_order(&run, &table, &missing), Err(SequencingError::NotTheRun));
        let mut doubled = ids.clone();
        doubled.push(ids[0]);
        prop_assert_eq!(in_order(&run, &table, &doubled), Err(SequencingError::NotTheRun));
    }
}

fn line_run(dropoffs: &[(f64, f64)]) -> Run {
    Run {
        start: at(52.50, 13.40),
        now: now(),
        orders: dropoffs
            .iter()
            .enumerate()
            .map(|(i, &(lat, lon))| RunOrder {
                order_id: order_id(i as u64),
                pickup: at(52.50, 13.40),
                dropoff: at(lat, lon),
                on_board: false,
                window: Window::default(),
            })
            .collect(),
    }
}

#[test]
fn stops_along_a_street_are_visited_from_near_to_far() {
    let run = line_run(&[(52.53, 13.40), (52.51, 13.40), (52.52, 13.40)]);
    let plan = sequence(&run, &table_for(&run)).unwrap();
    assert_eq!(
        plan.dropoff_order(),
        vec![order_id(1), order_id(2), order_id(0)]
    );
    assert_eq!(plan.stops[0].kind, StopKind::Pickup);
    assert_eq!(
        plan.stops.len(),
        6,
        "three pickups at the pharmacy, three drop-offs"
    );
    // 3.34 km of great circle north, × 1.3 at 25 km/h.
    assert!(
        (plan.total_km - 3.336 * 1.3).abs() < 0.01,
        "{}",
        plan.total_km
    );
    assert!((plan.total_minutes - plan.total_km / 25.0 * 60.0).abs() < 1e-6);
}

#[test]
fn a_window_reorders_the_run_where_it_can() {
    // North 3.3 km and east 2 km of the pharmacy: east first would be shorter.
    let mut run = line_run(&[(52.53, 13.40), (52.50, 13.43)]);
    let free = sequence(&run, &table_for(&run)).unwrap();
    assert_eq!(free.dropoff_order(), vec![order_id(1), order_id(0)]);
    // The far customer must have it within twelve minutes (10.4 straight there).
    run.orders[0].window.before = Some(now() + Duration::minutes(12));
    let plan = sequence(&run, &table_for(&run)).unwrap();
    assert_eq!(plan.dropoff_order(), vec![order_id(0), order_id(1)]);
    assert_eq!(plan.late_minutes, 0.0);
    // A window that cannot be kept is missed by as little as possible, and flagged.
    run.orders[0].window.before = Some(now() + Duration::minutes(1));
    let plan = sequence(&run, &table_for(&run)).unwrap();
    assert_eq!(plan.dropoff_order(), vec![order_id(0), order_id(1)]);
    assert!(plan.late_minutes > 0.0);
    assert!(
        plan.stops
            .iter()
            .any(|s| s.late && s.order_id == order_id(0))
    );
    // Not before a time: the driver waits, and the ETA says so.
    let mut run = line_run(&[(52.51, 13.40)]);
    run.orders[0].window.after = Some(now() + Duration::minutes(45));
    let plan = sequence(&run, &table_for(&run)).unwrap();
    assert_eq!(plan.stops[1].eta, now() + Duration::minutes(45));
    assert_eq!(plan.total_minutes, 45.0);
}

#[test]
fn a_parcel_on_board_needs_no_pickup_and_the_table_must_fit() {
    let mut run = line_run(&[(52.51, 13.40)]);
    run.orders[0].on_board = true;
    assert_eq!(run.points().len(), 2);
    let plan = sequence(&run, &table_for(&run)).unwrap();
    assert_eq!(plan.stops.len(), 1);
    let wrong = TravelTable::from_fn(3, |_, _| (1.0, 1.0));
    assert_eq!(
        sequence(&run, &wrong),
        Err(SequencingError::TableSize {
            expected: 2,
            got: 3
        })
    );
    assert!(TravelTable::new(2, vec![0.0; 4], vec![0.0, -1.0, 0.0, 0.0]).is_none());
    assert!(TravelTable::new(2, vec![0.0; 3], vec![0.0; 4]).is_none());
    let empty = Run {
        orders: vec![],
        ..run
    };
    let plan = sequence(&empty, &table_for(&empty)).unwrap();
    assert!(plan.stops.is_empty() && plan.total_minutes == 0.0);
}

#[test]
fn thirty_drop_offs_get_a_feasible_plan_no_worse_than_their_given_order() {
    let dropoffs: Vec<(f64, f64)> = (0..30)
        .map(|i| {
            let k = (i * 7919 % 30) as f64;
            (52.45 + k * 0.0035, 13.30 + ((i * 31) % 30) as f64 * 0.007)
        })
        .collect();
    let run = line_run(&dropoffs);
    let table = table_for(&run);
    let plan = sequence(&run, &table).unwrap();
    check_stops(&run, &plan);
    let given: Vec<OrderId> = run.orders.iter().map(|o| o.order_id).collect();
    let naive = in_order(&run, &table, &given).unwrap();
    assert!(plan.total_minutes < naive.total_minutes);
}

#[test]
fn a_manual_order_collects_at_the_pharmacy_where_that_is_sooner() {
    // One parcel on board for 3 km north; two still at the pharmacy for 1 and 2 km north.
    let mut run = line_run(&[(52.527, 13.40), (52.509, 13.40), (52.518, 13.40)]);
    run.orders[0].on_board = true;
    let order = [order_id(0), order_id(1), order_id(2)];
    // Standing at the pharmacy: collect the two first, then deliver in the order given.
    let plan = in_order(&run, &table_for(&run), &order).unwrap();
    let kinds: Vec<StopKind> = plan.stops.iter().map(|s| s.kind).collect();
    use StopKind::*;
    assert_eq!(kinds, [Pickup, Pickup, Dropoff, Dropoff, Dropoff]);
    assert_eq!(plan.dropoff_order(), order);
    // At the first customer's door: deliver there, then come back for the others.
    run.start = at(52.527, 13.40);
    let plan = in_order(&run, &table_for(&run), &order).unwrap();
    let kinds: Vec<StopKind> = plan.stops.iter().map(|s| s.kind).collect();
    assert_eq!(kinds, [Dropoff, Pickup, Pickup, Dropoff, Dropoff]);
}

#[test]
fn an_order_on_the_way_adds_little_and_one_beyond_the_run_adds_the_extra_leg() {
    // Drop-offs 1 and 3 km north of the pharmacy, the driver at it with both parcels to fetch.
    let run = line_run(&[(52.509, 13.40), (52.527, 13.40)]);
    let with = |lat: f64| {
        let order = RunOrder {
            order_id: order_id(9),
            pickup: at(52.50, 13.40),
            dropoff: at(lat, 13.40),
            on_board: false,
            window: Window::default(),
        };
        let mut longer = run.clone();
        longer.orders.push(order.clone());
        insertion(&run, order, &table_for(&longer)).unwrap()
    };
    let between = with(52.518);
    assert!(between.added_minutes < 0.01, "{}", between.added_minutes);
    assert_eq!(
        between.with.dropoff_order(),
        vec![order_id(0), order_id(9), order_id(1)]
    );
    let beyond = with(52.536);
    // One more kilometre north, × 1.3 at 25 km/h.
    let leg = distance_km(at(52.527, 13.40), at(52.536, 13.40)) * 1.3;
    assert!((beyond.added_minutes - leg / 25.0 * 60.0).abs() < 1e-6);
    assert!((beyond.eta_minutes - beyond.with.total_minutes).abs() < 1e-9);
    assert!((beyond.km - beyond.with.total_km).abs() < 1e-9);
    assert_eq!(beyond.without, sequence(&run, &table_for(&run)).unwrap());
    // The table must list the longer run's points.
    let order = run.orders[0].clone();
    assert_eq!(
        insertion(&run, order, &table_for(&run)),
        Err(SequencingError::TableSize {
            expected: 5,
            got: 4
        })
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// The shorter run's table taken from the longer's gives the plan the shorter run gets on
    /// its own, and the order's drop-off is in the longer plan.
    #[test]
    fn an_insertion_compares_the_run_with_itself(run in small_run(5), extra in small_run(1)) {
        let mut order = extra.orders[0].clone();
        order.order_id = order_id(77);
        let mut longer = run.clone();
        longer.orders.push(order.clone());
        let found = insertion(&run, order, &table_for(&longer)).unwrap();
        let alone = sequence(&run, &table_for(&run)).unwrap();
        prop_assert!((found.without.total_minutes - alone.total_minutes).abs() < 1e-6);
        prop_assert!((found.without.late_minutes - alone.late_minutes).abs() < 1e-6);
        prop_assert!(found.added_minutes >= 0.0);
        prop_assert!(found.eta_minutes <= found.with.total_minutes + 1e-9);
        prop_assert!(found.with.dropoff_order().contains(&order_id(77)));
    }
}
