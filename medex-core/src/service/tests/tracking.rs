//! Tracking: the public view.

use super::*;

#[test]
fn tracking_view_shows_only_public_fields() {
    block_on(async {
        let w = World::in_memory(7).await;
        let (driver, driver_id) = w.drivers[0];
        let order = w.order_in(OrderStatus::Pending).await;
        let pending = view(&w, &order, true).await;
        assert!(pending.driver.is_none() && pending.eta_minutes.is_none());
        w.move_to(order.id, OrderStatus::DriverAssigned, 0).await;
        let fix = fix_at(52.505);
        w.medex
            .record_location(&driver, driver_id, fix)
            .await
            .unwrap();
        let view = view(&w, &order, true).await;
        assert_eq!(view.driver.as_ref().unwrap().first_name, "Driver");
        assert!(view.eta_minutes.unwrap() > 0.0);
        assert_eq!(view.trail.len(), 1);
        let json = serde_json::to_string(&view).unwrap();
        for secret in [
            "+49 30 1234",
            "+1 555",
            "Number1",
            "Ann Patient",
            &order.user_id.to_string(),
            &driver_id.to_string(),
        ] {
            assert!(
                !json.contains(secret),
                "tracking view leaks {secret}: {json}"
            );
        }
        assert!(matches!(
            w.medex.tracking_view("nope", false).await,
            Err(Error::NotFound)
        ));
    });
}

#[test]
fn after_a_failed_attempt_the_public_learns_only_that_it_will_be_rescheduled() {
    block_on(async {
        let w = World::in_memory(8).await;
        let (driver, driver_id) = w.drivers[0];
        let order = w.order_in(OrderStatus::OutForDelivery).await;
        w.medex
            .record_location(
                &driver,
                driver_id,
                FixInput {
                    latitude: 52.51,
                    longitude: 13.41,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let on_its_way = view(&w, &order, true).await;
        assert!(on_its_way.driver.is_some() && !on_its_way.attempt_failed);
        let failed = Transition {
            reason: Some("other".into()),
            note: Some("Mrs Smith next door says she is in hospital".into()),
            ..Transition::to(OrderStatus::Failed)
        };
        w.medex.transition(&driver, order.id, failed).await.unwrap();
        for status in [OrderStatus::Failed, OrderStatus::Returned] {
            if status == OrderStatus::Returned {
                w.medex
                    .change_status(&w.vendor_a, order.id, status, None)
                    .await
                    .unwrap();
            }
            let view = view(&w, &order, true).await;
            assert_eq!(view.status, status);
            assert!(view.attempt_failed);
            assert_eq!(view.attempt, 1);
            assert!(view.driver.is_none() && view.eta_minutes.is_none() && view.trail.is_empty());
            let json = serde_json::to_string(&view).unwrap();
            for secret in ["other", "Smith", "hospital", "reason", "note"] {
                assert!(!json.contains(secret), "{secret} in {json}");
            }
        }
        w.medex
            .change_status(&w.vendor_a, order.id, OrderStatus::Accepted, None)
            .await
            .unwrap();
        let again = view(&w, &order, false).await;
        assert_eq!((again.attempt, again.attempt_failed), (2, false));
    });
}

#[test]
fn links_expire_after_the_order_ended() {
    block_on(async {
        let w = World::in_memory(41).await;
        let running = w.order_in(OrderStatus::OutForDelivery).await;
        let done = w.order_in(OrderStatus::Cancelled).await;
        let days = SystemConfig::default().tracking_link_days;
        w.clock()
            .advance(Duration::days(i64::from(days)) - Duration::seconds(1));
        assert!(
            w.medex
                .tracking_view(&done.tracking_token, false)
                .await
                .is_ok()
        );
        w.clock().advance(Duration::seconds(1));
        assert!(matches!(
            w.medex.tracking_view(&done.tracking_token, false).await,
            Err(Error::NotFound)
        ));
        // A running order's link never expires.
        assert!(
            w.medex
                .tracking_view(&running.tracking_token, false)
                .await
                .is_ok()
        );
    });
}

/// The public view of `order`, which must be found.
async fn view(w: &World, order: &Order, with_trail: bool) -> TrackingView {
    w.medex
        .tracking_view(&order.tracking_token, with_trail)
        .await
        .expect("the order is tracked")
}

fn fix_at(latitude: f64) -> FixInput {
    FixInput {
        latitude,
        longitude: 13.40,
        ..Default::default()
    }
}

#[test]
fn fixes_follow_deactivation_reassignment_and_status_changes_at_once() {
    block_on(async {
        let w = World::in_memory(21).await;
        let (first, first_id) = w.drivers[0];
        let (second, second_id) = w.drivers[1];
        let report = |who: Actor, id: DriverId, latitude: f64| {
            let medex = w.medex.clone();
            async move { medex.record_location(&who, id, fix_at(latitude)).await }
        };
        assert_eq!(report(first, first_id, 52.50).await.unwrap().order_id, None);
        assert_eq!(
            report(second, second_id, 52.60).await.unwrap().order_id,
            None
        );
        let order = w.order_in(OrderStatus::DriverAssigned).await;
        let on = report(first, first_id, 52.501).await.unwrap();
        assert_eq!(on.order_id, Some(order.id));
        assert_eq!(on.order_status, Some(OrderStatus::DriverAssigned));

        // Re-assigned: the relieved driver reports on no order, the new one on it.
        w.medex
            .set_driver_status(&second, second_id, DriverStatus::Available)
            .await
            .unwrap();
        w.medex
            .assign_driver(&w.vendor_a, order.id, second_id)
            .await
            .unwrap();
        assert_eq!(
            report(first, first_id, 52.502).await.unwrap().order_id,
            None
        );
        let taken = report(second, second_id, 52.601).await.unwrap();
        assert_eq!(taken.order_id, Some(order.id));

        // A status change shows in the next fix; a finished order leaves it.
        w.move_to(order.id, OrderStatus::PickedUp, 1).await;
        let picked = report(second, second_id, 52.602).await.unwrap();
        assert_eq!(picked.order_status, Some(OrderStatus::PickedUp));
        w.move_to(order.id, OrderStatus::Delivered, 1).await;
        assert_eq!(
            report(second, second_id, 52.603).await.unwrap().order_id,
            None
        );

        // Taken out of service: its next fix is refused.
        w.medex
            .update_driver(
                &w.vendor_a,
                first_id,
                DriverPatch {
                    is_active: Some(false),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(matches!(
            report(first, first_id, 52.504).await,
            Err(Error::Forbidden)
        ));
    });
}

fn late(latitude: f64, minutes_ago: i64, now: DateTime<chrono::Utc>) -> FixInput {
    FixInput {
        latitude,
        longitude: 13.40,
        recorded_at: Some(now - Duration::minutes(minutes_ago)),
        ..Default::default()
    }
}

fn fields_of(result: Result<Arc<crate::events::DriverLocation>>) -> Vec<String> {
    match result {
        Err(Error::Invalid(fields)) => fields.into_iter().map(|f| f.field).collect(),
        other => panic!("expected 422, got {other:?}"),
    }
}

#[test]
fn a_batch_holds_1_to_100_fixes_of_the_last_24_hours() {
    block_on(async {
        let w = World::in_memory(22).await;
        let (driver, id) = w.drivers[0];
        let now = w.medex.now();
        let many = vec![late(52.5, 1, now); MAX_FIX_BATCH + 1];
        assert_eq!(
            fields_of(w.medex.record_locations(&driver, id, &many).await),
            ["fixes"]
        );
        assert_eq!(
            fields_of(w.medex.record_locations(&driver, id, &[]).await),
            ["fixes"]
        );
        let future = FixInput {
            recorded_at: Some(now + Duration::minutes(5)),
            ..late(52.5, 0, now)
        };
        let undated = FixInput {
            recorded_at: None,
            ..late(52.5, 0, now)
        };
        let bad = [
            late(52.5, 10, now),
            late(52.5, 25 * 60, now),
            future,
            undated,
            late(95.0, 3, now),
        ];
        assert_eq!(
            fields_of(w.medex.record_locations(&driver, id, &bad).await),
            [
                "fixes[1].recorded_at",
                "fixes[2].recorded_at",
                "fixes[3].recorded_at",
                "fixes[4].latitude"
            ]
        );
        // Nothing of a refused batch was kept.
        assert!(
            w.medex
                .get_driver(&w.vendor_a, id)
                .await
                .unwrap()
                .last_location_update
                .is_none()
        );
        let (other, _) = w.drivers[1];
        assert!(matches!(
            w.medex
                .record_locations(&other, id, &[late(52.5, 1, now)])
                .await,
            Err(Error::Forbidden | Error::NotFound)
        ));
    });
}

#[test]
fn late_fixes_join_the_trail_in_order_without_moving_the_driver_back() {
    block_on(async {
        let w = World::in_memory(23).await;
        let (driver, id) = w.drivers[0];
        let order = w.order_in(OrderStatus::PickedUp).await;
        w.clock().advance(Duration::minutes(30));
        let now = w.medex.now();
        w.bus.as_ref().unwrap().take();
        // Offline for 20 minutes, then a batch out of order: the newest is published, once.
        let batch = [
            late(52.52, 10, now),
            late(52.51, 20, now),
            late(52.53, 1, now),
        ];
        let newest = w.medex.record_locations(&driver, id, &batch).await.unwrap();
        assert_eq!(newest.fix.latitude, 52.53);
        assert_eq!(newest.order_id, Some(order.id));
        let published: Vec<f64> = w
            .events()
            .into_iter()
            .filter_map(|e| match e {
                crate::events::Event::DriverLocation(l) => Some(l.fix.latitude),
                _ => None,
            })
            .collect();
        assert_eq!(published, [52.53]);
        let position = w.medex.get_driver(&w.vendor_a, id).await.unwrap();
        assert_eq!(position.current_latitude, Some(52.53));

        // Older than the position: into the trail, not onto the map, and not published.
        w.clock().advance(Duration::minutes(1));
        let older = [
            late(52.515, 16, w.medex.now()),
            late(52.525, 7, w.medex.now()),
        ];
        w.medex.record_locations(&driver, id, &older).await.unwrap();
        assert!(
            w.events()
                .iter()
                .all(|e| !matches!(e, crate::events::Event::DriverLocation(_)))
        );
        let position = w.medex.get_driver(&w.vendor_a, id).await.unwrap();
        assert_eq!(position.current_latitude, Some(52.53));
        let trail = w
            .medex
            .store()
            .trail(TrailQuery::new(
                id,
                now - Duration::hours(1),
                now + Duration::hours(1),
                100,
            ))
            .await
            .unwrap();
        let lats: Vec<f64> = trail.iter().map(|f| f.latitude).collect();
        assert_eq!(lats, [52.51, 52.515, 52.52, 52.525, 52.53]);

        // The delivery's distance counts them: 0.005° of latitude is ~0.556 km, four legs.
        let delivered = w.move_to(order.id, OrderStatus::Delivered, 0).await;
        let km = delivered.actual_distance_km.unwrap();
        assert!((km - 4.0 * 0.556).abs() < 0.05, "{km}");
    });
}

#[test]
fn the_kept_tracking_answer_is_the_view_and_is_forgotten_when_the_view_changes() {
    block_on(async {
        let store = Arc::new(crate::testkit::FlakyStore::default());
        let w = World::with(Options {
            seed: 12,
            store: Some(store.clone()),
            ..Options::default()
        })
        .await;
        let (driver, driver_id) = w.drivers[0];
        let order = w.order_in(OrderStatus::DriverAssigned).await;
        let token = order.tracking_token.as_str();
        let fresh = || async {
            let view = w.medex.tracking_view(token, false).await.unwrap();
            bytes::Bytes::from(serde_json::to_vec(&view).unwrap())
        };
        // The first read finds the order by its token, the second keeps the view.
        for _ in 0..3 {
            assert_eq!(w.medex.tracking_json(token).await.unwrap(), fresh().await);
        }
        store.set_down(true);
        let kept = w.medex.tracking_json(token).await.unwrap();
        store.set_down(false);
        assert_eq!(
            kept,
            fresh().await,
            "a kept view is answered without the store"
        );

        // A fix moves the driver on the view; a status change changes it.
        let fix = fix_at(52.507);
        w.medex
            .record_location(&driver, driver_id, fix)
            .await
            .unwrap();
        let moved = w.medex.tracking_json(token).await.unwrap();
        assert_eq!(moved, fresh().await);
        assert_ne!(moved, kept);
        w.move_to(order.id, OrderStatus::PickedUp, 0).await;
        let picked_up = w.medex.tracking_json(token).await.unwrap();
        assert_eq!(picked_up, fresh().await);
        let status: serde_json::Value = serde_json::from_slice(&picked_up).unwrap();
        assert_eq!(status["status"], "picked_up");

        // Another instance's change shows once the kept view is a second old.
        let mut vendor = store.vendor(w.vendor_a_id).await.unwrap().unwrap();
        vendor.business_name = "Renamed Pharmacy".into();
        vendor.version += 1;
        store.commit(vec![Write::Vendor(vendor)]).await.unwrap();
        assert_eq!(w.medex.tracking_json(token).await.unwrap(), picked_up);
        w.clock().advance(Duration::seconds(1));
        let renamed = w.medex.tracking_json(token).await.unwrap();
        assert!(String::from_utf8_lossy(&renamed).contains("Renamed Pharmacy"));

        // A finished order's link ends on time, kept or not.
        w.move_to(order.id, OrderStatus::Delivered, 0).await;
        w.medex.tracking_json(token).await.unwrap();
        w.medex.tracking_json(token).await.unwrap();
        let days = w.medex.config().tracking_link_days;
        w.clock().advance(Duration::days(i64::from(days)));
        assert!(matches!(
            w.medex.tracking_json(token).await,
            Err(Error::NotFound)
        ));
        assert!(matches!(
            w.medex.tracking_json("not-a-token").await,
            Err(Error::NotFound)
        ));
    });
}
