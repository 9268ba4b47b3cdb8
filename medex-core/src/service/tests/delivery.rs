//! Delivery: the lifecycle moves and their effects on drivers, proofs and reports.

use super::*;

#[test]
fn full_delivery_credits_the_driver_once_and_frees_it() {
    block_on(async {
        let w = World::in_memory(3).await;
        let (driver, driver_id) = w.drivers[0];
        let order = placed_order(&w).await;
        w.medex
            .change_status(&w.vendor_a, order.id, OrderStatus::Accepted, None)
            .await
            .unwrap();
        assert_eq!(
            conflict_code(
                w.medex
                    .assign_driver(&w.vendor_a, order.id, driver_id)
                    .await
            ),
            "driver_not_available",
            "a new driver starts offline"
        );
        w.medex
            .set_driver_status(&driver, driver_id, DriverStatus::Available)
            .await
            .unwrap();
        w.medex
            .assign_driver(&w.vendor_a, order.id, driver_id)
            .await
            .unwrap();
        assert_eq!(
            w.medex.get_driver(&driver, driver_id).await.unwrap().status,
            DriverStatus::Busy
        );
        assert_eq!(
            w.medex
                .set_driver_status(&driver, driver_id, DriverStatus::Offline)
                .await
                .err()
                .map(|e| e.code()),
            Some("driver_has_active_order")
        );
        w.medex
            .respond_to_assignment(&driver, order.id, AssignmentResponse::Accept, None)
            .await
            .unwrap();
        w.medex
            .change_status(&driver, order.id, OrderStatus::PickedUp, None)
            .await
            .unwrap();
        // Drive ~1.1 km north in 10 fixes, one of them a GPS jump.
        for step in 0..10 {
            w.clock().advance(Duration::seconds(10));
            let latitude = if step == 5 {
                53.5
            } else {
                52.50 + step as f64 * 0.001
            };
            let input = FixInput {
                latitude,
                longitude: 13.40,
                accuracy: Some(5.0),
                ..Default::default()
            };
            let location = w
                .medex
                .record_location(&driver, driver_id, input)
                .await
                .unwrap();
            assert_eq!(location.order_id, Some(order.id));
            assert!(location.eta_minutes.is_some());
        }
        w.medex
            .change_status(&driver, order.id, OrderStatus::OutForDelivery, None)
            .await
            .unwrap();
        let delivered = w
            .medex
            .change_status(&driver, order.id, OrderStatus::Delivered, None)
            .await
            .unwrap();
        let km = delivered.actual_distance_km.unwrap();
        assert!((km - 0.9).abs() < 0.15, "jump filtered out: {km}");
        assert_eq!(
            conflict_code(
                w.medex
                    .change_status(&driver, order.id, OrderStatus::Delivered, None)
                    .await
            ),
            "invalid_transition",
            "delivering twice"
        );
        let d = w.medex.get_driver(&w.vendor_a, driver_id).await.unwrap();
        assert_eq!(
            (d.status, d.total_deliveries, d.total_earnings),
            (DriverStatus::Available, 1, delivered.delivery_fee)
        );
        let statuses: Vec<_> = delivered
            .status_history
            .iter()
            .map(|c| c.status.as_str())
            .collect();
        assert_eq!(
            statuses,
            [
                "pending",
                "accepted",
                "driver_assigned",
                "picked_up",
                "out_for_delivery",
                "delivered"
            ]
        );
        assert!(delivered.driver_accepted_at.is_some() && delivered.delivered_at.is_some());

        let today = start().date_naive();
        let utc = FixedOffset::east_opt(0).unwrap();
        let earnings = w
            .medex
            .driver_earnings(&driver, driver_id, today, today, utc)
            .await
            .unwrap();
        assert_eq!(
            (earnings.total_deliveries, earnings.total_earnings),
            (1, delivered.delivery_fee)
        );
        let report = w
            .medex
            .vendor_daily_report(&w.vendor_a, w.vendor_a_id, today, utc)
            .await
            .unwrap();
        assert_eq!(
            (
                report.orders_created,
                report.orders_delivered,
                report.revenue
            ),
            (1, 1, delivered.delivery_fee)
        );
        assert!(
            w.medex
                .vendor_daily_report(&w.vendor_b, w.vendor_a_id, today, utc)
                .await
                .is_err()
        );
    });
}

#[test]
fn decline_and_reassign_free_the_previous_driver() {
    block_on(async {
        let w = World::in_memory(4).await;
        let [(d1, id1), (d2, id2), (d3, id3)] = w.drivers;
        for (actor, id) in [(d1, id1), (d2, id2), (d3, id3)] {
            w.medex
                .set_driver_status(&actor, id, DriverStatus::Available)
                .await
                .unwrap();
        }
        let order = placed_order(&w).await;
        w.medex
            .change_status(&w.admin, order.id, OrderStatus::Accepted, None)
            .await
            .unwrap();
        assert_eq!(
            w.medex
                .assign_driver(&w.vendor_a, order.id, id3)
                .await
                .err()
                .map(|e| e.code()),
            Some("validation_failed"),
            "another fleet's driver cannot be assigned"
        );
        w.medex
            .assign_driver(&w.vendor_a, order.id, id1)
            .await
            .unwrap();
        let reassigned = w
            .medex
            .assign_driver(&w.vendor_a, order.id, id2)
            .await
            .unwrap();
        assert_eq!(reassigned.driver_id, Some(id2));
        assert_eq!(
            w.medex.get_driver(&d1, id1).await.unwrap().status,
            DriverStatus::Available
        );
        assert_eq!(
            conflict_code(
                w.medex
                    .change_status(&d1, order.id, OrderStatus::PickedUp, None)
                    .await
            ),
            "not_found"
        );
        let declined = w
            .medex
            .respond_to_assignment(
                &d2,
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
        assert_eq!(
            declined.status_history.last().unwrap().reason.as_deref(),
            Some("flat tyre")
        );
        assert_eq!(
            w.medex.get_driver(&d2, id2).await.unwrap().status,
            DriverStatus::Available
        );
    });
}

#[test]
fn cancellation_rights_follow_the_table() {
    block_on(async {
        let w = World::in_memory(5).await;
        let (driver, driver_id) = w.drivers[0];
        let order = w.order_in(OrderStatus::Pending).await;
        assert_eq!(
            conflict_code(w.medex.cancel_order(&w.customers[1], order.id, None).await),
            "not_found"
        );
        assert_eq!(
            conflict_code(w.medex.cancel_order(&w.vendor_b, order.id, None).await),
            "not_found"
        );
        w.move_to(order.id, OrderStatus::PickedUp, 0).await;
        assert_eq!(
            conflict_code(w.medex.cancel_order(&w.customers[0], order.id, None).await),
            "invalid_transition"
        );
        assert_eq!(
            conflict_code(w.medex.cancel_order(&w.vendor_a, order.id, None).await),
            "invalid_transition"
        );
        assert_eq!(
            conflict_code(w.medex.cancel_order(&driver, order.id, None).await),
            "forbidden"
        );
        let cancelled = w
            .medex
            .cancel_order(&w.admin, order.id, Some("patient in hospital".into()))
            .await
            .unwrap();
        assert_eq!(
            cancelled.cancel_reason.as_deref(),
            Some("patient in hospital")
        );
        assert_eq!(
            w.medex.get_driver(&driver, driver_id).await.unwrap().status,
            DriverStatus::Available
        );
        assert_eq!(
            conflict_code(
                w.medex
                    .change_status(&w.vendor_a, order.id, OrderStatus::Rejected, None)
                    .await
            ),
            "invalid_transition"
        );
    });
}

#[test]
fn rejection_needs_a_reason_and_proof_policy_blocks_delivery() {
    block_on(async {
        let w = World::in_memory(6).await;
        let order = placed_order(&w).await;
        assert_eq!(
            conflict_code(
                w.medex
                    .change_status(
                        &w.vendor_a,
                        order.id,
                        OrderStatus::Rejected,
                        Some("  ".into())
                    )
                    .await
            ),
            "reason_required"
        );
        let patch = VendorPatch {
            require_proof_photo: Some(true),
            require_signature: Some(true),
            ..Default::default()
        };
        w.medex
            .update_vendor(&w.vendor_a, w.vendor_a_id, patch)
            .await
            .unwrap();
        // The policy applies to orders placed from now on: each order keeps its own.
        let order = placed_order(&w).await;
        assert!(order.require_proof_photo && order.require_signature);
        let (driver, _) = w.drivers[0];
        w.move_to(order.id, OrderStatus::OutForDelivery, 0).await;
        let Err(Error::Conflict(Conflict::ProofMissing(missing))) = w
            .medex
            .change_status(&driver, order.id, OrderStatus::Delivered, None)
            .await
        else {
            panic!("delivery without proof must be refused")
        };
        assert_eq!(missing, ["proof_photo", "signature"]);
        w.medex
            .attach_proof(
                &driver,
                order.id,
                ProofKind::Photo,
                "/api/uploads/p.jpg".into(),
                Sha256::digest(b"photo"),
            )
            .await
            .unwrap();
        w.medex
            .attach_proof(
                &driver,
                order.id,
                ProofKind::Signature,
                "/api/uploads/s.png".into(),
                Sha256::digest(b"signature"),
            )
            .await
            .unwrap();
        w.medex
            .change_status(&driver, order.id, OrderStatus::Delivered, None)
            .await
            .unwrap();
    });
}

#[test]
fn free_text_reasons_are_bounded_and_visible_text_only() {
    block_on(async {
        let w = World::in_memory(31).await;
        let order = w.order_in(OrderStatus::Pending).await;
        for bad in ["x".repeat(501), "out of\u{7}stock".to_owned()] {
            let refused = w
                .medex
                .change_status(&w.vendor_a, order.id, OrderStatus::Rejected, Some(bad))
                .await;
            let Err(Error::Invalid(fields)) = refused else {
                panic!("{refused:?}")
            };
            assert_eq!(fields[0].field, "reason");
            let cancelled = w
                .medex
                .cancel_order(&w.customers[0], order.id, Some("\u{1b}[2J".into()))
                .await;
            assert!(matches!(cancelled, Err(Error::Invalid(_))), "{cancelled:?}");
        }
        let unchanged = w.medex.get_order(&w.admin, order.id).await.unwrap();
        assert_eq!(unchanged.status, OrderStatus::Pending);
    });
}
