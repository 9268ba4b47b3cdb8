//! Dispatch: a run of several orders, each customer's ETA through the stops before theirs, the
//! drivers suggested for an order and the automatic assignment to the best of them.

use super::*;
use crate::arrivals::Arrival;
use crate::events::Topic;
use crate::integrations::WebhookEvent;

/// Three orders of pharmacy A due east of it at 1, 3 and 5 km (placed far, near, middle), all
/// on board driver 0 and on their way.
async fn run_of_three(w: &World) -> Vec<Order> {
    w.medex
        .update_vendor(
            &w.vendor_a,
            w.vendor_a_id,
            VendorPatch {
                max_active_orders: Some(3),
                ..VendorPatch::default()
            },
        )
        .await
        .unwrap();
    let pharmacy = w.medex.get_vendor(&w.admin, w.vendor_a_id).await.unwrap();
    let east = |km: f64| pharmacy.location.longitude() + km / 67.8;
    let mut orders = Vec::new();
    for km in [5.0, 1.0, 3.0] {
        let placed = w
            .medex
            .create_order(
                &w.customers[0],
                NewOrder {
                    delivery_latitude: pharmacy.location.latitude(),
                    delivery_longitude: east(km),
                    ..new_order(w.vendor_a_id)
                },
            )
            .await
            .unwrap();
        orders.push(w.move_to(placed.id, OrderStatus::OutForDelivery, 0).await);
    }
    orders
}

#[test]
fn each_customer_of_a_run_sees_the_stops_before_theirs_and_nothing_of_the_others() {
    block_on(async {
        let w = World::in_memory(51).await;
        let orders = run_of_three(&w).await;
        let (driver, driver_id) = w.drivers[0];
        let pharmacy = w.medex.get_vendor(&w.admin, w.vendor_a_id).await.unwrap();
        w.events();
        let location = w
            .medex
            .record_location(
                &driver,
                driver_id,
                FixInput {
                    latitude: pharmacy.location.latitude(),
                    longitude: pharmacy.location.longitude(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        // Near (placed second), middle (third), far (first).
        let expected_before = [2u32, 0, 1];
        let mut etas = [0.0; 3];
        for (i, order) in orders.iter().enumerate() {
            let view = w
                .medex
                .tracking_view(&order.tracking_token, false)
                .await
                .unwrap();
            assert_eq!(view.stops_before, Some(expected_before[i]), "order {i}");
            etas[i] = view.eta_minutes.unwrap();
            let json = serde_json::to_string(&view).unwrap();
            for (j, other) in orders.iter().enumerate().filter(|(j, _)| *j != i) {
                assert!(
                    !json.contains(&other.tracking_token) && !json.contains(&other.id.to_string()),
                    "order {i}'s view names order {j}"
                );
            }
            let stop = location
                .run
                .iter()
                .find(|s| s.order_id == order.id)
                .expect("every order of the run in the location event");
            assert_eq!(stop.stops_before, expected_before[i]);
            assert!(
                (stop.eta_minutes - etas[i]).abs() < 0.15,
                "fix and view agree"
            );
        }
        assert!(etas[1] < etas[2] && etas[2] < etas[0], "{etas:?}");
        // On 1.3 × the great circle at the vehicle's speed, the far customer waits for all 5 km.
        let vehicle = w
            .medex
            .get_driver(&w.admin, driver_id)
            .await
            .unwrap()
            .vehicle_type;
        let speed = w.medex.config().vehicle_speeds.of(vehicle);
        assert!((etas[0] - 5.0 * 1.3 / speed * 60.0).abs() < 0.5, "{etas:?}");
        let published = w.events();
        let topics: Vec<Topic> = published
            .iter()
            .filter(|e| matches!(e, Event::DriverLocation(_)))
            .flat_map(|e| e.topics())
            .collect();
        for order in &orders {
            assert_eq!(
                topics
                    .iter()
                    .filter(|t| **t == Topic::Tracking(order.tracking_token.clone()))
                    .count(),
                1,
                "each tracker of the run is told once"
            );
        }
        // The nearest is delivered: the others move up.
        w.medex
            .change_status(&driver, orders[1].id, OrderStatus::Delivered, None)
            .await
            .unwrap();
        let middle = w
            .medex
            .tracking_view(&orders[2].tracking_token, false)
            .await
            .unwrap();
        assert_eq!(middle.stops_before, Some(0));
        // The last one alone is an ordinary order again: no count.
        w.medex
            .change_status(&driver, orders[2].id, OrderStatus::Delivered, None)
            .await
            .unwrap();
        let last = w
            .medex
            .tracking_view(&orders[0].tracking_token, false)
            .await
            .unwrap();
        assert_eq!(last.stops_before, None);
        assert!(last.eta_minutes.is_some());
    })
}

#[test]
fn the_run_plan_follows_the_pharmacy_and_forgets_its_order_when_the_run_changes() {
    block_on(async {
        let w = World::in_memory(52).await;
        let orders = run_of_three(&w).await;
        let driver_id = w.drivers[0].1;
        let plan = w
            .medex
            .driver_run(&w.drivers[0].0, driver_id)
            .await
            .unwrap();
        assert_eq!(
            plan.plan.dropoff_order(),
            vec![orders[1].id, orders[2].id, orders[0].id]
        );
        let by_hand = vec![orders[0].id, orders[1].id, orders[2].id];
        let arranged = w
            .medex
            .arrange_run(&w.vendor_a, driver_id, by_hand.clone())
            .await
            .unwrap();
        assert!(arranged.manual);
        assert_eq!(arranged.plan.dropoff_order(), by_hand);
        let refused = w
            .medex
            .arrange_run(&w.drivers[0].0, driver_id, by_hand.clone())
            .await;
        assert!(matches!(refused, Err(Error::Forbidden)), "{refused:?}");
        w.medex
            .cancel_order(&w.admin, orders[2].id, None)
            .await
            .unwrap();
        let plan = w.medex.driver_run(&w.admin, driver_id).await.unwrap();
        assert!(!plan.manual, "the run changed");
        assert_eq!(plan.plan.dropoff_order(), vec![orders[1].id, orders[0].id]);
    })
}

#[test]
fn windows_are_checked_kept_and_sequenced_and_scheduled_orders_wait_for_their_time() {
    block_on(async {
        let w = World::in_memory(53).await;
        let now = w.medex.now();
        let place = |schedule: Schedule| {
            let medex = w.medex.clone();
            let customer = w.customers[0];
            let vendor = w.vendor_a_id;
            async move {
                medex
                    .create_order(
                        &customer,
                        NewOrder {
                            schedule,
                            ..new_order(vendor)
                        },
                    )
                    .await
            }
        };
        let at = |minutes: i64| Some(now + Duration::minutes(minutes));
        for (bad, field) in [
            (
                Schedule {
                    deliver_after: at(60),
                    deliver_before: at(30),
                    ..Schedule::default()
                },
                "deliver_before",
            ),
            (
                Schedule {
                    deliver_after: at(30),
                    deliver_before: at(30),
                    ..Schedule::default()
                },
                "deliver_before",
            ),
            (
                Schedule {
                    deliver_before: at(-5),
                    ..Schedule::default()
                },
                "deliver_before",
            ),
            (
                Schedule {
                    scheduled_for: at(60 * 24 * 31),
                    ..Schedule::default()
                },
                "scheduled_for",
            ),
            (
                Schedule {
                    scheduled_for: at(90),
                    deliver_before: at(60),
                    ..Schedule::default()
                },
                "scheduled_for",
            ),
        ] {
            match place(bad).await {
                Err(Error::Invalid(errors)) => assert!(
                    errors.iter().any(|e| e.field == field),
                    "{bad:?}: {errors:?}"
                ),
                other => panic!("{bad:?} must be refused, got {other:?}"),
            }
        }
        let window = Schedule {
            deliver_after: at(20),
            deliver_before: at(120),
            scheduled_for: at(10),
        };
        let order = place(window).await.unwrap();
        assert_eq!(
            (
                order.deliver_after,
                order.deliver_before,
                order.scheduled_for
            ),
            (at(20), at(120), at(10))
        );
        let accepted = w.move_to(order.id, OrderStatus::Accepted, 0).await;
        let (driver, driver_id) = w.drivers[0];
        w.medex
            .set_driver_status(&driver, driver_id, DriverStatus::Available)
            .await
            .unwrap();
        let early = w
            .medex
            .assign_driver(&w.vendor_a, accepted.id, driver_id)
            .await;
        assert_eq!(conflict_code(early), "not_yet_scheduled");
        w.clock().advance(Duration::minutes(10));
        w.medex
            .assign_driver(&w.vendor_a, accepted.id, driver_id)
            .await
            .unwrap();
        // The drop-off waits for the window to open, and says which window it keeps.
        let plan = w.medex.driver_run(&driver, driver_id).await.unwrap();
        let dropoff = plan.plan.stops.last().unwrap();
        assert_eq!(dropoff.eta, now + Duration::minutes(20));
        let kept = dropoff.window.unwrap();
        assert_eq!((kept.after, kept.before), (at(20), at(120)));
        assert!(!dropoff.late);
    })
}

#[test]
fn a_drop_off_expected_past_its_window_raises_late_risk_once() {
    block_on(async {
        let w = World::in_memory(54).await;
        let now = w.medex.now();
        let order = w
            .medex
            .create_order(
                &w.customers[0],
                NewOrder {
                    schedule: Schedule {
                        deliver_before: Some(now + Duration::minutes(30)),
                        ..Schedule::default()
                    },
                    ..new_order(w.vendor_a_id)
                },
            )
            .await
            .unwrap();
        w.move_to(order.id, OrderStatus::OutForDelivery, 0).await;
        let (driver, driver_id) = w.drivers[0];
        let report = |latitude: f64| {
            let medex = w.medex.clone();
            async move {
                medex
                    .record_location(
                        &driver,
                        driver_id,
                        FixInput {
                            latitude,
                            longitude: 13.42,
                            ..Default::default()
                        },
                    )
                    .await
                    .unwrap()
            }
        };
        let late_risks = |events: Vec<Event>| {
            events
                .into_iter()
                .filter(|e| matches!(e, Event::LateRisk(o) if o.id == order.id))
                .count()
        };
        w.events();
        // Next door: on time.
        report(52.521).await;
        assert_eq!(late_risks(w.events()), 0);
        // 40 km away: not within 30 minutes, once, however often it says so.
        w.clock().advance(Duration::seconds(5));
        report(52.88).await;
        w.clock().advance(Duration::seconds(5));
        report(52.88).await;
        assert_eq!(late_risks(w.events()), 1);
        let stored = w.medex.get_order(&w.admin, order.id).await.unwrap();
        assert!(stored.late_risk_at.is_some());
        assert_eq!(
            crate::integrations::events_of(Some(&order), &stored),
            // Next door, the driver was about to arrive too.
            vec![WebhookEvent::LateRisk, WebhookEvent::DriverArriving]
        );
    })
}

#[test]
fn kept_tracking_answers_follow_the_run_they_are_on() {
    block_on(async {
        let w = World::in_memory(52).await;
        let orders = run_of_three(&w).await;
        let (driver, driver_id) = w.drivers[0];
        let pharmacy = w.medex.get_vendor(&w.admin, w.vendor_a_id).await.unwrap();
        let at_the_pharmacy = FixInput {
            latitude: pharmacy.location.latitude(),
            longitude: pharmacy.location.longitude(),
            ..Default::default()
        };
        w.medex
            .record_location(&driver, driver_id, at_the_pharmacy)
            .await
            .unwrap();
        let agrees = |order: &Order| {
            let token = order.tracking_token.clone();
            let medex = w.medex.clone();
            async move {
                // Twice: the second read answers what the first may have kept.
                medex.tracking_json(&token).await.unwrap();
                let answered = medex.tracking_json(&token).await.unwrap();
                let view = medex.tracking_view(&token, false).await.unwrap();
                assert_eq!(answered, serde_json::to_vec(&view).unwrap(), "{token}");
                view
            }
        };
        for order in &orders {
            agrees(order).await;
        }
        // The nearest is delivered: the others' answers move up at once.
        w.medex
            .change_status(&driver, orders[1].id, OrderStatus::Delivered, None)
            .await
            .unwrap();
        assert_eq!(agrees(&orders[2]).await.stops_before, Some(0));
        agrees(&orders[0]).await;
        // Alone again, the last order's answer is kept, and a fix still moves it.
        w.medex
            .change_status(&driver, orders[2].id, OrderStatus::Delivered, None)
            .await
            .unwrap();
        let alone = agrees(&orders[0]).await;
        assert_eq!(alone.stops_before, None);
        w.clock().advance(Duration::seconds(2));
        let east = FixInput {
            longitude: at_the_pharmacy.longitude + 0.01,
            ..at_the_pharmacy
        };
        w.medex
            .record_location(&driver, driver_id, east)
            .await
            .unwrap();
        let moved = agrees(&orders[0]).await;
        assert_ne!(moved.eta_minutes, alone.eta_minutes);
    })
}

/// `metres` north of `at`.
fn north_of(at: Coordinates, metres: f64) -> (f64, f64) {
    (at.latitude() + metres / 111_320.0, at.longitude())
}

/// Driver 0 reports a fix at `(latitude, longitude)`.
async fn report(w: &World, (latitude, longitude): (f64, f64)) {
    let (driver, driver_id) = w.drivers[0];
    let fix = FixInput {
        latitude,
        longitude,
        ..Default::default()
    };
    w.medex
        .record_location(&driver, driver_id, fix)
        .await
        .unwrap();
}

/// The arrivals the events tell, in order.
fn arrivals(events: Vec<Event>) -> Vec<(OrderId, Arrival)> {
    events
        .into_iter()
        .filter_map(|e| match e {
            Event::DriverArrival { order, arrival, .. } => Some((order.id, arrival)),
            _ => None,
        })
        .collect()
}

/// Driver 0 parked at `door` for `seconds`, a fix every 5 s of the world's clock: the arrivals
/// told meanwhile.
async fn park(w: &World, door: Coordinates, seconds: i64) -> Vec<(OrderId, Arrival)> {
    let mut told = Vec::new();
    for _ in 0..=seconds / 5 {
        report(w, (door.latitude(), door.longitude())).await;
        told.extend(arrivals(w.events()));
        w.clock().advance(Duration::seconds(5));
    }
    told
}

#[test]
fn a_noisy_approach_to_the_door_tells_arriving_arrived_and_departed_once_each() {
    block_on(async {
        let w = World::in_memory(55).await;
        let hook = w
            .medex
            .create_webhook(
                &w.vendor_a,
                w.vendor_a_id,
                NewWebhook {
                    url: "https://shop.example.com/medex".into(),
                    events: vec![
                        "order.driver_arriving".into(),
                        "order.driver_arrived".into(),
                    ],
                },
            )
            .await
            .unwrap();
        let order = w.order_in(OrderStatus::OutForDelivery).await;
        let door = order.delivery_location().unwrap();
        let driver_id = w.drivers[0].1;
        // A fixed pseudo-random jitter of up to ±30 m, as a phone's GPS gives standing still.
        let mut seed = 0x2545_f491_u32;
        let mut jitter = move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            f64::from(seed % 61) - 30.0
        };
        let told = |events: Vec<Event>| -> Vec<Arrival> {
            let mine = arrivals(events)
                .into_iter()
                .filter(|(id, _)| *id == order.id);
            mine.map(|(_, arrival)| arrival).collect()
        };
        w.events();
        let mut trace = Vec::new();
        // From 2 km out at about 30 km/h, a fix every 4 s…
        let mut metres = 2_000.0;
        while metres > 60.0 {
            trace.push(north_of(door, metres + jitter()));
            metres -= 33.0;
        }
        // …then five minutes at the door (parked 40 m off it), the jitter crossing 75 m often…
        for _ in 0..75 {
            trace.push(north_of(door, 40.0 + jitter()));
        }
        let mut seen = Vec::new();
        for at in trace {
            report(&w, at).await;
            seen.extend(told(w.events()));
            w.clock().advance(Duration::seconds(4));
        }
        assert_eq!(seen, [Arrival::Arriving, Arrival::Arrived]);
        // …then away; coming back tells nothing more.
        for metres in [120.0, 200.0, 400.0, 40.0, 30.0, 300.0] {
            report(&w, north_of(door, metres)).await;
            seen.extend(told(w.events()));
            w.clock().advance(Duration::seconds(4));
        }
        assert_eq!(
            seen,
            [Arrival::Arriving, Arrival::Arrived, Arrival::Departed]
        );
        let stored = w.medex.get_order(&w.admin, order.id).await.unwrap();
        let (arriving, arrived) = (
            stored.driver_arriving_at.unwrap(),
            stored.driver_arrived_at.unwrap(),
        );
        assert!(arrived - arriving >= Duration::seconds(20), "the dwell");
        let sent: Vec<WebhookEvent> = w
            .medex
            .webhook_deliveries(&w.vendor_a, w.vendor_a_id, hook.id, Page::first(10))
            .await
            .unwrap()
            .iter()
            .map(|d| d.event)
            .collect();
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert!(sent.contains(&WebhookEvent::DriverArriving));
        assert!(sent.contains(&WebhookEvent::DriverArrived));
        // The customer hears `arriving` only.
        let arriving = Event::DriverArrival {
            order: Arc::new(stored.clone()),
            driver_id,
            arrival: Arrival::Arriving,
            eta_minutes: None,
        };
        assert!(
            arriving
                .topics()
                .any(|t| t == Topic::Tracking(stored.tracking_token.clone()))
        );
        let departed = Event::DriverArrival {
            order: Arc::new(stored.clone()),
            driver_id,
            arrival: Arrival::Departed,
            eta_minutes: None,
        };
        assert_eq!(
            departed.topics().collect::<Vec<_>>(),
            [Topic::Vendor(w.vendor_a_id)]
        );
    })
}

#[test]
fn arrivals_are_told_for_the_run_stop_the_driver_heads_for() {
    block_on(async {
        let w = World::in_memory(56).await;
        let orders = run_of_three(&w).await;
        // Orders lie 1, 3 and 5 km east: parked at the nearest one's door.
        let nearest = &orders[1];
        w.events();
        let told = park(&w, nearest.delivery_location().unwrap(), 35).await;
        assert_eq!(
            told,
            [
                (nearest.id, Arrival::Arriving),
                (nearest.id, Arrival::Arrived)
            ]
        );
    })
}

#[test]
fn a_second_try_at_the_door_is_told_again() {
    block_on(async {
        let w = World::in_memory(57).await;
        let order = w.order_in(OrderStatus::OutForDelivery).await;
        let door = order.delivery_location().unwrap();
        let driver = w.drivers[0].0;
        let told = |seconds| park(&w, door, seconds);
        let (arriving, arrived) = ((order.id, Arrival::Arriving), (order.id, Arrival::Arrived));
        w.events();
        assert_eq!(told(25).await, [arriving, arrived]);
        // Nobody opened: the attempt fails, and the driver rings again.
        w.move_to(order.id, OrderStatus::Failed, 0).await;
        assert_eq!(told(5).await, [], "not on board while failed");
        w.medex
            .change_status(&driver, order.id, OrderStatus::OutForDelivery, None)
            .await
            .unwrap();
        assert_eq!(told(25).await, [arriving, arrived]);
    })
}

/// Pharmacy A's settings changed by its owner.
async fn set_pharmacy_a(w: &World, patch: VendorPatch) {
    w.medex
        .update_vendor(&w.vendor_a, w.vendor_a_id, patch)
        .await
        .unwrap();
}

/// An order of pharmacy A not to be dispatched for half an hour.
async fn scheduled_in_half_an_hour(w: &World) -> Order {
    let schedule = Schedule {
        scheduled_for: Some(w.medex.now() + Duration::minutes(30)),
        ..Schedule::default()
    };
    let new = NewOrder {
        schedule,
        ..new_order(w.vendor_a_id)
    };
    w.medex.create_order(&w.customers[0], new).await.unwrap()
}

/// Pharmacy A gives accepted orders to its best driver at once, or not.
async fn auto_assign(w: &World, on: bool) {
    let patch = VendorPatch {
        auto_assign: Some(on),
        ..VendorPatch::default()
    };
    set_pharmacy_a(w, patch).await;
}

/// Driver `d` of pharmacy A on duty, reporting from `km` kilometres north of the pharmacy.
async fn on_duty_north(w: &World, d: usize, km: f64) {
    let (driver, driver_id) = w.drivers[d];
    w.medex
        .set_driver_status(&driver, driver_id, DriverStatus::Available)
        .await
        .unwrap();
    let pharmacy = w.medex.get_vendor(&w.admin, w.vendor_a_id).await.unwrap();
    w.medex
        .record_location(
            &driver,
            driver_id,
            FixInput {
                latitude: pharmacy.location.latitude() + km / 111.2,
                longitude: pharmacy.location.longitude(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
}

fn ids(suggestions: &[DriverSuggestion]) -> Vec<DriverId> {
    suggestions.iter().map(|s| s.driver_id).collect()
}

#[test]
fn the_nearer_driver_comes_first_and_a_full_run_is_left_out() {
    block_on(async {
        let w = World::in_memory(61).await;
        let (near, far) = (w.drivers[0].1, w.drivers[1].1);
        on_duty_north(&w, 1, 8.0).await;
        on_duty_north(&w, 0, 0.2).await;
        let order = w.order_in(OrderStatus::Accepted).await;
        let ranked = w
            .medex
            .driver_suggestions(&w.vendor_a, order.id)
            .await
            .unwrap();
        assert_eq!(ids(&ranked), vec![near, far]);
        let (first, second) = (&ranked[0], &ranked[1]);
        assert!(first.added_minutes < second.added_minutes, "{ranked:?}");
        // Free drivers: the whole trip, from where they are through the pharmacy to the door.
        assert!((first.eta_minutes - first.added_minutes).abs() < 1e-9);
        assert!(first.distance_km > 2.0 && second.distance_km > first.distance_km + 7.0);
        assert_eq!((first.run_size, first.status), (0, DriverStatus::Available));
        assert_eq!(first.full_name, "Driver Number1");
        // Admins get the same answer.
        let by_admin = w
            .medex
            .driver_suggestions(&w.admin, order.id)
            .await
            .unwrap();
        assert_eq!(ids(&by_admin), vec![near, far]);

        // The near driver takes another order: one at a time, it has no room left.
        let other = w.order_in(OrderStatus::DriverAssigned).await;
        assert_eq!(other.driver_id, Some(near));
        let ranked = w
            .medex
            .driver_suggestions(&w.vendor_a, order.id)
            .await
            .unwrap();
        assert_eq!(ids(&ranked), vec![far]);
        // With room for two, it is back, its run counted; the order is on its way there.
        set_pharmacy_a(
            &w,
            VendorPatch {
                max_active_orders: Some(2),
                ..VendorPatch::default()
            },
        )
        .await;
        let ranked = w
            .medex
            .driver_suggestions(&w.vendor_a, order.id)
            .await
            .unwrap();
        assert_eq!(ids(&ranked), vec![near, far]);
        assert_eq!(
            (ranked[0].run_size, ranked[0].status),
            (1, DriverStatus::Busy)
        );
        assert!(ranked[0].added_minutes < 0.5, "same pharmacy, same door");
        // Offline drivers are never suggested.
        let (far_actor, _) = w.drivers[1];
        w.medex
            .set_driver_status(&far_actor, far, DriverStatus::Offline)
            .await
            .unwrap();
        let ranked = w
            .medex
            .driver_suggestions(&w.vendor_a, order.id)
            .await
            .unwrap();
        assert_eq!(ids(&ranked), vec![near]);
    })
}

#[test]
fn suggestions_are_for_the_pharmacy_and_for_orders_it_can_still_assign() {
    block_on(async {
        let w = World::in_memory(62).await;
        on_duty_north(&w, 0, 1.0).await;
        let order = w.order_in(OrderStatus::Accepted).await;
        let code = |r: Result<Vec<DriverSuggestion>>| match r {
            Err(e) => e.code(),
            Ok(s) => panic!("expected an error, got {s:?}"),
        };
        let ask = |who: Actor, id: OrderId| {
            let medex = w.medex.clone();
            async move { medex.driver_suggestions(&who, id).await }
        };
        // The order's customer knows it exists: 403; a stranger must not learn it: 404.
        assert_eq!(code(ask(w.customers[0], order.id).await), "forbidden");
        assert_eq!(code(ask(w.customers[1], order.id).await), "not_found");
        assert_eq!(code(ask(w.vendor_b, order.id).await), "not_found");
        assert_eq!(code(ask(w.drivers[2].0, order.id).await), "not_found");
        let missing = OrderId::from_uuid(uuid::Uuid::from_u64_pair(1, 1));
        assert_eq!(code(ask(w.vendor_a, missing).await), "not_found");
        // Pending, or past the point of (re)assignment: not now.
        let pending = placed_order(&w).await;
        assert_eq!(
            code(ask(w.vendor_a, pending.id).await),
            "invalid_transition"
        );
        let delivered = w.order_for(OrderStatus::Delivered, 0).await;
        assert_eq!(
            code(ask(w.vendor_a, delivered.id).await),
            "invalid_transition"
        );
        // Its driver sees it but may not ask: 403.
        assert_eq!(code(ask(w.drivers[0].0, delivered.id).await), "forbidden");
        // Scheduled for later: no driver yet, so no suggestion either.
        let later = scheduled_in_half_an_hour(&w).await;
        let later = w.move_to(later.id, OrderStatus::Accepted, 0).await;
        assert_eq!(code(ask(w.vendor_a, later.id).await), "not_yet_scheduled");
        // Before pickup an order can be re-assigned: its own driver is not among the answers.
        let assigned = w.order_for(OrderStatus::DriverAssigned, 0).await;
        on_duty_north(&w, 1, 2.0).await;
        let ranked = ask(w.vendor_a, assigned.id).await.unwrap();
        assert_eq!(ids(&ranked), vec![w.drivers[1].1]);
    })
}

#[test]
fn a_pharmacy_that_assigns_automatically_gives_an_accepted_order_to_the_best_driver() {
    block_on(async {
        let w = World::in_memory(63).await;
        let (near, far) = (w.drivers[0].1, w.drivers[1].1);
        on_duty_north(&w, 0, 0.3).await;
        on_duty_north(&w, 1, 6.0).await;
        auto_assign(&w, true).await;
        let pharmacy = w
            .medex
            .get_vendor(&w.vendor_a, w.vendor_a_id)
            .await
            .unwrap();
        assert!(pharmacy.auto_assign);
        let order = placed_order(&w).await;
        w.events();
        let answered = w
            .medex
            .change_status(&w.vendor_a, order.id, OrderStatus::Accepted, None)
            .await
            .unwrap();
        assert_eq!(answered.status, OrderStatus::DriverAssigned);
        assert_eq!(answered.driver_id, Some(near));
        assert!(answered.accepted_at.is_some());
        assert!(
            answered.driver_accepted_at.is_none(),
            "the driver still answers"
        );
        let statuses: Vec<OrderStatus> = answered.status_history.iter().map(|h| h.status).collect();
        assert_eq!(
            statuses,
            vec![
                OrderStatus::Pending,
                OrderStatus::Accepted,
                OrderStatus::DriverAssigned
            ]
        );
        // The same events as an acceptance and an assignment by hand.
        let events = w.events();
        assert!(events.iter().any(|e| matches!(e,
            Event::OrderStatusChanged { order, previous: OrderStatus::Pending }
                if order.status == OrderStatus::Accepted)));
        assert!(events.iter().any(|e| matches!(e,
            Event::DriverAssigned { order, .. } if order.driver_id == Some(near))));
        // The driver declines: the order is back with the pharmacy, accepted, not re-assigned.
        let declined = w
            .medex
            .respond_to_assignment(
                &w.drivers[0].0,
                order.id,
                AssignmentResponse::Decline,
                Some("flat tyre".into()),
            )
            .await
            .unwrap();
        assert_eq!(
            (declined.status, declined.driver_id),
            (OrderStatus::Accepted, None)
        );
        // The next accepted order goes to the near driver again, free once more.
        let next = placed_order(&w).await;
        let answered = w
            .medex
            .change_status(&w.vendor_a, next.id, OrderStatus::Accepted, None)
            .await
            .unwrap();
        assert_eq!(answered.driver_id, Some(near));
        // …and the one after to the far one: the near driver's run is full.
        let third = placed_order(&w).await;
        let answered = w
            .medex
            .change_status(&w.vendor_a, third.id, OrderStatus::Accepted, None)
            .await
            .unwrap();
        assert_eq!(answered.driver_id, Some(far));
    })
}

#[test]
fn with_no_driver_free_an_automatically_assigned_order_stays_accepted() {
    block_on(async {
        let w = World::in_memory(64).await;
        auto_assign(&w, true).await;
        // Both drivers offline (as they start).
        let order = placed_order(&w).await;
        let answered = w
            .medex
            .change_status(&w.vendor_a, order.id, OrderStatus::Accepted, None)
            .await
            .unwrap();
        assert_eq!(
            (answered.status, answered.driver_id),
            (OrderStatus::Accepted, None)
        );
        let stored = w.medex.get_order(&w.admin, order.id).await.unwrap();
        assert_eq!(stored.status, OrderStatus::Accepted);
        // The one driver on duty has an order already and room for no more.
        on_duty_north(&w, 0, 0.5).await;
        auto_assign(&w, false).await;
        w.order_in(OrderStatus::DriverAssigned).await;
        auto_assign(&w, true).await;
        let another = placed_order(&w).await;
        let answered = w
            .medex
            .change_status(&w.vendor_a, another.id, OrderStatus::Accepted, None)
            .await
            .unwrap();
        assert_eq!(answered.status, OrderStatus::Accepted);
        // A scheduled order waits for its time whoever is free.
        let later = scheduled_in_half_an_hour(&w).await;
        on_duty_north(&w, 1, 0.5).await;
        let answered = w
            .medex
            .change_status(&w.vendor_a, later.id, OrderStatus::Accepted, None)
            .await
            .unwrap();
        assert_eq!(answered.status, OrderStatus::Accepted);
    })
}

#[test]
fn racing_acceptances_of_a_pharmacy_that_assigns_automatically_give_its_one_place_once() {
    // Two threads accept two orders at once; the one free driver has room for one. Whatever
    // the interleaving, exactly one order gets it and the other stays accepted.
    for round in 0..20 {
        let w = block_on(World::in_memory(70 + round));
        block_on(async {
            on_duty_north(&w, 0, 0.5).await;
            auto_assign(&w, true).await;
        });
        let orders = [block_on(placed_order(&w)), block_on(placed_order(&w))];
        let results: Vec<Order> = std::thread::scope(|s| {
            let handles: Vec<_> = orders
                .iter()
                .map(|order| {
                    let (medex, vendor, id) = (w.medex.clone(), w.vendor_a, order.id);
                    s.spawn(move || {
                        block_on(medex.change_status(&vendor, id, OrderStatus::Accepted, None))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap().unwrap())
                .collect()
        });
        let driver = block_on(w.medex.get_driver(&w.admin, w.drivers[0].1)).unwrap();
        let assigned: Vec<&Order> = results
            .iter()
            .filter(|o| o.status == OrderStatus::DriverAssigned)
            .collect();
        assert_eq!(assigned.len(), 1, "round {round}: {results:?}");
        assert_eq!(driver.run(), vec![assigned[0].id], "round {round}");
        for order in &orders {
            let stored = block_on(w.medex.get_order(&w.admin, order.id)).unwrap();
            assert!(
                matches!(
                    stored.status,
                    OrderStatus::Accepted | OrderStatus::DriverAssigned
                ),
                "round {round}: {:?}",
                stored.status
            );
            assert_eq!(
                stored.driver_id == Some(driver.id),
                driver.run() == vec![stored.id]
            );
        }
    }
}

/// Great circles, after running `hook` once on the first table asked for: a write that lands
/// while an automatic assignment is working out its suggestions.
struct Interrupting {
    hook: std::sync::Mutex<Option<futures::future::BoxFuture<'static, ()>>>,
}

impl Interrupting {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            hook: std::sync::Mutex::new(None),
        })
    }

    fn arm(&self, hook: impl std::future::Future<Output = ()> + Send + 'static) {
        *self.hook.lock().unwrap() = Some(Box::pin(hook));
    }
}

#[async_trait::async_trait]
impl crate::router::Router for Interrupting {
    async fn table(
        &self,
        points: &[Coordinates],
        profile: crate::router::Profile,
    ) -> crate::sequencing::TravelTable {
        let hook = self.hook.lock().unwrap().take();
        if let Some(hook) = hook {
            hook.await;
        }
        crate::router::GreatCircle::compute(points, profile)
    }
}

#[test]
fn a_driver_taken_while_suggestions_are_worked_out_passes_the_order_to_the_next() {
    block_on(async {
        let router = Interrupting::new();
        let w = World::with(Options {
            seed: 65,
            router: Some(router.clone()),
            ..Options::default()
        })
        .await;
        let (near, far) = (w.drivers[0].1, w.drivers[1].1);
        on_duty_north(&w, 0, 0.3).await;
        on_duty_north(&w, 1, 6.0).await;
        let waiting = w.order_in(OrderStatus::Accepted).await;
        auto_assign(&w, true).await;
        let order = placed_order(&w).await;
        // Meanwhile the pharmacy gives the near driver the other order by hand.
        let (medex, vendor, waiting_id) = (w.medex.clone(), w.vendor_a, waiting.id);
        router.arm(async move {
            medex
                .assign_driver(&vendor, waiting_id, near)
                .await
                .unwrap();
        });
        let answered = w
            .medex
            .change_status(&w.vendor_a, order.id, OrderStatus::Accepted, None)
            .await
            .unwrap();
        assert_eq!(
            answered.driver_id,
            Some(far),
            "the near driver's run filled up"
        );
        let near_driver = w.medex.get_driver(&w.admin, near).await.unwrap();
        assert_eq!(near_driver.run(), vec![waiting.id]);
    })
}

#[test]
fn an_acceptance_stands_when_the_automatic_assignment_fails() {
    block_on(async {
        let router = Interrupting::new();
        let store = Arc::new(crate::testkit::FlakyStore::default());
        let w = World::with(Options {
            seed: 66,
            router: Some(router.clone()),
            store: Some(store.clone()),
            ..Options::default()
        })
        .await;
        on_duty_north(&w, 0, 0.3).await;
        auto_assign(&w, true).await;
        let order = placed_order(&w).await;
        // The store goes away once the acceptance is written.
        let down = store.clone();
        router.arm(async move { down.set_down(true) });
        let answered = w
            .medex
            .change_status(&w.vendor_a, order.id, OrderStatus::Accepted, None)
            .await
            .unwrap();
        assert_eq!(answered.status, OrderStatus::Accepted);
        store.set_down(false);
        let stored = w.medex.get_order(&w.admin, order.id).await.unwrap();
        assert_eq!(
            (stored.status, stored.driver_id),
            (OrderStatus::Accepted, None)
        );
        // Another writer won the order meanwhile: the automatic assignment leaves it alone.
        let second = placed_order(&w).await;
        let (medex, vendor, id) = (w.medex.clone(), w.vendor_a, second.id);
        router.arm(async move {
            medex.cancel_order(&vendor, id, None).await.unwrap();
        });
        let answered = w
            .medex
            .change_status(&w.vendor_a, second.id, OrderStatus::Accepted, None)
            .await
            .unwrap();
        assert_eq!(answered.status, OrderStatus::Accepted);
        let stored = w.medex.get_order(&w.admin, second.id).await.unwrap();
        assert_eq!(stored.status, OrderStatus::Cancelled);
        let driver = w.medex.get_driver(&w.admin, w.drivers[0].1).await.unwrap();
        assert!(driver.run().is_empty());
    })
}
