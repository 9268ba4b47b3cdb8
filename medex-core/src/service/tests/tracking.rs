//! Tracking: the public view.

use super::*;

#[test]
fn tracking_view_shows_only_public_fields() {
    block_on(async {
        let w = World::in_memory(7).await;
        let (driver, driver_id) = w.drivers[0];
        w.medex
            .set_driver_status(&driver, driver_id, DriverStatus::Available)
            .await
            .unwrap();
        let order = w
            .medex
            .create_order(&w.customers[0], new_order(w.vendor_a_id))
            .await
            .unwrap();
        let pending = w
            .medex
            .tracking_view(&order.tracking_token, true)
            .await
            .unwrap();
        assert!(pending.driver.is_none() && pending.eta_minutes.is_none());
        w.medex
            .change_status(&w.vendor_a, order.id, OrderStatus::Accepted, None)
            .await
            .unwrap();
        w.medex
            .assign_driver(&w.vendor_a, order.id, driver_id)
            .await
            .unwrap();
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
