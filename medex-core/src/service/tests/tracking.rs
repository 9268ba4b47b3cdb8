//! Tracking: the public view.

use super::*;

#[test]
fn tracking_view_shows_only_public_fields() {
    block_on(async {
        let w = World::in_memory(7).await;
        let (driver, driver_id) = w.drivers[0];
        let order = w.order_in(OrderStatus::Pending).await;
        let pending = w
            .medex
            .tracking_view(&order.tracking_token, true)
            .await
            .unwrap();
        assert!(pending.driver.is_none() && pending.eta_minutes.is_none());
        w.move_to(order.id, OrderStatus::DriverAssigned, 0).await;
        let input = FixInput {
            latitude: 52.505,
            longitude: 13.40,
            ..Default::default()
        };
        w.medex
            .record_location(&driver, driver_id, input)
            .await
            .unwrap();
        let view = w
            .medex
            .tracking_view(&order.tracking_token, true)
            .await
            .unwrap();
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
        let on_its_way = w
            .medex
            .tracking_view(&order.tracking_token, true)
            .await
            .unwrap();
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
            let view = w
                .medex
                .tracking_view(&order.tracking_token, true)
                .await
                .unwrap();
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
        let again = w
            .medex
            .tracking_view(&order.tracking_token, false)
            .await
            .unwrap();
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
